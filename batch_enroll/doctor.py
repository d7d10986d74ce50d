"""Check, read-only, that a tenant answers the way a run expects.

Safe on production: the only write is an Enroll POST to the all-zero course,
which no tenant holds, for a login no one has; it tells a Full Control key
(404) from a Read Only one (403) and enrolls no one. Every belief checked is a
named entry of :mod:`batch_enroll.classifier`, and each result says which.
"""

from __future__ import annotations

import base64
import difflib
import functools
import json
import re
import socket
import ssl
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

import httpx

from batch_enroll.classifier import (
    ASSUMPTIONS,
    COURSE_FIELDS,
    ENROLLMENT_FIELDS,
    ILT_COURSE_TYPES,
    PROXY_AUTH_CODE,
    SESSION_FIELDS,
    USER_FIELDS,
    FieldRule,
    Outcome,
    Verdict,
    classify_exception,
    classify_response,
    error_fields,
    parse_retry_after,
    value_problem,
)
from batch_enroll.errors import ConfigError
from batch_enroll.options import DEFAULT_BASE_URL, REGIONS, ConnectionOptions
from batch_enroll.proxy import ProxyChoice
from batch_enroll.redact import scrub as scrub_secrets
from batch_enroll.transport import make_transport, which_proxy

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = [
    "DIFFERS",
    "FAILED",
    "OK",
    "SKIPPED",
    "Check",
    "check_api",
    "check_host",
    "check_proxy",
    "check_tenant",
    "check_tls",
    "exit_code",
    "field_differences",
    "render_json",
    "render_text",
    "scrub",
]

OK: Final = "OK"
DIFFERS: Final = "DIFFERS"
FAILED: Final = "FAILED"
#: Not run, because a check it needs failed first.
SKIPPED: Final = "SKIPPED"

EXIT_OK: Final = 0
EXIT_PROBLEMS: Final = 1
EXIT_KEY_REFUSED: Final = 3

ZERO_GUID: Final = "00000000-0000-0000-0000-000000000000"
#: A login no tenant holds: the access probe names no real person.
PROBE_LOGIN: Final = "i:0#.f|membership|batch-enroll-doctor@example.invalid"
PROBE_EMAIL: Final = "batch-enroll-doctor@example.invalid"
#: Courses read for the field check: one page, enough to meet most course kinds.
COURSES_PAGE: Final = 50
#: Extra attempts of a request met by a 429, a 5xx or a broken connection.
RETRIES: Final = 2
#: Requests a default run keeps in flight, for the round-trip estimate.
RUN_CONCURRENCY: Final = 64

GLOBAL_HOST: Final = urlsplit(DEFAULT_BASE_URL).hostname or ""
#: Each regional API host, and the --region that picks it.
REGION_HOSTS: Final[Mapping[str, str]] = {
    urlsplit(url).hostname or "": code for code, url in REGIONS.items()
}
REPORT: Final = "report this output to whoever maintains batch-enroll"
KEY_HELP: Final = (
    "copy the key again from LMS365's Admin Center > Global Settings > API Key Management"
    " into LMS365_API_KEY"
)

PROXY_AUTH_HELP: Final = (
    "give the proxy's user and password as --proxy http://user:password@host:port"
    " (or in HTTPS_PROXY / HTTP_PROXY), and check them with IT"
)

TITLES: Final[Mapping[str, str]] = {
    "proxy": "Proxy",
    "host": "Host reachable",
    "tls": "TLS",
    "region": "Region",
    "key": "API key accepted",
    "access": "Key access",
    "courses": "Courses page",
    "enrollments": "Enrollments query",
    "users": "Users query",
    "round_trip": "Round-trip time",
}


@dataclass(frozen=True, slots=True)
class Check:
    """The result of one check."""

    name: str
    status: str
    #: What the check saw, and for DIFFERS what that means for a run.
    detail: str
    #: What to do about it (FAILED and DIFFERS).
    action: str = ""
    #: The classifier's ``ASSUMPTIONS`` this check tested.
    assumptions: tuple[str, ...] = ()
    #: Each difference found, one sentence each.
    differences: tuple[str, ...] = ()
    #: LMS365 refused the key (the run would stop with exit 3).
    key_refused: bool = False
    http_status: int | None = None
    elapsed_ms: float | None = None

    @property
    def title(self) -> str:
        """Return the check's name in words."""
        return TITLES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        """Return the check as plain JSON values."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "action": self.action,
            "assumptions": list(self.assumptions),
            "differences": list(self.differences),
            "key_refused": self.key_refused,
            "http_status": self.http_status,
            "elapsed_ms": self.elapsed_ms,
        }


def _skipped(names: Iterable[str], why: str) -> list[Check]:
    return [Check(name, SKIPPED, f"not checked: {why}") for name in names]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _host_port(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if secure else 80), secure


def _ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    """Build the context a run's transport verifies with, so that both agree."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    return httpx.create_ssl_context(verify=verify)


# ---------------------------------------------------------------------------------------------
# The proxy
# ---------------------------------------------------------------------------------------------

#: Most bytes of a proxy's answer to CONNECT read before giving up on it.
_PROXY_HEAD_LIMIT: Final = 64 * 1024


class _ProxyRefused(Exception):
    """The proxy answered CONNECT with something other than 200."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _proxy_address(choice: ProxyChoice) -> tuple[str, int]:
    parts = urlsplit(choice.url or "")
    # ProxySettings completes every proxy URL with a port, as curl would.
    return parts.hostname or "", parts.port or 1080


def _tunnel(choice: ProxyChoice, host: str, port: int, *, timeout: float) -> socket.socket:
    """Open a CONNECT tunnel to ``host:port`` through the proxy, with its credentials.

    Return the connected socket; raise ``_ProxyRefused`` or ``OSError``.
    """
    parts = urlsplit(choice.url or "")
    target = _authority(host, port)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        head += f"Proxy-Authorization: Basic {base64.b64encode(pair.encode()).decode('ascii')}\r\n"
    sock = socket.create_connection(_proxy_address(choice), timeout=timeout)
    try:
        sock.sendall((head + "\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk or len(answer) > _PROXY_HEAD_LIMIT:
                raise OSError("the proxy closed the connection without answering CONNECT")
            answer += chunk
        status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
        _, code, reason = [*status_line.split(" ", 2), "", ""][:3]
        if not code.isdigit():
            raise OSError(f"the proxy answered CONNECT with {status_line[:80]!r}")
        if int(code) != 200:
            raise _ProxyRefused(int(code), reason.strip())
    except BaseException:
        sock.close()
        raise
    return sock


def _proxy_auth_action(choice: ProxyChoice) -> str:
    """Say where the proxy's credentials go, for the place the proxy was named."""
    host, port = _proxy_address(choice)
    shape = f"http://user:password@{_authority(host, port)}"
    where = "--proxy" if choice.source == "--proxy" else choice.source
    has_user = urlsplit(choice.url or "").username is not None
    if has_user:
        return f"check the proxy's user and password in {where} ({shape}); ask IT if they changed"
    if where == "--proxy":
        return f"give the proxy's user and password: --proxy {shape}"
    return f"give the proxy's user and password in {where}: {shape} (or pass --proxy {shape})"


def _proxy_refusal(choice: ProxyChoice, target: str, exc: _ProxyRefused) -> Check:
    if exc.status == 407:
        return Check(
            "proxy",
            FAILED,
            f"{choice.describe()}: it asked for credentials or refused them ({exc})",
            _proxy_auth_action(choice),
            http_status=exc.status,
        )
    return Check(
        "proxy",
        FAILED,
        f"{choice.describe()}: it would not open a tunnel to {target} ({exc})",
        f"ask IT to let the proxy reach {target}, or name another proxy with --proxy",
        http_status=exc.status,
    )


def check_proxy(*, base_url: str, choice: ProxyChoice, timeout: float) -> Check:
    """Say which proxy requests go through, and from where; reach it as a run would.

    For an https:// host, open a CONNECT tunnel through it (with its credentials), which
    is what each connection of a run does; for plain http://, the proxy forwards each
    request itself, and the first one shows whether it does.
    """
    if choice.url is None:
        return Check("proxy", OK, f"{choice.describe()}: requests go straight to LMS365")
    host, port, secure = _host_port(base_url)
    proxy_host, proxy_port = _proxy_address(choice)
    where = "--proxy" if choice.source == "--proxy" else choice.source
    started = time.monotonic()
    try:
        if secure:
            _tunnel(choice, host, port, timeout=timeout).close()
        else:
            socket.create_connection((proxy_host, proxy_port), timeout=timeout).close()
    except _ProxyRefused as exc:
        return _proxy_refusal(choice, _authority(host, port), exc)
    except OSError as exc:
        return Check(
            "proxy",
            FAILED,
            f"{choice.describe()}: cannot be reached ({exc.strerror or exc})",
            f"check the proxy in {where}; --proxy '' goes direct, NO_PROXY exempts a host",
        )
    elapsed = time.monotonic() - started
    did = f"opened a tunnel to {_authority(host, port)}" if secure else "accepts connections"
    return Check(
        "proxy",
        OK,
        f"{choice.describe()}: it {did} ({_ms(elapsed):g} ms)",
        elapsed_ms=_ms(elapsed),
    )


def _through_proxy(*, base_url: str, choice: ProxyChoice) -> Check:
    """Report the host as the proxy reaches it: this machine may not reach it at all."""
    host, port, secure = _host_port(base_url)
    how = (
        "the proxy opened a tunnel to it"
        if secure
        else "the proxy forwards each plain http:// request to it"
    )
    return Check(
        "host", OK, f"{_authority(host, port)} is reached through {choice.redacted}: {how}"
    )


# ---------------------------------------------------------------------------------------------
# Host and TLS
# ---------------------------------------------------------------------------------------------


def check_host(*, base_url: str, timeout: float) -> Check:
    """Resolve the host and open a TCP connection to it."""
    host, port, _ = _host_port(base_url)
    started = time.monotonic()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Check(
            "host",
            FAILED,
            f"{host} cannot be found in DNS ({exc.strerror})",
            "check the host in --base-url (or pick --region), and that this machine's DNS"
            " resolves public names",
        )
    address = str(infos[0][4][0])
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        return Check(
            "host",
            FAILED,
            f"{host}:{port} ({address}) refused the connection",
            "check the port in --base-url, and that the service listens there",
        )
    except TimeoutError:
        return Check(
            "host",
            FAILED,
            f"{host}:{port} ({address}) did not accept a connection within {timeout:g} s",
            f"a firewall may block outgoing port {port}: ask IT to allow {host}, or give"
            " the proxy this network requires with --proxy or HTTPS_PROXY",
        )
    except OSError as exc:
        return Check(
            "host",
            FAILED,
            f"{host}:{port} ({address}) cannot be reached: {exc.strerror or exc}",
            "check this machine's network connection and firewall",
        )
    elapsed = time.monotonic() - started
    return Check(
        "host",
        OK,
        f"{host}:{port} accepts connections ({address}, {_ms(elapsed):g} ms)",
        elapsed_ms=_ms(elapsed),
    )


def _name_of(cert: Mapping[str, Any], part: str) -> str:
    for rdn in cert.get(part, ()):
        for key, value in rdn:
            if key in ("commonName", "organizationName"):
                return str(value)
    return "?"


def check_tls(
    *,
    base_url: str,
    timeout: float,
    verify: ssl.SSLContext | str | bool,
    proxy: ProxyChoice | None = None,
) -> Check:
    """Shake hands as a run does, with the same certificates trusted, through its proxy."""
    host, port, secure = _host_port(base_url)
    if not secure:
        return Check(
            "tls",
            OK,
            "not used: plain http:// is allowed only to this machine (the simulator)",
        )
    context = _ssl_context(verify)
    started = time.monotonic()
    try:
        if proxy is not None and proxy.url is not None:
            raw = _tunnel(proxy, host, port, timeout=timeout)
        else:
            raw = socket.create_connection((host, port), timeout=timeout)
        with raw, context.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version() or "TLS"
            cert = tls.getpeercert() or {}
    except _ProxyRefused as exc:
        return Check(
            "tls",
            FAILED,
            f"the proxy would not open a tunnel for the handshake ({exc})",
            "run doctor again; if it persists, ask IT about the proxy",
            http_status=exc.status,
        )
    except ssl.SSLCertVerificationError as exc:
        return Check(
            "tls",
            FAILED,
            f"the certificate {host} presented is not trusted ({exc.verify_message})",
            "behind a TLS-inspecting proxy, pass its CA certificate (PEM) with --ca-bundle;"
            " otherwise check the system clock and the host name",
        )
    except (ssl.SSLError, OSError) as exc:
        return Check(
            "tls",
            FAILED,
            f"the TLS handshake with {host}:{port} failed ({exc})",
            "check that --base-url names an https:// API host, not a web page or proxy",
        )
    elapsed = time.monotonic() - started
    expires = str(cert.get("notAfter", "?"))
    return Check(
        "tls",
        OK,
        f"{version}, certificate for {_name_of(cert, 'subject')} from"
        f" {_name_of(cert, 'issuer')}, trusted, valid until {expires}",
        elapsed_ms=_ms(elapsed),
    )


# ---------------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    """Requests of one check run, timed, against a base URL that a redirect may move.

    The client is asynchronous, over the very transport a run builds (its proxies, its
    TLS trust); the portal runs it on an event loop of its own, so the checks read
    in order.
    """

    client: httpx.AsyncClient
    portal: BlockingPortal
    base_url: str
    #: The proxy the requests go through, to say where its credentials go on a 407.
    proxy: ProxyChoice | None = None
    timings: list[float] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response | Outcome:
        """Send one request; return the answer, or the classified transport failure.

        A throttled, transient or lost answer is tried again, up to ``RETRIES``
        times: one bad moment of a tenant is not a finding. Every request here is
        safe to repeat, the probe included (it can enroll no one).
        """
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            started = time.monotonic()
            try:
                response = self.portal.call(
                    functools.partial(
                        self.client.request, method, self.base_url + path, params=params, json=body
                    )
                )
            except (httpx.TransportError, OSError) as exc:
                outcome = classify_exception(exc)
                if last:
                    return outcome
                time.sleep(0.5 * (attempt + 1))
                continue
            self.timings.append(time.monotonic() - started)
            verdict = classify_response(response).verdict
            if last or verdict not in (Verdict.THROTTLED, Verdict.RETRY, Verdict.IN_DOUBT):
                return response
            wait = parse_retry_after(response.headers.get("Retry-After"))
            time.sleep(min(5.0, 0.5 * (attempt + 1) if wait is None else wait))
        raise AssertionError("unreachable: the last attempt returns")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answer(response: httpx.Response) -> str:
    """Describe an answer: status, and LMS365's code and message when it gave them."""
    code, message = error_fields(_json(response))
    said = f' "{message}"' if message else ""
    return f"HTTP {response.status_code}" + (f" {code}" if code else "") + said


def _busy(name: str, answer: httpx.Response) -> Check | None:
    """Fail a check whose every try met a throttle or a server error: that is no finding."""
    if answer.status_code != 429 and answer.status_code < 500:
        return None
    return Check(
        name,
        FAILED,
        f"LMS365 answered {_answer(answer)}, {RETRIES + 1} times in a row",
        "run doctor again in a few minutes; if it persists, ask LMS365 support",
        http_status=answer.status_code,
    )


def _no_answer(outcome: Outcome) -> str:
    return f"no answer: {outcome.error_message or outcome.error_code}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _region_header(headers: httpx.Headers) -> tuple[str, str] | None:
    for name, value in headers.items():
        if "region" in name.lower() and value.strip():
            return name, value.strip()
    return None


def _check_key(session: _Session) -> tuple[Check, Check]:
    """Read one course with the key; follow a redirect only to an LMS365 host.

    Return the key check and the region check.
    """
    asked = session.base_url
    answer = session.call("GET", "/odata/v2/Courses", params={"$top": "1"})
    moved_to = ""
    if isinstance(answer, httpx.Response) and answer.is_redirect:
        location = answer.headers.get("Location", "")
        target = _origin(str(answer.url.join(location))) if location else ""
        target_host = urlsplit(target).hostname or ""
        if target_host not in REGION_HOSTS or not target.startswith("https://"):
            shown = target or "nowhere"
            return (
                Check("key", SKIPPED, "not checked: the answer was a redirect"),
                Check(
                    "region",
                    FAILED,
                    f"{_host_port(asked)[0]} redirected to {shown}, which is not an LMS365"
                    " API host; the key was not sent there",
                    "check --base-url: it should be https://api.365.systems or a regional host",
                    http_status=answer.status_code,
                ),
            )
        moved_to = target
        session.base_url = target
        answer = session.call("GET", "/odata/v2/Courses", params={"$top": "1"})
    region = _region_check(asked, moved_to, answer)
    proxy_refused = (
        answer.error_code == PROXY_AUTH_CODE
        if isinstance(answer, Outcome)
        else answer.status_code == 407
    )
    if proxy_refused:
        return (
            Check(
                "key",
                FAILED,
                "the proxy asked for credentials or refused them (HTTP 407); the request did"
                " not reach LMS365",
                _proxy_auth_action(session.proxy)
                if session.proxy is not None and session.proxy.url is not None
                else PROXY_AUTH_HELP,
                http_status=407,
            ),
            region,
        )
    if isinstance(answer, Outcome):
        return (
            Check(
                "key",
                FAILED,
                f"{_no_answer(answer)}",
                "run doctor again in a few minutes; if it persists, check the network",
            ),
            region,
        )
    status = answer.status_code
    if status in (401, 403):
        return (
            Check(
                "key",
                FAILED,
                f"LMS365 refused the key ({_answer(answer)}): a run stops at once (exit 3)",
                KEY_HELP + "; a key works only in its own tenant and region",
                assumptions=("key-refused",),
                key_refused=True,
                http_status=status,
            ),
            region,
        )
    if answer.is_success:
        return (
            Check("key", OK, "accepted: the course list can be read", http_status=status),
            region,
        )
    if status == 404:
        return (
            Check(
                "key",
                FAILED,
                f"no course list at {session.base_url}/odata/v2/Courses ({_answer(answer)})",
                "--base-url must be the API root (https://api.365.systems or a regional host),"
                " without /odata",
                http_status=status,
            ),
            region,
        )
    return (
        Check(
            "key",
            FAILED,
            f"the course list could not be read ({_answer(answer)})",
            "run doctor again in a few minutes; if it persists, ask LMS365 support",
            http_status=status,
        ),
        region,
    )


def _region_check(asked: str, moved_to: str, answer: httpx.Response | Outcome) -> Check:
    host = urlsplit(asked).hostname or ""
    if moved_to:
        new_host = urlsplit(moved_to).hostname or ""
        code = REGION_HOSTS.get(new_host, "?")
        return Check(
            "region",
            DIFFERS,
            f"{host} redirected the requests to {moved_to} (region {code}); a run does not"
            " follow redirects, so each of its requests would be refused",
            f"run with --region {code}",
            assumptions=(),
        )
    header = _region_header(answer.headers) if isinstance(answer, httpx.Response) else None
    said = f"; the answer names region {header[1]!r} ({header[0]})" if header else ""
    if host in REGION_HOSTS:
        return Check("region", OK, f"{REGION_HOSTS[host]}: the regional host {host}{said}")
    if host == GLOBAL_HOST:
        if header:
            return Check("region", OK, f"the global host answered from region {header[1]!r}")
        return Check(
            "region",
            OK,
            "could not tell: the global host's answers name no region (it routes each"
            " request by the key, so a run needs no --region)",
        )
    return Check("region", OK, f"{host} is not the global host: it answers every request{said}")


def _check_access(session: _Session) -> Check:
    """Probe the key's rights with an enroll no tenant can carry out."""
    answer = session.call(
        "POST",
        f"/odata/v2/Courses({ZERO_GUID})/Enroll",
        body={"userLoginName": PROBE_LOGIN},
    )
    probe = "an enroll into the all-zero course, which does not exist"
    if isinstance(answer, Outcome):
        return Check(
            "access",
            FAILED,
            f"{probe}: {_no_answer(answer)}",
            "run doctor again in a few minutes",
            assumptions=("read-only-probe",),
        )
    if (busy := _busy("access", answer)) is not None:
        return busy
    status = answer.status_code
    if status == 404:
        return Check(
            "access",
            OK,
            f"Full Control: {probe}, was answered {_answer(answer)}; no one was enrolled",
            assumptions=("read-only-probe",),
            http_status=status,
        )
    if status == 403:
        return Check(
            "access",
            FAILED,
            f"Read Only ({_answer(answer)}): validate and doctor work with this key, but a run"
            " stops at its first enroll (exit 3)",
            "create a Full Control key in Admin Center > Global Settings > API Key Management",
            assumptions=("read-only-probe", "key-refused"),
            http_status=status,
        )
    if status == 401:
        return Check(
            "access",
            FAILED,
            f"LMS365 refused the key for writing ({_answer(answer)}): a run stops at once",
            KEY_HELP,
            assumptions=("key-refused",),
            key_refused=True,
            http_status=status,
        )
    if answer.is_success:
        return Check(
            "access",
            FAILED,
            f"{probe}, was accepted ({_answer(answer)}): LMS365 should have answered 404",
            "tell your LMS365 administrator: a course with the all-zero id exists; no real"
            " person was named in the request",
            assumptions=("read-only-probe",),
            http_status=status,
        )
    return Check(
        "access",
        DIFFERS,
        f"{probe}, was answered {_answer(answer)} instead of 403 or 404: Full Control and"
        " Read Only cannot be told apart; the first enroll of a run tells (a Read Only key"
        " stops it with exit 3)",
        "try a single-row run first",
        assumptions=("read-only-probe",),
        http_status=status,
    )


# ---------------------------------------------------------------------------------------------
# Field checks
# ---------------------------------------------------------------------------------------------


_WORD_RE = re.compile(r"[A-Z][a-z]+|[a-z]{2,}")


def _stand_ins(
    entities: Sequence[Mapping[str, Any]], rule: FieldRule, known: set[str]
) -> list[str]:
    """Name the unknown fields that could be the missing one renamed, likeliest first.

    A field qualifies when one of its values fits the rule, or, when every value
    is null, when its name resembles the rule's.
    """
    values: dict[str, list[Any]] = {}
    for entity in entities:
        for name, value in entity.items():
            if name not in known and not name.startswith("@") and name != "CourseSessions":
                values.setdefault(name, []).append(value)

    words = {w for w in _WORD_RE.findall(rule.name) if len(w) >= 4}

    def similarity(name: str) -> float:
        # Shared words count ("RegistrationDeadline" for "EnrollmentDeadline").
        shared = 0.5 if words & set(_WORD_RE.findall(name)) else 0.0
        return shared + difflib.SequenceMatcher(None, name.lower(), rule.name.lower()).ratio()

    fitting = []
    for name, seen in values.items():
        present = [value for value in seen if value is not None]
        fits = any(not value_problem(rule, value) for value in present)
        if fits or (not present and similarity(name) >= 0.6):
            fitting.append(name)
    return sorted(fitting, key=lambda name: (-similarity(name), name))


def field_differences(
    entities: Sequence[Mapping[str, Any]], rules: Sequence[FieldRule], *, noun: str
) -> list[tuple[str, str]]:
    """Compare entities with the rules the tool reads them by.

    Return (difference, assumption) pairs: a field the contract shows that no
    entity carries (with the unknown fields of that kind it had instead), and
    values of the wrong type or outside the known values. Fields the tool does
    not know are ignored, and a field only some entities lack is not a
    difference: the tool reads a missing optional field as unknown.
    """
    found: list[tuple[str, str]] = []
    if not entities:
        return found
    known = {rule.name for rule in rules}
    plural = f"{noun}s" if len(entities) != 1 else noun
    for rule in rules:
        meaning = f"it {rule.used_for}, so {rule.consequence}"
        carrying = [entity for entity in entities if rule.name in entity]
        if not carrying:
            if not rule.expected:
                continue
            instead = _stand_ins(entities, rule, known)
            seen = f" (it carries {', '.join(instead[:3])} instead)" if instead else ""
            found.append(
                (
                    f"{noun} field {rule.name} is missing from all {len(entities)} {plural}"
                    f"{seen}: {meaning}",
                    rule.assumption,
                )
            )
            continue
        problems = [(entity, value_problem(rule, entity[rule.name])) for entity in carrying]
        bad = [(entity, problem) for entity, problem in problems if problem]
        if bad:
            count = f"in {len(bad)} of {len(entities)} {plural}"
            found.append(
                (
                    f"{noun} field {rule.name} {bad[0][1]} ({count}): {meaning}",
                    rule.assumption,
                )
            )
    return found


def _mappings(items: Any) -> list[Mapping[str, Any]]:
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


def _collection(response: httpx.Response) -> list[Mapping[str, Any]] | None:
    body = _json(response)
    if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
        return None
    return _mappings(body["value"])


def _group_differences(courses: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Session groups: a member's GroupId names a group of its own course."""
    found: list[tuple[str, str]] = []
    for course in courses:
        sessions = _mappings(course.get("CourseSessions"))
        if not any("IsGroup" in s for s in sessions):
            continue  # a missing IsGroup is its own difference; do not repeat it here
        groups = {str(s.get("Id")).lower() for s in sessions if s.get("IsGroup") is True}
        for session in sessions:
            group = session.get("GroupId")
            if isinstance(group, str) and group and group.lower() not in groups:
                found.append(
                    (
                        f"session {session.get('Id')} names group {group}, which is not a"
                        f" session group of course {course.get('Id')}; a run books the"
                        " session alone",
                        "session-groups",
                    )
                )
                return found
    return found


def _check_courses(session: _Session) -> tuple[Check, list[Mapping[str, Any]]]:
    """Read one page of courses with their sessions and check every field the tool reads."""
    params = {"$top": str(COURSES_PAGE), "$expand": "CourseSessions"}
    answer = session.call("GET", "/odata/v2/Courses", params=params)
    if isinstance(answer, httpx.Response) and answer.status_code == 400:
        # $expand on the list is not in the contract; a run reads sessions per course.
        answer = session.call("GET", "/odata/v2/Courses", params={"$top": str(COURSES_PAGE)})
    assumptions = ("course-fields", "courses-query", "guid-ids", "seats", "dates")
    if isinstance(answer, Outcome):
        return (
            Check("courses", FAILED, _no_answer(answer), "run doctor again in a few minutes"),
            [],
        )
    if (busy := _busy("courses", answer)) is not None:
        return busy, []
    courses = _collection(answer) if answer.is_success else None
    if courses is None:
        return (
            Check(
                "courses",
                DIFFERS,
                f"GET /odata/v2/Courses?$top={COURSES_PAGE} was answered {_answer(answer)},"
                ' not a list of courses ({"value": [...]}): a run cannot find courses by'
                " code or title",
                REPORT,
                assumptions=("courses-query",),
                http_status=answer.status_code,
            ),
            [],
        )
    if not courses:
        return (
            Check(
                "courses",
                DIFFERS,
                "the tenant answered with no courses: there is nothing to check fields"
                " against, and a run will find no course",
                "create or publish a course, or check that the key is for the right tenant",
                assumptions=assumptions,
            ),
            [],
        )
    ilt = [c for c in courses if c.get("CourseType") in ILT_COURSE_TYPES]
    # Sessions are read wherever they came, whatever CourseType says: a renamed
    # CourseType must not hide the session fields from the check.
    expanded = [c for c in courses if isinstance(c.get("CourseSessions"), list)]
    if ilt and not any(isinstance(c.get("CourseSessions"), list) for c in ilt):
        # The run's own path: one course by its key, sessions expanded.
        one = session.call(
            "GET", f"/odata/v2/Courses({ilt[0].get('Id')})", params={"$expand": "CourseSessions"}
        )
        if isinstance(one, httpx.Response) and one.is_success:
            body = _json(one)
            if isinstance(body, Mapping):
                expanded = [body]
    sessions = [s for c in expanded for s in _mappings(c.get("CourseSessions"))]
    found = field_differences(courses, COURSE_FIELDS, noun="course")
    found += field_differences(sessions, SESSION_FIELDS, noun="session")
    found += _group_differences(expanded)
    groups = sum(1 for s in sessions if s.get("IsGroup") is True)
    unknown = sorted(
        {
            name
            for entity in (*courses, *sessions)
            for name in entity
            if name not in {r.name for r in (*COURSE_FIELDS, *SESSION_FIELDS)}
            and name != "CourseSessions"
            and not name.startswith("@")
        }
    )
    seen = (
        f"{len(courses)} courses ({len(ilt)} instructor-led), {len(sessions)} sessions"
        f" ({groups} session groups)"
    )
    ignored = f"; {len(unknown)} other fields ignored" if unknown else ""
    if ilt and not sessions:
        found.append(
            (
                "no session came back for the instructor-led courses (not even with"
                " $expand=CourseSessions): sessions cannot be matched or checked",
                "course-fields",
            )
        )
    if not found:
        return (
            Check(
                "courses",
                OK,
                f"{seen} carry every field the tool reads, in the form it expects{ignored}",
                assumptions=assumptions,
            ),
            courses,
        )
    first = found[0][0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (
        Check(
            "courses",
            DIFFERS,
            f"read {seen}: {first}{more}",
            "report this output to whoever maintains batch-enroll; until then rows are still"
            " sent, and LMS365 refuses those that break its rules",
            assumptions=tuple(dict.fromkeys(a for _, a in found)),
            differences=tuple(d for d, _ in found),
        ),
        courses,
    )


def _check_enrollments(session: _Session, courses: Sequence[Mapping[str, Any]]) -> Check:
    id_rule = next(rule for rule in COURSE_FIELDS if rule.name == "Id")
    course = next((c for c in courses if not value_problem(id_rule, c.get("Id"))), None)
    course_id = str(course.get("Id")) if course is not None else ZERO_GUID
    named = f"course {course.get('Title') or course_id}" if course is not None else course_id
    flt = f"CourseId eq {course_id}"
    answer = session.call("GET", "/odata/v2/Enrollments", params={"$filter": flt, "$top": "5"})
    if isinstance(answer, Outcome):
        return Check("enrollments", FAILED, _no_answer(answer), "run doctor again in a few minutes")
    if (busy := _busy("enrollments", answer)) is not None:
        return busy
    items = _collection(answer) if answer.is_success else None
    if items is None:
        return Check(
            "enrollments",
            DIFFERS,
            f"$filter={flt} was answered {_answer(answer)}, not a list of enrollments:"
            f" {ASSUMPTIONS['enrollments-filter'].if_wrong}; rows whose answer is lost fail"
            " as Unconfirmed instead of being checked",
            REPORT,
            assumptions=("enrollments-filter",),
            http_status=answer.status_code,
        )
    found = field_differences(items, ENROLLMENT_FIELDS, noun="enrollment")
    others = [
        item
        for item in items
        if isinstance(item.get("CourseId"), str) and item["CourseId"].lower() != course_id.lower()
    ]
    if others:
        found.append(
            (
                f"the filter was ignored: {len(others)} of {len(items)} enrollments are of"
                " other courses; a run drops them itself, but reads every enrollment of the"
                " tenant to do so",
                "enrollments-filter",
            )
        )
    if found:
        return Check(
            "enrollments",
            DIFFERS,
            f"$filter={flt} accepted, but {found[0][0]}",
            REPORT,
            assumptions=tuple(dict.fromkeys(a for _, a in found)),
            differences=tuple(d for d, _ in found),
            http_status=answer.status_code,
        )
    return Check(
        "enrollments",
        OK,
        f"$filter=CourseId eq <guid> accepted: {len(items)} enrollment"
        f"{'s' if len(items) != 1 else ''} of {named} in the first page",
        assumptions=("enrollments-filter",),
        http_status=answer.status_code,
    )


def _check_users(session: _Session, email: str | None) -> Check:
    address = email or PROBE_EMAIL
    quoted = "'" + address.replace("'", "''") + "'"
    answer = session.call("GET", "/odata/v2/Users", params={"$filter": f"Email eq {quoted}"})
    if isinstance(answer, Outcome):
        return Check("users", FAILED, _no_answer(answer), "run doctor again in a few minutes")
    if (busy := _busy("users", answer)) is not None:
        return busy
    users = _collection(answer) if answer.is_success else None
    if users is None:
        return Check(
            "users",
            DIFFERS,
            f"$filter=Email eq '...' was answered {_answer(answer)}, not a list of users:"
            f" {ASSUMPTIONS['users-filter'].if_wrong}",
            "run without --resolve-users, with login names in the sheet",
            assumptions=("users-filter",),
            http_status=answer.status_code,
        )
    found = field_differences(users, USER_FIELDS, noun="user")
    strangers = [
        u for u in users if str(u.get("Email", address)).strip().lower() != address.lower()
    ]
    if strangers:
        found.append(
            (
                f"the filter was ignored: {len(strangers)} users with other e-mails came back"
                " for one address; --resolve-users could send the wrong person",
                "users-filter",
            )
        )
    if found:
        return Check(
            "users",
            DIFFERS,
            f"$filter=Email eq '...' accepted, but {found[0][0]}",
            "run without --resolve-users until this is understood",
            assumptions=tuple(dict.fromkeys(a for _, a in found)),
            differences=tuple(d for d, _ in found),
            http_status=answer.status_code,
        )
    if email is None:
        return Check(
            "users",
            OK,
            "$filter=Email eq '...' accepted (no user has the probe address, as expected)",
            assumptions=("users-filter",),
            http_status=answer.status_code,
        )
    if not users:
        return Check(
            "users",
            DIFFERS,
            f"$filter=Email eq '...' accepted, but no user has {address}: --resolve-users"
            " marks such rows invalid",
            "check the address, or sync the person to LMS365 first",
            assumptions=("users-filter",),
            http_status=answer.status_code,
        )
    login = users[0].get("LoginName")
    return Check(
        "users",
        OK,
        f"$filter=Email eq '...' accepted: {address} is {login}",
        assumptions=("users-filter",),
        http_status=answer.status_code,
    )


def _check_round_trip(timings: Sequence[float], *, timeout: float) -> Check:
    if not timings:
        return Check("round_trip", SKIPPED, "not checked: no request was answered")
    median = statistics.median(timings)
    slowest = max(timings)
    count = f"{len(timings)} request" + ("s" if len(timings) != 1 else "")
    seen = f"median {_ms(median):g} ms, slowest {_ms(slowest):g} ms over {count}"
    if slowest > timeout / 2:
        return Check(
            "round_trip",
            DIFFERS,
            f"{seen}: close to the {timeout:g} s --timeout, so a run may time out and retry",
            f"run with --timeout {max(30, int(slowest * 4))}",
            elapsed_ms=_ms(median),
        )
    ceiling = ""
    if median > 0:
        ceiling = (
            f"; a run with {RUN_CONCURRENCY} requests in flight could send about"
            f" {RUN_CONCURRENCY / median:,.0f} a second, if the tenant's throttle allows"
        )
    return Check("round_trip", OK, f"{seen}{ceiling}", elapsed_ms=_ms(median))


def check_api(options: ConnectionOptions, *, email: str | None = None) -> list[Check]:
    """Run the checks that speak to the API: region, key, access, queries, round trip.

    Requests go over the transport a run with ``options`` builds: its proxy (``--proxy``
    or the environment, as curl reads it), its TLS trust, no redirects followed.
    """
    from anyio.from_thread import start_blocking_portal

    token = base64.b64encode(f"api:{options.api_key}".encode()).decode("ascii")
    headers = {
        "Accept": "application/json",
        "Authorization": f"Basic {token}",
        "User-Agent": "batch-enroll-doctor",
    }

    async def open_client() -> httpx.AsyncClient:
        # Built on the portal's loop: aiohttp binds its session to the loop it starts on.
        return httpx.AsyncClient(
            headers=headers,
            timeout=options.timeout,
            follow_redirects=False,
            trust_env=False,
            transport=make_transport(options),
        )

    try:
        proxy: ProxyChoice | None = which_proxy(options)
    except ConfigError:
        proxy = None  # the transport refuses it in its own words
    with start_blocking_portal("asyncio") as portal:
        client = portal.call(open_client)
        try:
            checks = _api_checks(
                _Session(client, portal, options.base_url.rstrip("/"), proxy),
                email=email,
                timeout=options.timeout,
            )
        finally:
            portal.call(client.aclose)
    return scrub(checks, options.api_key)


def _api_checks(session: _Session, *, email: str | None, timeout: float) -> list[Check]:
    key, region = _check_key(session)
    checks = [region, key]
    # A refused key, a redirect or silence ends the talk; any other answer
    # leaves the later checks worth running, each saying what it saw.
    stopped = key.key_refused or key.status == SKIPPED or key.http_status in (None, 407)
    if key.status != OK and stopped:
        why = "the key was refused" if key.key_refused else "LMS365 did not answer"
        if key.status == SKIPPED:
            why = "the answer was a redirect"
        elif key.http_status == 407:
            why = "the proxy refused the request"
        later = ("access", "courses", "enrollments", "users")
        checks += _skipped(later, why)
    else:
        checks.append(_check_access(session))
        courses_check, courses = _check_courses(session)
        checks.append(courses_check)
        checks.append(_check_enrollments(session, courses))
        checks.append(_check_users(session, email))
    checks.append(_check_round_trip(session.timings, timeout=timeout))
    return checks


def check_tenant(options: ConnectionOptions, *, email: str | None = None) -> list[Check]:
    """Run every check against a tenant, in order; never send anything that changes it.

    ``options`` are a run's: the same host, key, proxy and TLS trust.
    """
    api_names = ("region", "key", "access", "courses", "enrollments", "users", "round_trip")
    base_url, timeout = options.base_url, options.timeout
    try:
        choice = which_proxy(options)
    except ConfigError as exc:
        checks = [Check("proxy", FAILED, str(exc), "correct the proxy setting it names")]
        checks += _skipped(("host", "tls", *api_names), "the proxy setting cannot be used")
        return scrub(checks, options.api_key)
    proxy = check_proxy(base_url=base_url, choice=choice, timeout=timeout)
    checks = [proxy]
    if proxy.status != OK:
        checks += _skipped(("host", "tls", *api_names), "the proxy cannot be used")
        return scrub(checks, options.api_key)
    if choice.url is None:
        host = check_host(base_url=base_url, timeout=timeout)
    else:
        host = _through_proxy(base_url=base_url, choice=choice)
    checks.append(host)
    if host.status != OK:
        checks += _skipped(("tls", *api_names), "the host cannot be reached")
    else:
        tls = check_tls(base_url=base_url, timeout=timeout, verify=options.verify, proxy=choice)
        checks.append(tls)
        if tls.status != OK:
            checks += _skipped(api_names, "the TLS handshake failed")
        else:
            checks += check_api(options, email=email)
    return scrub(checks, options.api_key)


def scrub(checks: Sequence[Check], api_key: str) -> list[Check]:
    """Blank the key and proxy passwords out of every text, should an answer echo them."""
    token = base64.b64encode(f"api:{api_key}".encode()).decode("ascii")

    def clean(text: str) -> str:
        # Proxy passwords too: the proxy module remembers each one it reads.
        if api_key:
            text = text.replace(api_key, "***").replace(token, "***")
        return scrub_secrets(text)

    return [
        replace(
            check,
            detail=clean(check.detail),
            action=clean(check.action),
            differences=tuple(clean(d) for d in check.differences),
        )
        for check in checks
    ]


def exit_code(checks: Sequence[Check]) -> int:
    """Return 0 when every check is OK, 3 when the key was refused, else 1."""
    if any(check.key_refused for check in checks):
        return EXIT_KEY_REFUSED
    if all(check.status == OK for check in checks):
        return EXIT_OK
    return EXIT_PROBLEMS


def render_text(checks: Sequence[Check], *, base_url: str) -> str:
    """Render one line per check, with what to do and each difference below it."""
    width = max(len(check.title) for check in checks)
    lines = [f"batch-enroll doctor: {base_url}"]
    for check in checks:
        lines.append(f"{check.status:<7}  {check.title:<{width}}  {check.detail}")
        pad = " " * (9 + width + 2)
        lines.extend(f"{pad}- {difference}" for difference in check.differences[1:])
        if check.action and check.status != OK:
            lines.append(f"{pad}what to do: {check.action}")
    code = exit_code(checks)
    attention = sum(1 for check in checks if check.status in (DIFFERS, FAILED))
    if code == EXIT_OK:
        lines.append("All checks passed: a run can start (validate the sheet first).")
    else:
        lines.append(f"{attention} of {len(checks)} checks need attention (exit {code}).")
    return "\n".join(lines)


def render_json(checks: Sequence[Check], *, base_url: str) -> str:
    """Render the checks as JSON for scripts."""
    return json.dumps(
        {
            "base_url": base_url,
            "exit_code": exit_code(checks),
            "checks": [check.to_dict() for check in checks],
        },
        indent=2,
    )
