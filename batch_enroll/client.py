"""Talk to the LMS365 API: one request at a time, retried safely, paced by the shared limiter."""

from __future__ import annotations

import base64
import dataclasses
import json as jsonlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx

from batch_enroll.classifier import (
    Outcome,
    Verdict,
    classify_exception,
    classify_response,
    is_pending,
    is_waitlisted,
)
from batch_enroll.errors import AuthFailure, CallFailed
from batch_enroll.model import (
    ALREADY_ENROLLED,
    ENROLLED,
    FAILED,
    UNENROLLED,
    WAITLISTED,
    Job,
    RowResult,
)
from batch_enroll.options import ConnectionOptions, RequestEvent
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.transport import make_transport

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AuthFailure",
    "CallFailed",
    "LmsClient",
    "RequestEvent",
    "canonical_login",
    "current_row",
    "login_key",
    "login_keys",
    "odata_quote",
]

log = logging.getLogger("batch_enroll")

CLAIMS_PREFIX = "i:0#.f|membership|"
#: The course fields a lookup by code or title needs.
COURSE_FIELDS = "Id,CourseID,Title"
#: Consecutive 429s one row may meet before it is given up; they do not use up
#: --max-retries because the shared pause, not the row, is what waits them out.
MAX_THROTTLED = 50

#: The sheet row a request serves, for the request log; set by the worker pool.
current_row: ContextVar[int | None] = ContextVar("current_row", default=None)


def odata_quote(value: str) -> str:
    """Quote a string literal for an OData ``$filter``."""
    return "'" + value.replace("'", "''") + "'"


def login_key(login: str) -> str:
    """Return the form two login names are compared in: lower case, no claims prefix.

    LMS365 stores ``i:0#.f|membership|<upn>``; a sheet may hold the plain UPN, or
    the claims form in any case. This is the one rule every comparison of logins
    uses: duplicates, --skip-enrolled, reconciling an unanswered POST, unenroll.
    """
    return login.strip().lower().removeprefix(CLAIMS_PREFIX)


def login_keys(logins: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Return ``login_key`` of every login of a column at once.

    The same three steps as ``login_key``, each run over the whole column by a
    numpy ufunc that calls the ``str`` method from C: no Python function runs per
    cell, which is what a million distinct logins cost before.
    """
    import numpy as np  # only the checks of a whole sheet need numpy

    stripped = np.frompyfunc(str.strip, 1, 1)(logins)
    lowered = np.frompyfunc(str.lower, 1, 1)(stripped)
    keys = np.frompyfunc(str.removeprefix, 2, 1)(lowered, CLAIMS_PREFIX)
    return np.asarray(keys, dtype=object)


def canonical_login(login: str) -> str:
    """Return a login as LMS365 writes it: the claims prefix, if any, in lower case."""
    text = login.strip()
    if text.lower().startswith(CLAIMS_PREFIX):
        return CLAIMS_PREFIX + text[len(CLAIMS_PREFIX) :]
    return text


def _login_variants(login: str) -> list[str]:
    # The Enrollments filter is assumed to match the stored login exactly. LMS365
    # stores the claims form, so that is asked first; a server that kept the
    # plain UPN is asked second.
    text = canonical_login(login)
    if text.startswith(CLAIMS_PREFIX):
        return [text, text[len(CLAIMS_PREFIX) :]]
    if "@" in text:
        return [CLAIMS_PREFIX + text, text]
    return [text]


class LmsClient:
    """An LMS365 API client whose every request shares one rate limiter."""

    def __init__(
        self,
        connection: ConnectionOptions,
        *,
        limiter: RateLimiter,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.limiter = limiter
        self.max_retries = connection.max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._on_event = connection.on_event
        self._rng = rng or random.Random()
        transport = make_transport(connection)
        # Requests go straight to the transport: httpx's client layer (URL merging,
        # the auth flow, the cookie jar) cost more CPU per request than the transport
        # itself, and at a tenant's ceiling that CPU is the limit. What it did for us
        # is done once here: the base URL, the Basic auth header, the timeouts.
        self._transport = transport
        self._base_url = connection.base_url.rstrip("/")
        token = base64.b64encode(f"api:{connection.api_key}".encode()).decode("ascii")
        self._headers = httpx.Headers(
            {
                "Accept": "application/json",
                "Authorization": f"Basic {token}",
                "User-Agent": "batch-enroll",
            }
        )
        self._json_headers = httpx.Headers({**self._headers, "Content-Type": "application/json"})
        self._timeout = httpx.Timeout(connection.timeout).as_dict()
        self._urls: dict[str, httpx.URL] = {}

    async def __aenter__(self) -> LmsClient:
        await self._transport.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._transport.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._transport.aclose()

    def _url(self, url: str, params: Mapping[str, str] | None) -> httpx.URL:
        """Resolve a path (or an absolute ``@odata.nextLink``) against the base URL."""
        if params:
            absolute = url if "://" in url else self._base_url + url
            return httpx.URL(absolute, params=dict(params))
        cached = self._urls.get(url)
        if cached is None:
            absolute = url if "://" in url else self._base_url + url
            cached = httpx.URL(absolute)
            if len(self._urls) < 4096:  # one per course: parsed once, not per row
                self._urls[url] = cached
        return cached

    async def _send(
        self,
        method: str,
        url: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> httpx.Response:
        content = None
        headers = self._headers
        if json is not None:
            content = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            headers = self._json_headers
        request = httpx.Request(
            method,
            self._url(url, params),
            headers=headers,
            content=content,
            extensions={"timeout": self._timeout},
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    # -- one request ------------------------------------------------------------

    async def _once(
        self,
        method: str,
        url: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        doubt: bool = False,
    ) -> Outcome:
        await self.limiter.acquire()
        started = time.monotonic()
        try:
            response = await self._send(method, url, json, params)
        except (httpx.TransportError, OSError) as exc:
            outcome = classify_exception(exc)
        else:
            outcome = classify_response(response, doubt=doubt)
        elapsed = time.monotonic() - started
        if outcome.verdict is Verdict.THROTTLED:
            self.limiter.on_throttle(outcome.retry_after)
        elif outcome.http_status is not None:
            # The round trip paces slow start: one doubling per couple of them.
            self.limiter.on_answer(elapsed)
        if self._on_event is not None or log.isEnabledFor(logging.DEBUG):
            event = {
                "row": current_row.get(),
                "method": method,
                "path": urlsplit(url).path or url,
                "http_status": outcome.http_status,
                "verdict": outcome.verdict.value,
                "error_code": outcome.error_code,
                "elapsed_ms": round(elapsed * 1000, 1),
            }
            log.debug(
                "%s %s -> %s %s", method, event["path"], outcome.http_status, outcome.verdict.value
            )
            if self._on_event is not None:
                self._on_event(event)
        if outcome.verdict is Verdict.FATAL_AUTH:
            raise AuthFailure(outcome)
        return outcome

    async def _wait_before_retry(self, outcome: Outcome, retry_number: int) -> None:
        if outcome.verdict is Verdict.THROTTLED and outcome.retry_after is not None:
            return  # the shared limiter is already paused for everyone
        if outcome.retry_after is not None:
            await anyio.sleep(outcome.retry_after)
            return
        # Full jitter keeps a crowd of failed workers from retrying in step.
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (retry_number - 1))
        await anyio.sleep(self._rng.uniform(0, ceiling))

    async def _get(self, url: str, *, params: Mapping[str, str] | None = None) -> Outcome:
        """GET with retries; reads are safe to repeat whatever went wrong."""
        retries = throttled = attempts = 0
        while True:
            outcome = await self._once("GET", url, params=params)
            attempts += 1
            verdict = outcome.verdict
            if verdict is Verdict.WAITLISTED:
                # Only an Enroll answer means a waiting list; a read is simply answered.
                return dataclasses.replace(outcome, verdict=Verdict.SUCCESS)
            if verdict in (Verdict.SUCCESS, Verdict.REJECTED):
                return outcome
            if verdict is Verdict.THROTTLED:
                throttled += 1
                if throttled > MAX_THROTTLED:
                    raise CallFailed(outcome, attempts)
                await self._wait_before_retry(outcome, throttled)
                continue
            retries += 1
            if retries > self.max_retries:
                raise CallFailed(outcome, attempts)
            await self._wait_before_retry(outcome, retries)

    async def _pages(
        self, url: str, *, params: Mapping[str, str] | None = None
    ) -> AsyncGenerator[tuple[list[Any], Mapping[str, Any]], None]:
        """GET a collection page by page, following ``@odata.nextLink``; yield (items, body)."""
        next_url: str | None = url
        next_params = params
        seen: set[str] = set()
        while next_url:
            current = self._url(next_url, next_params)
            outcome = await self._get(next_url, params=next_params)
            if outcome.verdict is not Verdict.SUCCESS or outcome.body is None:
                raise CallFailed(outcome, 1)
            value = outcome.body.get("value")
            link = outcome.body.get("@odata.nextLink")
            # OData allows a link relative to the page it came with.
            next_url = str(current.join(link)) if isinstance(link, str) and link else None
            if next_url in seen:
                # A server that links a page to itself must not loop us forever.
                raise CallFailed(Outcome(Verdict.REJECTED, error_code="PagingLoop"), 1)
            if next_url:
                seen.add(next_url)
            next_params = None  # the link carries its own query
            yield (list(value) if isinstance(value, list) else []), outcome.body

    async def _get_all(self, url: str, *, params: Mapping[str, str] | None = None) -> list[Any]:
        """GET a collection, following ``@odata.nextLink`` to the end."""
        items: list[Any] = []
        async for page, _ in self._pages(url, params=params):
            items.extend(page)
        return items

    # -- reads ------------------------------------------------------------------

    async def get_course(self, course_id: str) -> Mapping[str, Any] | None:
        """Return a course with its sessions, or None when LMS365 has no such course.

        ``course_id`` is the course's GUID, written unquoted in the key as LMS365 wants.
        """
        outcome = await self._get(
            f"/odata/v2/Courses({course_id})", params={"$expand": "CourseSessions"}
        )
        if outcome.verdict is Verdict.SUCCESS and outcome.body is not None:
            return outcome.body
        if outcome.http_status == 404:
            return None
        raise CallFailed(outcome, 1)

    def course_pages(
        self, *, select: str = COURSE_FIELDS, filter: str | None = None, count: bool = False
    ) -> AsyncGenerator[tuple[list[Any], Mapping[str, Any]], None]:
        """Read the course list (or the courses a ``$filter`` picks) page by page."""
        params = {"$select": select}
        if filter is not None:
            params["$filter"] = filter
        if count:
            params["$count"] = "true"
        return self._pages("/odata/v2/Courses", params=params)

    async def find_courses(self, filter: str, *, select: str = COURSE_FIELDS) -> list[Any]:
        """Return every course a ``$filter`` picks, all pages."""
        items: list[Any] = []
        async for page, _ in self.course_pages(select=select, filter=filter):
            items.extend(page)
        return items

    async def find_enrollments(
        self, course_id: str, login: str | None = None
    ) -> list[Mapping[str, Any]]:
        """List a course's enrollments, or one user's enrollment in it."""
        logins = _login_variants(login) if login is not None else [None]
        wanted = login_key(login) if login is not None else None
        for variant in logins:
            flt = f"CourseId eq {course_id}"
            if variant is not None:
                flt += f" and UserLoginName eq {odata_quote(variant)}"
            found = await self._get_all("/odata/v2/Enrollments", params={"$filter": flt})
            # The filter is an assumption: keep only what matches, should a server
            # ignore a clause and answer with other courses' or people's enrollments.
            matching = [
                item
                for item in found
                if isinstance(item, Mapping)
                and str(item.get("CourseId", course_id)).lower() == course_id.lower()
                and (
                    wanted is None
                    or "UserLoginName" not in item
                    or login_key(str(item["UserLoginName"])) == wanted
                )
            ]
            if matching:
                return matching
        return []

    async def find_user_by_email(self, email: str) -> Mapping[str, Any] | None:
        """Return the LMS365 user with this e-mail, or None."""
        found = await self._get_all(
            "/odata/v2/Users", params={"$filter": f"Email eq {odata_quote(email)}"}
        )
        return found[0] if found and isinstance(found[0], Mapping) else None

    # -- writes -----------------------------------------------------------------

    async def enroll(self, job: Job) -> RowResult:
        """Enroll one user, never twice: an unanswered POST is checked before it is resent."""
        body: dict[str, Any] = {"userLoginName": job.login}
        if job.session_ids:
            body["courseSessionIds"] = list(job.session_ids)
        if job.ignore_max_attendees:
            body["ignoreMaxAttendees"] = True
        if job.ignore_enrollment_flow:
            body["ignoreEnrollmentFlow"] = True
        url = f"/odata/v2/Courses({job.course_id})/Enroll"

        async def landed() -> RowResult | None:
            found = await self.find_enrollments(job.course_id, job.login)
            return _from_enrollment(job, ENROLLED, found[0], None) if found else None

        return await self._post(job, url, body, landed=landed, success=ENROLLED)

    async def unenroll(self, job: Job) -> RowResult:
        """Unenroll one user; a user who held no enrollment is reported, not failed."""
        body: dict[str, Any] = {"userLoginName": job.login}
        if job.message:
            body["message"] = job.message
        url = f"/odata/v2/Courses({job.course_id})/Unenroll"

        async def landed() -> RowResult | None:
            found = await self.find_enrollments(job.course_id, job.login)
            return None if found else RowResult(job.index, UNENROLLED)

        return await self._post(job, url, body, landed=landed, success=UNENROLLED)

    async def _post(
        self,
        job: Job,
        url: str,
        body: Mapping[str, Any],
        *,
        landed: Callable[[], Awaitable[RowResult | None]],
        success: str,
    ) -> RowResult:
        attempts = retries = throttled = 0
        doubt = False
        while True:
            outcome = await self._once("POST", url, json=body, doubt=doubt)
            attempts += 1
            verdict = outcome.verdict
            if verdict in (Verdict.SUCCESS, Verdict.WAITLISTED):
                if outcome.http_status is not None and outcome.http_status >= 400:
                    # "Already enrolled" after a doubt: our earlier, unanswered
                    # attempt is what enrolled the user.
                    result = await self._confirm(landed) or RowResult(job.index, success)
                    return _finish(result, outcome.http_status, attempts)
                return _finish(
                    _from_enrollment(job, success, outcome.body, outcome.http_status),
                    outcome.http_status,
                    attempts,
                )
            if verdict is Verdict.ALREADY_ENROLLED:
                existing = await self._confirm(landed)
                result = RowResult(job.index, ALREADY_ENROLLED)
                if existing is not None:
                    result.registration_date = existing.registration_date
                    result.enrollment_id = existing.enrollment_id
                result.error_code = outcome.error_code
                result.error_message = outcome.error_message
                return _finish(result, outcome.http_status, attempts)
            if verdict is Verdict.NOT_ENROLLED:
                result = RowResult(
                    job.index,
                    UNENROLLED,
                    error_code=outcome.error_code,
                    warnings=["the user held no enrollment in this course; nothing was changed"],
                )
                return _finish(result, outcome.http_status, attempts)
            if verdict is Verdict.REJECTED:
                return _failed(job, outcome, attempts)
            if verdict is Verdict.THROTTLED:
                throttled += 1
                if throttled > MAX_THROTTLED:
                    return _failed(job, outcome, attempts, gave_up=True)
                await self._wait_before_retry(outcome, throttled)
                continue
            if verdict is Verdict.IN_DOUBT:
                doubt = True
                try:
                    confirmed = await landed()
                except CallFailed:
                    # Resending blind could enroll twice; leave it to a person or --resume.
                    return _unconfirmed(job, outcome, attempts)
                if confirmed is not None:
                    return _finish(confirmed, outcome.http_status, attempts)
            retries += 1
            if retries > self.max_retries:
                return _failed(job, outcome, attempts, gave_up=True)
            await self._wait_before_retry(outcome, retries)

    async def _confirm(self, landed: Callable[[], Awaitable[RowResult | None]]) -> RowResult | None:
        """Look up what an earlier attempt left, when LMS365 can tell."""
        try:
            return await landed()
        except CallFailed:
            return None


def _finish(result: RowResult, http_status: int | None, attempts: int) -> RowResult:
    result.http_status = http_status
    result.attempts = attempts
    return result


def _failed(job: Job, outcome: Outcome, attempts: int, *, gave_up: bool = False) -> RowResult:
    message = outcome.error_message or outcome.error_code
    if gave_up:
        message = f"gave up after {attempts} attempts: {message}"
    result = RowResult(
        job.index,
        FAILED,
        http_status=outcome.http_status,
        attempts=attempts,
        error_code=outcome.error_code,
        error_message=message,
        retryable=gave_up,
    )
    if outcome.unknown_code:
        result.warnings.append(
            f"LMS365 refused the row with a code batch-enroll does not know"
            f" (HTTP {outcome.http_status} {outcome.error_code}); it was not retried"
        )
    return result


UNCONFIRMED = "Unconfirmed"


def _unconfirmed(job: Job, outcome: Outcome, attempts: int) -> RowResult:
    return RowResult(
        job.index,
        FAILED,
        http_status=outcome.http_status,
        attempts=attempts,
        error_code=UNCONFIRMED,
        error_message=(
            f"LMS365 did not answer ({outcome.error_code}) and could not be asked whether"
            " the request took effect; --resume asks again before sending it"
        ),
        retryable=True,
    )


def _from_enrollment(
    job: Job, status: str, body: Mapping[str, Any] | None, http_status: int | None
) -> RowResult:
    if status == ENROLLED and is_waitlisted(body):
        status = WAITLISTED
    result = RowResult(job.index, status, http_status=http_status)
    if body:
        result.registration_date = str(body.get("RegistrationDate") or "")
        enrollment_id = body.get("Id")
        result.enrollment_id = "" if enrollment_id is None else str(enrollment_id)
        if is_pending(body):
            result.warnings.append("the enrollment awaits approval in LMS365")
    if status == WAITLISTED:
        result.warnings.append(
            "the session is full: LMS365 put the person on its waiting list, and they get"
            " a seat when one frees up"
        )
    return result
