"""Pick the proxy for a URL the way curl does: ``--proxy``, the ``*_PROXY`` variables, ``NO_PROXY``.

- ``--proxy URL`` (or a library caller's ``proxy=``) wins over the environment; an empty
  ``--proxy ''`` turns every proxy off.
- Otherwise ``https_proxy`` / ``HTTPS_PROXY`` serve https:// URLs, ``http_proxy`` /
  ``HTTP_PROXY`` serve http:// ones, and ``all_proxy`` / ``ALL_PROXY`` both; the lower-case
  name wins when both are set, and an empty value counts as unset.
- ``no_proxy`` / ``NO_PROXY`` lists hosts reached directly, whichever way the proxy was
  given: ``*`` (every host), names (``example.com`` also covers ``www.example.com``; a
  leading ``.`` or ``*.`` means the same), IP addresses, CIDR ranges (``10.0.0.0/8``), and
  any of these with ``:port`` to exempt that port only. Entries are separated by commas or
  spaces.
- No host is exempt by itself: ``localhost`` goes through the proxy unless ``NO_PROXY``
  says otherwise, as in curl.
- A proxy URL without a scheme is ``http://``; without a port, port 1080 (curl's
  default). ``user:password@`` in it is sent as Basic proxy authentication and is never
  shown: every message carries the URL with the password masked.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from batch_enroll.errors import ProxyConfigError
from batch_enroll.redact import MASK, remember_secret

__all__ = [
    "NO_PROXY_NAMES",
    "ProxyChoice",
    "ProxyConfigError",
    "ProxySettings",
    "proxy_for",
    "redact_url",
]

DEFAULT_PROXY_PORT = 1080
_DEFAULT_PORTS = {"http": 80, "https": 443}
NO_PROXY_NAMES = ("no_proxy", "NO_PROXY")


def redact_url(url: str) -> str:
    """Return ``url`` with the password of its ``user:password@`` part masked."""
    # Plain string work, not urlsplit: a malformed URL (the one an error is about)
    # must be masked too.
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:{MASK}@{hostport}{slash}{path}"


def _normalise(value: str, source: str) -> str:
    """Check a proxy URL and complete it as curl would (scheme http, port 1080)."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyConfigError(
            f"the proxy in {source} ({redact_url(text)}) is not a valid URL"
        ) from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ProxyConfigError(
            f"the proxy in {source} ({redact_url(text)}) uses {scheme}://; only http:// proxies"
            " are supported (https:// sites are still reached through them, with CONNECT)"
        )
    if not parts.hostname:
        raise ProxyConfigError(f"the proxy in {source} ({redact_url(text)}) names no host")
    if parts.password is not None:
        remember_secret(parts.password)
        remember_secret(unquote(parts.password))
    hostport = parts.netloc.rpartition("@")[2]
    if port is None:
        hostport = f"{hostport.rstrip(':')}:{DEFAULT_PROXY_PORT}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{hostport}" if userinfo else hostport
    return f"http://{netloc}"


@dataclass(frozen=True)
class ProxyChoice:
    """The proxy one URL goes through, where that came from, and why when there is none."""

    #: The proxy URL, credentials included: never print it, print ``redacted``.
    url: str | None
    #: Where it came from: ``--proxy`` or an environment variable's name.
    source: str = ""
    #: The NO_PROXY entry that sends this URL direct, if one does.
    bypassed_by: str = ""

    @property
    def redacted(self) -> str | None:
        """Return the proxy URL with its password masked."""
        return None if self.url is None else redact_url(self.url)

    def describe(self) -> str:
        """Say in one line which proxy is used and why, password masked."""
        if self.url is not None:
            return f"{self.redacted} (from {self.source})"
        if self.bypassed_by:
            return f"none: the {self.source} entry {self.bypassed_by!r} sends it direct"
        if self.source:
            return f"none: {self.source} turns proxies off"
        return "none: no proxy is configured"


def _host_and_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return host, port or _DEFAULT_PORTS.get(scheme, 0), scheme


def _split_entry(entry: str) -> tuple[str, int | None]:
    """Split a NO_PROXY entry into host part and optional port."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None  # a bare IPv6 address has many colons and no port


def _entry_matches(entry: str, host: str, port: int) -> bool:
    name, entry_port = _split_entry(entry)
    if entry_port is not None and entry_port != port:
        return False
    name = name.lower().rstrip(".")
    if name == "*":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if "/" in name:
        try:
            network = ipaddress.ip_network(name, strict=False)
        except ValueError:
            return False
        return address is not None and address in network
    if address is not None:
        try:
            return ipaddress.ip_address(name) == address
        except ValueError:
            return False
    name = name.removeprefix("*").removeprefix(".")
    if not name:
        return False
    return host == name or host.endswith("." + name)


def no_proxy_match(no_proxy: str, url: str) -> str:
    """Return the NO_PROXY entry that sends ``url`` direct, or ``""``."""
    host, port, _ = _host_and_port(url)
    for entry in no_proxy.replace(",", " ").split():
        if _entry_matches(entry, host, port):
            return entry
    return ""


def _getenv(env: Mapping[str, str], *names: str) -> tuple[str, str]:
    """Return the first set, non-empty variable among ``names`` and its name."""
    for name in names:
        value = env.get(name, "")
        if value.strip():
            return value, name
    return "", ""


@dataclass(frozen=True)
class ProxySettings:
    """What decides the proxies of a run: ``--proxy`` and the environment it was started in."""

    #: ``--proxy``: a URL, ``""`` for no proxy at all, or None to follow the environment.
    proxy: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)

    def __post_init__(self) -> None:
        # Check every proxy setting now, so a typo stops the run before anything is sent
        # rather than surfacing as a connection error on each row.
        if self.proxy:
            _normalise(self.proxy, "--proxy")
        for scheme in ("http", "https", "all"):
            value, name = _getenv(self.env, f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
            if value:
                _normalise(value, name)

    @property
    def configured(self) -> bool:
        """Say whether any URL may go through a proxy at all."""
        if self.proxy is not None:
            return bool(self.proxy)
        return any(
            _getenv(self.env, f"{scheme}_proxy", f"{scheme.upper()}_PROXY")[0]
            for scheme in ("http", "https", "all")
        )

    def for_url(self, url: str) -> ProxyChoice:
        """Return the proxy ``url`` goes through, as curl would choose it."""
        if self.proxy == "":
            return ProxyChoice(None, "--proxy ''")
        no_proxy, no_proxy_name = _getenv(self.env, *NO_PROXY_NAMES)
        if no_proxy:
            entry = no_proxy_match(no_proxy, url)
            if entry:
                return ProxyChoice(None, no_proxy_name, bypassed_by=entry)
        if self.proxy is not None:
            return ProxyChoice(_normalise(self.proxy, "--proxy"), "--proxy")
        _, _, scheme = _host_and_port(url)
        value, name = _getenv(
            self.env, f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"
        )
        if not value:
            return ProxyChoice(None)
        return ProxyChoice(_normalise(value, name), name)


def proxy_for(
    url: str, *, proxy: str | None = None, env: Mapping[str, str] | None = None
) -> ProxyChoice:
    """Return the proxy a request to ``url`` goes through, and why (``choice.describe()``).

    ``proxy`` is ``--proxy`` (None: follow the environment; ``""``: no proxy); ``env``
    defaults to this process's environment.
    """
    settings = ProxySettings(proxy=proxy, env=dict(os.environ) if env is None else env)
    return settings.for_url(url)
