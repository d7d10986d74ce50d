"""What a run needs to know: where LMS365 is, how to reach it, and how hard to push.

Kept free of heavy imports: the command line builds these before any command runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from batch_enroll.errors import ConfigError

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE",
    "REGIONS",
    "ConnectionOptions",
    "RunOptions",
    "resolve_base_url",
]

DEFAULT_BASE_URL = "https://api.365.systems"
REGIONS = {
    "us": "https://us-api.365.systems",
    "ne": "https://ne-api.365.systems",
    "je": "https://je-api.365.systems",
    "au": "https://au-api.365.systems",
    "ca": "https://ca-api.365.systems",
    "uk": "https://uk-api.365.systems",
    "de": "https://de-api.365.systems",
    "ch": "https://ch-api.365.systems",
    "gcc": "https://va-api.usgcc365.systems",
}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: Most requests in flight at once, for the library and the command line alike.
DEFAULT_CONCURRENCY = 64
#: Seconds a graceful stop lets requests in flight finish before cutting them off.
DEFAULT_GRACE = 10.0

#: One line per request outcome (no secrets), for a request log.
RequestEvent = Mapping[str, Any]


def resolve_base_url(base_url: str | None, region: str | None) -> str:
    """Pick the API host; refuse plain HTTP anywhere but this machine."""
    if base_url and region:
        raise ConfigError("give --base-url or --region, not both")
    if region:
        try:
            return REGIONS[region.lower()]
        except KeyError:
            raise ConfigError(
                f"unknown region {region!r} (choose from {', '.join(REGIONS)})"
            ) from None
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the base URL {url!r} is not an http(s) URL")
    host = parts.hostname
    if parts.scheme == "http" and host not in _LOCAL_HOSTS and not host.startswith("127."):
        raise ConfigError(
            f"refusing plain http:// to {host}: the API key would travel unencrypted;"
            " use https:// (http:// is allowed only to localhost)"
        )
    return url


@dataclass(frozen=True, kw_only=True)
class ConnectionOptions:
    """How to reach LMS365: everything ``LmsClient`` needs, and nothing about a sheet."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(repr=False)
    #: Most requests in flight at once (also the size of the connection pool).
    concurrency: int = DEFAULT_CONCURRENCY
    #: Seconds to wait for each answer.
    timeout: float = 30.0
    #: Retries per request after a 5xx, a timeout or a broken connection.
    max_retries: int = 5
    #: TLS verification: True, a CA bundle path, or an ``ssl.SSLContext``.
    verify: ssl.SSLContext | str | bool = True
    #: A ready transport (tests, ASGI apps); None builds the default one.
    transport: httpx.AsyncBaseTransport | None = None
    #: A proxy for every request (``http://[user:password@]host[:port]``), ``""`` for
    #: none, or None to follow HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY as curl
    #: does (see :mod:`batch_enroll.proxy`). Hidden from repr: it may hold a password.
    proxy: str | None = field(default=None, repr=False)
    #: Read the proxy variables from the environment; False leaves only ``proxy``.
    trust_env: bool = True
    #: Hears of every request outcome, for a request log.
    on_event: Callable[[RequestEvent], None] | None = None


@dataclass(frozen=True, kw_only=True)
class RunOptions(ConnectionOptions):
    """How to reach LMS365, how hard to push, and which rules a run applies."""

    #: Requests per second, or None to find the tenant's ceiling (auto).
    rate: float | None = None
    require_session: bool = False
    #: Seconds a graceful stop waits for requests in flight.
    grace: float = DEFAULT_GRACE

    skip_enrolled: bool = False
    resolve_users: bool = False
    ignore_max_attendees: bool = False
    ignore_enrollment_flow: bool = False
    #: Most rows a run may unenroll: a count ("25") or a share of the sheet's rows ("10%").
    max_unenroll: str = "10%"

    def fingerprint(self) -> dict[str, Any]:
        """Return the options that change what is sent; a resume must keep them."""
        return {
            "base_url": self.base_url,
            "require_session": self.require_session,
            "resolve_users": self.resolve_users,
            "ignore_max_attendees": self.ignore_max_attendees,
            "ignore_enrollment_flow": self.ignore_enrollment_flow,
        }
