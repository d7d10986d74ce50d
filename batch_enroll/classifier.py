"""Turn every LMS365 answer, or the lack of one, into a verdict the pool acts on.

LMS365 documents the shape of its errors but not most of their codes, nor how it
answers "already enrolled" or a throttled request. Every such assumption lives
here and only here, so that matching the real service means editing this module.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx


class Verdict(enum.Enum):
    """What the pool should do with an answer."""

    SUCCESS = "success"
    ALREADY_ENROLLED = "already_enrolled"
    NOT_ENROLLED = "not_enrolled"
    #: The request had no effect; sending it again is safe.
    RETRY = "retry"
    #: The tenant's throttle refused the request; it had no effect.
    THROTTLED = "throttled"
    #: The request may have reached LMS365 and taken effect; ask before resending.
    IN_DOUBT = "in_doubt"
    #: The key is wrong or read-only: no request of this run can succeed.
    FATAL_AUTH = "fatal_auth"
    #: LMS365 refused this row for good.
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A classified answer."""

    verdict: Verdict
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    retry_after: float | None = None
    body: Mapping[str, Any] | None = None


# Assumed codes (../shared contract, "Errors"): LMS365 names only the error shape.
ALREADY_ENROLLED_CODE = "UserAlreadyEnrolled"
NOT_ENROLLED_CODE = "UserNotEnrolled"

# Gateways answer 502/504 when they lost the backend's reply, not only when the
# backend never saw the request: for a POST that is a doubt, not a clean failure.
_IN_DOUBT_STATUSES = frozenset({502, 504})
_RETRY_STATUSES = frozenset({500, 503})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or seconds < 0:
        return 0.0
    # A hostile or broken header must not park the whole run for hours.
    return min(seconds, 300.0)


def _error_fields(body: Any) -> tuple[str, str]:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""


def classify_response(response: httpx.Response, *, doubt: bool = False) -> Outcome:
    """Classify an HTTP answer to any LMS365 request.

    ``doubt`` says an earlier attempt of the same POST may have landed; a 409 then
    means that attempt enrolled the user, so it counts as our success.
    """
    status = response.status_code
    try:
        body: Any = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    code, message = _error_fields(body)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    mapping = body if isinstance(body, Mapping) else None

    if 200 <= status < 300:
        return Outcome(Verdict.SUCCESS, status, body=mapping)
    if status == 407:
        # From the proxy, not LMS365, and just as fatal: no request can get through.
        return _proxy_auth_refused(status)
    if status in (401, 403):
        code = code or ("Unauthorized" if status == 401 else "Forbidden")
        return Outcome(Verdict.FATAL_AUTH, status, code, message or "LMS365 refused the API key")
    if status == 429:
        return Outcome(Verdict.THROTTLED, status, code or "TooManyRequests", message, retry_after)
    if status == 409 and code in (ALREADY_ENROLLED_CODE, ""):
        # A conflict on Enroll can only mean an existing enrollment, even when a
        # gateway stripped the body; the code is assumed, the status is not.
        verdict = Verdict.SUCCESS if doubt else Verdict.ALREADY_ENROLLED
        return Outcome(verdict, status, ALREADY_ENROLLED_CODE, message)
    if status == 400 and code == NOT_ENROLLED_CODE:
        return Outcome(Verdict.NOT_ENROLLED, status, code, message)
    if status in _IN_DOUBT_STATUSES:
        return Outcome(Verdict.IN_DOUBT, status, code or f"HTTP{status}", message, retry_after)
    if status in _RETRY_STATUSES or status >= 500:
        return Outcome(Verdict.RETRY, status, code or f"HTTP{status}", message, retry_after)
    return Outcome(
        Verdict.REJECTED,
        status,
        code or f"HTTP{status}",
        message or response.reason_phrase or "request refused",
    )


PROXY_AUTH_CODE = "ProxyAuthenticationRequired"


def _proxy_auth_refused(status: int | None) -> Outcome:
    return Outcome(
        Verdict.FATAL_AUTH,
        status,
        PROXY_AUTH_CODE,
        "the proxy asked for credentials or refused them (407); give them as"
        " --proxy http://user:password@host:port",
    )


def _proxy_refusal(exc: BaseException) -> Outcome | None:
    """Classify a proxy that would not open a tunnel or could not be reached."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and isinstance(exc.__cause__, aiohttp.ClientProxyConnectionError):
        return Outcome(Verdict.RETRY, None, "ProxyError", "could not connect to the proxy")
    if not isinstance(exc, httpx.ProxyError):
        return None
    # aiohttp's error carries the status; httpcore's says it first in its message.
    status = getattr(exc.__cause__, "status", None)
    if status is None and str(exc)[:3].isdigit():
        status = int(str(exc)[:3])
    if status == 407:
        return _proxy_auth_refused(status)
    _, connector_error, _ = _aiohttp_errors()
    if isinstance(exc.__cause__, connector_error):
        return Outcome(Verdict.RETRY, None, "ProxyError", "could not connect to the proxy")
    # A refused CONNECT opened no tunnel: nothing reached LMS365.
    detail = f" ({status})" if isinstance(status, int) else ""
    return Outcome(Verdict.RETRY, None, "ProxyError", f"the proxy refused the connection{detail}")


# Raised before a single byte of the request could have reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _aiohttp_errors() -> tuple[type[BaseException], type[BaseException], type[BaseException]]:
    """Return aiohttp's error classes, or stand-ins nothing raises when it is not loaded.

    Only an aiohttp transport raises them, and it has imported aiohttp by then;
    looking it up here keeps aiohttp's import off commands that send nothing.
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return (_NeverRaised, _NeverRaised, _NeverRaised)
    return (
        aiohttp.ClientError,
        aiohttp.ClientConnectorError,
        aiohttp.ClientConnectorCertificateError,
    )


class _NeverRaised(Exception):
    """Matches no real exception."""


def _was_not_sent(exc: BaseException) -> bool:
    cause = exc.__cause__
    client_error, connector_error, _ = _aiohttp_errors()
    if isinstance(cause, client_error):
        # The aiohttp transport maps every ClientConnectionError, a server that
        # hung up after reading our POST included, to httpx.ConnectTimeout; only
        # a failure to open the connection proves nothing was sent.
        return isinstance(cause, connector_error)
    return isinstance(exc, _NOT_SENT)


def classify_exception(exc: BaseException) -> Outcome:
    """Classify a transport failure: could the request have taken effect or not."""
    name = type(exc.__cause__ or exc).__name__
    client_error, _, certificate_error = _aiohttp_errors()
    if isinstance(exc.__cause__, certificate_error) or isinstance(
        exc.__cause__ or exc.__context__, ssl.SSLCertVerificationError
    ):
        return Outcome(
            Verdict.RETRY,
            None,
            "CertificateError",
            "the server's TLS certificate is not trusted; behind a corporate proxy,"
            " pass its CA certificate with --ca-bundle",
        )
    refused = _proxy_refusal(exc)
    if refused is not None:
        return refused
    transport_failure = isinstance(exc, httpx.TransportError | client_error | OSError)
    if transport_failure and _was_not_sent(exc):
        return Outcome(Verdict.RETRY, None, name, "could not connect to LMS365")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return Outcome(Verdict.IN_DOUBT, None, name, "LMS365 did not answer in time")
    if transport_failure:
        return Outcome(Verdict.IN_DOUBT, None, name, "the connection broke before LMS365 answered")
    raise exc
