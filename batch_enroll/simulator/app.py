"""Serve a fake LMS365 API as a raw ASGI app, following the shared API contract strictly.

The app is hand-written ASGI with a dict-and-regex router rather than a framework: benchmarks
drive it at thousands of requests per second on one core, and every layer of per-request
machinery shows up there. It runs under uvicorn (see ``server.py``) and in-process through
``httpx.ASGITransport``.

Routes (the ``/odata/`` ones are throttled, delayed, fault-injected and authenticated)::

    GET  /odata/v2/Courses({Id})[?$expand=CourseSessions]
    POST /odata/v2/Courses({Id})/Enroll
    POST /odata/v2/Courses({Id})/Unenroll
    GET  /odata/v2/Enrollments[?$filter=CourseId eq N and UserLoginName eq '...'][&$top&$skip]
    GET  /odata/v2/Users[?$filter=Email eq '...' | LoginName eq '...']
    GET  /_sim/stats          counters (no auth, no throttle, no delay)
    GET  /_sim/enrollments    enrollments held now, and how often each was created
    POST /_sim/reset          back to the catalog's state, counters cleared

Order of checks for an ``/odata/`` request, first failure wins:

1. throttle: token bucket per API key (per ``Authorization`` value) -> 429 ``TooManyRequests``
   with ``Retry-After``; a throttled request has no effect;
2. latency: wait ``latency_ms`` (throttled answers wait too: they cross the same network);
3. fault: with ``fault_rate``, a random 500/502/503/504 with no effect;
4. auth: missing or wrong key -> 401 ``Unauthorized``;
5. route: unknown path -> 404 ``NotFound``, wrong method -> 405 ``MethodNotAllowed``;
6. access: a ReadOnly key on POST -> 403 ``Forbidden``;
7. request syntax: non-integer course id, bad JSON body, missing ``userLoginName``,
   malformed ``$filter`` -> 400 ``BadRequest``;
8. course: unknown -> 404 ``CourseNotFound``; for Enroll, deleted, ended or unpublished
   -> 400 ``CourseNotAvailable``;
9. user: ``userLoginName`` names no user or group -> 404 ``UserNotFound``;
10. sessions (Enroll): sessions on a course without them, or an id that is not one of the
    course's -> 400 ``InvalidCourseSession``; more than one for EnrollToSingle -> 400
    ``TooManySessions``; a session ended or past its registration deadline -> 400
    ``SessionClosed``;
11. already enrolled (Enroll): an Active or Pending enrollment in the course -> 409
    ``UserAlreadyEnrolled``; not enrolled (Unenroll) -> 400 ``UserNotEnrolled``;
12. seats (Enroll): a chosen session is full and not ``ignoreMaxAttendees`` -> 400
    ``MaxAttendeesReached``;
13. success: 201 with the enrollment (Enroll) or 204 (Unenroll); with ``drop_rate`` an Enroll
    that succeeded drops the connection after the enrollment was made.

Session choice on success: none given means the course only, except EnrollToAll, which takes
every session still open for registration. ``AttendeesCount`` in the catalog already counts
the catalog's own enrollments, so seeding them does not add seats; enrolling and unenrolling
through the API moves the count.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode

import anyio
import httpx

from batch_enroll.simulator.catalog import (
    Catalog,
    Course,
    CourseSession,
    Principal,
    format_datetime,
)

__all__ = [
    "ROUTES",
    "Enrollment",
    "SimulatedDrop",
    "Simulator",
    "SimulatorStats",
    "create_app",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

ROUTES: Final = ("course", "enroll", "unenroll", "enrollments", "users", "other")
FIRST_ENROLLMENT_ID: Final = 90001
MAX_BODY_BYTES: Final = 1 << 20

_COURSE_PATH = re.compile(r"/odata/v2/Courses\(([^()/]*)\)(?:/(Enroll|Unenroll))?")
_INTEGER = re.compile(r"-?\d{1,18}")
_FIXED_PATHS: Final = {"/odata/v2/Enrollments": "enrollments", "/odata/v2/Users": "users"}
_METHODS: Final = {
    "course": "GET",
    "enroll": "POST",
    "unenroll": "POST",
    "enrollments": "GET",
    "users": "GET",
}
_TESTING_METHODS: Final = {
    "/_sim/stats": "GET",
    "/_sim/enrollments": "GET",
    "/_sim/reset": "POST",
}
_FAULTS: Final = {
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_FAULT_STATUSES: Final = tuple(_FAULTS)
_JSON: Final = (b"content-type", b"application/json")
# A bucket table keyed by arbitrary client headers must not grow without bound.
_MAX_BUCKETS: Final = 4096


class SimulatedDrop(httpx.RemoteProtocolError):
    """Abort a response on purpose after the request took effect.

    Under uvicorn, raising after ``http.response.start`` makes it close the connection, so the
    client sees a truncated answer. Subclassing httpx's own error means an in-process client
    (``httpx.ASGITransport`` re-raises app errors) sees the same ``TransportError`` family.
    """


class _ApiError(Exception):
    """Answer with an OData error body; raised anywhere inside a handler."""

    def __init__(self, status: int, code: str, message: str, headers: Headers | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)
    code: str | None = None
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Enrollment:
    """An enrollment the simulator holds."""

    id: int
    course_id: int
    user_id: int
    user_login_name: str
    registration_date: str
    registration_status: str
    course_session_ids: tuple[str, ...]
    course_passing_status: str = "NotStarted"

    @property
    def principal_key(self) -> str:
        """Return the case-folded canonical login, the identity used for duplicates."""
        return self.user_login_name.lower()

    def to_json(self) -> dict[str, Any]:
        """Render as the API does (the contract's shape plus ``CourseSessionIds``)."""
        ids = self.course_session_ids
        return {
            "Id": self.id,
            "CourseId": self.course_id,
            "UserId": self.user_id,
            "UserLoginName": self.user_login_name,
            "RegistrationDate": self.registration_date,
            "RegistrationStatus": self.registration_status,
            "CoursePassingStatus": self.course_passing_status,
            "courseSessionId": ids[0] if ids else None,
            "CourseSessionIds": list(ids),
        }


@dataclass(slots=True)
class SimulatorStats:
    """Count what the simulator saw; ``to_dict`` is the ``/_sim/stats`` body.

    ``requests_total`` counts ``/odata/`` requests; it equals the sum of ``by_status`` plus
    ``drops_injected`` (a dropped answer has no status the client could see).
    """

    requests_total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_route: Counter[str] = field(default_factory=lambda: Counter(dict.fromkeys(ROUTES, 0)))
    enroll_by_status: Counter[int] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    enrollments_created: int = 0
    enrollments_removed: int = 0
    throttled: int = 0
    faults_injected: int = 0
    drops_injected: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready copy (status codes become string keys)."""
        return {
            "requests_total": self.requests_total,
            "by_status": {str(k): v for k, v in sorted(dict(self.by_status).items())},
            "by_route": dict(self.by_route),
            "enroll_by_status": {str(k): v for k, v in sorted(dict(self.enroll_by_status).items())},
            "errors_by_code": dict(sorted(dict(self.errors_by_code).items())),
            "enrollments_created": self.enrollments_created,
            "enrollments_removed": self.enrollments_removed,
            "throttled": self.throttled,
            "faults_injected": self.faults_injected,
            "drops_injected": self.drops_injected,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


def create_app(
    catalog: Catalog,
    *,
    latency_ms: float = 0,
    rate_limit: float | None = None,
    burst: float | None = None,
    fault_rate: float = 0.0,
    drop_rate: float = 0.0,
    page_size: int = 10000,
    seed: int | None = None,
    now: Callable[[], datetime] | None = None,
) -> Simulator:
    """Build the simulator app over a catalog (see ``Simulator`` for the options)."""
    return Simulator(
        catalog,
        latency_ms=latency_ms,
        rate_limit=rate_limit,
        burst=burst,
        fault_rate=fault_rate,
        drop_rate=drop_rate,
        page_size=page_size,
        seed=seed,
        now=now,
    )


class Simulator:
    """The ASGI app, with its state readable (and its knobs settable) from Python.

    Options: ``latency_ms`` delays every ``/odata/`` answer; ``rate_limit`` (requests/s per key)
    and ``burst`` (bucket size, default one second's worth) throttle; ``fault_rate`` answers a
    random 5xx with no effect; ``drop_rate`` drops the connection after a successful Enroll;
    ``page_size`` caps collection pages; ``seed`` makes faults reproducible; ``now`` is the
    clock for registration dates and session deadlines. The knobs are plain attributes and may
    be changed between requests, e.g. to turn faults on in the middle of a run.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        latency_ms: float = 0,
        rate_limit: float | None = None,
        burst: float | None = None,
        fault_rate: float = 0.0,
        drop_rate: float = 0.0,
        page_size: int = 10000,
        seed: int | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no throttling)")
        if burst is not None and burst < 1:
            raise ValueError("burst must be at least 1, or no request could ever pass")
        for name, rate in (("fault_rate", fault_rate), ("drop_rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.catalog = catalog
        self.latency_ms = latency_ms
        self.rate_limit = rate_limit
        self.burst = burst
        self.fault_rate = fault_rate
        self.drop_rate = drop_rate
        self.page_size = page_size
        self._rng = random.Random(seed)  # faults, not secrets
        clock = now or _utc_now
        # A naive test clock means UTC; comparing it with the catalog's aware dates must work.
        self._now: Callable[[], datetime] = lambda: _as_utc(clock())
        self._clock = time.monotonic
        # Tests read state from another thread while uvicorn serves in its own.
        self._lock = threading.Lock()
        self._next_id = FIRST_ENROLLMENT_ID
        self._auth_cache = _auth_headers(catalog)
        self._buckets: dict[bytes, list[float]] = {}
        self.stats = SimulatorStats()
        self._by_id: dict[int, Enrollment] = {}
        self._held: dict[tuple[int, str], Enrollment] = {}
        self._attendees: dict[str, int] = {}
        self._creations: Counter[tuple[int, str]] = Counter()
        self.reset()

    # --- state, for tests and the /_sim/ endpoints --------------------------------------------

    def reset(self) -> None:
        """Return to the catalog's state: seats, seed enrollments, no counters, full buckets."""
        with self._lock:
            self.stats = SimulatorStats()
            self._buckets = {}
            self._by_id = {}
            self._held = {}
            self._creations = Counter()
            self._attendees = {
                s.id: s.attendees_count for c in self.catalog.courses for s in c.sessions
            }
            when = format_datetime(self._now(), milliseconds=True)
            for seed in self.catalog.enrollments:
                principal = self.catalog.resolve(seed.user_login_name)
                assert principal is not None  # the catalog validated its seeds
                ids = tuple(_canonical_guid(s) for s in seed.course_session_ids)
                self._add(
                    seed.course_id, principal, ids, status=seed.registration_status, when=when
                )

    @property
    def enrollments(self) -> list[Enrollment]:
        """Return the enrollments held now, oldest first."""
        with self._lock:
            return list(self._by_id.values())

    @property
    def creations(self) -> dict[tuple[int, str], int]:
        """Count enrollments made through the API per (course id, canonical login, lowercase)."""
        with self._lock:
            return dict(self._creations)

    def attendees_count(self, session_id: str) -> int:
        """Return a session's current ``AttendeesCount``."""
        return self._attendees[_canonical_guid(session_id)]

    def enrollments_report(self) -> dict[str, Any]:
        """Return the ``/_sim/enrollments`` body: held enrollments and creation counts."""
        with self._lock:
            held = [e.to_json() for e in self._by_id.values()]
            counts = sorted(self._creations.items())
            attendees = dict(self._attendees)
        return {
            "value": held,
            "created": [
                {"CourseId": course_id, "UserLoginName": login, "count": count}
                for (course_id, login), count in counts
            ],
            "max_created": max((count for _, count in counts), default=0),
            "attendees": attendees,
        }

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/odata/"):
                await self._odata(scope, receive, send, path)
            elif path.startswith("/_sim/"):
                await self._testing(scope, send, path)
            else:
                await _send(send, _error(404, "NotFound", f"No resource at {path}."))
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _odata(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        stats = self.stats
        stats.requests_total += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            route = _FIXED_PATHS.get(path)
            course_key: str | None = None
            if route is None:
                match = _COURSE_PATH.fullmatch(path)
                if match is None:
                    route = "other"
                else:
                    course_key = match.group(1)
                    action = match.group(2)
                    route = "course" if action is None else action.lower()
            stats.by_route[route] += 1
            reply = await self._handle(scope, receive, route, course_key)
            if reply.drop:
                stats.drops_injected += 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": reply.status,
                        "headers": [_JSON, (b"content-length", b"%d" % len(reply.body))],
                    }
                )
                raise SimulatedDrop("simulated connection drop: the enrollment was made")
            stats.by_status[reply.status] += 1
            if route == "enroll":
                stats.enroll_by_status[reply.status] += 1
            if reply.code is not None:
                stats.errors_by_code[reply.code] += 1
            await _send(send, reply)
        finally:
            stats.in_flight -= 1

    async def _handle(
        self, scope: Scope, receive: Receive, route: str, course_key: str | None
    ) -> _Reply:
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
                break
        retry_after = self._take_token(authorization)
        if self.latency_ms > 0:
            await anyio.sleep(self.latency_ms / 1000)
        if retry_after:
            self.stats.throttled += 1
            return _error(
                429,
                "TooManyRequests",
                f"Rate limit exceeded. Retry in {retry_after} s.",
                [(b"retry-after", b"%d" % retry_after)],
            )
        if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            return self._fault()
        access = self._authenticate(authorization)
        if access is None:
            return _error(401, "Unauthorized", "Missing or invalid API key.")
        method: str = scope["method"]
        allowed = _METHODS.get(route)
        if allowed is None:
            return _error(404, "NotFound", f"No resource at {scope['path']}.")
        if method != allowed:
            return _error(
                405,
                "MethodNotAllowed",
                f"{method} is not allowed here.",
                [(b"allow", allowed.encode())],
            )
        if method == "POST" and access != "FullControl":
            return _error(403, "Forbidden", "This API key is Read Only; POST needs Full Control.")
        try:
            if route == "enroll":
                return self._enroll(_course_id(course_key), await _read_json(receive))
            if route == "unenroll":
                return self._unenroll(_course_id(course_key), await _read_json(receive))
            query = _parse_query(scope["query_string"])
            if route == "course":
                return self._get_course(_course_id(course_key), query)
            if route == "enrollments":
                return self._list_enrollments(scope, query)
            return self._list_users(scope, query)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)

    def _take_token(self, identity: bytes) -> int:
        """Spend a token of this key's bucket; return 0, or whole seconds until one is there."""
        rate = self.rate_limit
        if rate is None:
            return 0
        capacity = self.burst if self.burst is not None else max(1.0, rate)
        now = self._clock()
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[identity] = [capacity, now]
        tokens = min(capacity, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / rate))

    def _fault(self) -> _Reply:
        self.stats.faults_injected += 1
        status = self._rng.choice(_FAULT_STATUSES)
        headers: Headers = []
        # Half the 503s say when to come back, as a real gateway sometimes does.
        if status == 503 and self._rng.random() < 0.5:
            headers.append((b"retry-after", b"1"))
        return _error(status, _FAULTS[status], "Injected fault; nothing was changed.", headers)

    def _authenticate(self, authorization: bytes) -> str | None:
        access = self._auth_cache.get(authorization)
        if access is not None or not authorization:
            return access
        # Slow path for spellings other than the canonical "Basic <base64>".
        scheme, _, encoded = authorization.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, key = decoded.partition(":")
        if not sep or user != "api":
            return None
        return self.catalog.access_of(key)

    # --- handlers -----------------------------------------------------------------------------

    def _course(self, course_id: int) -> Course:
        course = self.catalog.course(course_id)
        if course is None:
            raise _ApiError(404, "CourseNotFound", f"Course {course_id} was not found.")
        return course

    def _get_course(self, course_id: int, query: Mapping[str, str]) -> _Reply:
        course = self._course(course_id)
        body: dict[str, Any] = {
            "Id": course.id,
            "Title": course.title,
            "CourseType": course.course_type,
            "CourseSessionEnrollmentType": course.session_enrollment_type,
            "EnrollmentFlow": course.enrollment_flow,
            "IsPublished": course.is_published,
            "IsEnded": course.is_ended,
            "IsDeleted": course.is_deleted,
        }
        expand = {part.strip() for part in query.get("$expand", "").split(",")}
        if "CourseSessions" in expand:
            body["CourseSessions"] = [self._session_json(s) for s in course.sessions]
        return _json(200, body)

    def _session_json(self, session: CourseSession) -> dict[str, Any]:
        return {
            "Id": session.id,
            "Title": session.title,
            "StartDate": _date_or_none(session.start_date),
            "EndDate": _date_or_none(session.end_date),
            "RegistrationDeadline": _date_or_none(session.registration_deadline),
            "MaxAttendees": session.max_attendees,
            "AttendeesCount": self._attendees[session.id],
        }

    def _enroll(self, course_id: int, body: Mapping[str, Any]) -> _Reply:
        login = _login_of(body)
        requested = _requested_sessions(body)
        ignore_seats = _flag(body, "ignoreMaxAttendees")
        ignore_flow = _flag(body, "ignoreEnrollmentFlow")
        course = self._course(course_id)
        if not course.is_available:
            state = (
                "deleted" if course.is_deleted else "ended" if course.is_ended else "not published"
            )
            raise _ApiError(400, "CourseNotAvailable", f"Course {course_id} is {state}.")
        principal = self._principal(login)
        now = self._now()
        sessions = self._choose_sessions(course, requested, now)
        status = (
            "Active" if ignore_flow or course.enrollment_flow == "AutomaticApproval" else "Pending"
        )
        with self._lock:
            key = (course.id, principal.login_name.lower())
            if key in self._held:
                raise _ApiError(
                    409,
                    "UserAlreadyEnrolled",
                    f"{principal.login_name} is already enrolled in course {course.id}.",
                )
            if not ignore_seats:
                for session in sessions:
                    limit = session.max_attendees
                    if limit is not None and self._attendees[session.id] >= limit:
                        raise _ApiError(
                            400,
                            "MaxAttendeesReached",
                            f"Session {session.id} is full ({limit} attendees).",
                        )
            ids = tuple(s.id for s in sessions)
            when = format_datetime(now, milliseconds=True)
            enrollment = self._add(course.id, principal, ids, status=status, when=when)
            for session_id in ids:
                self._attendees[session_id] += 1
            self._creations[key] += 1
            self.stats.enrollments_created += 1
        reply = _json(201, enrollment.to_json())
        reply.drop = self.drop_rate > 0 and self._rng.random() < self.drop_rate
        return reply

    def _unenroll(self, course_id: int, body: Mapping[str, Any]) -> _Reply:
        login = _login_of(body)
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise _ApiError(400, "BadRequest", "message must be a string.")
        course = self._course(course_id)
        principal = self._principal(login)
        with self._lock:
            key = (course.id, principal.login_name.lower())
            enrollment = self._held.pop(key, None)
            if enrollment is None:
                raise _ApiError(
                    400,
                    "UserNotEnrolled",
                    f"{principal.login_name} holds no enrollment in course {course.id}.",
                )
            del self._by_id[enrollment.id]
            for session_id in enrollment.course_session_ids:
                self._attendees[session_id] = max(0, self._attendees[session_id] - 1)
            self.stats.enrollments_removed += 1
        return _Reply(204)

    def _principal(self, login: str) -> Principal:
        principal = self.catalog.resolve(login)
        if principal is None:
            raise _ApiError(404, "UserNotFound", f"No user or group {login!r}.")
        return principal

    def _choose_sessions(
        self, course: Course, requested: list[str], now: datetime
    ) -> list[CourseSession]:
        """Apply the contract's session-rules table, up to (not including) the seat check."""
        if not course.is_ilt:
            if requested:
                raise _ApiError(
                    400,
                    "InvalidCourseSession",
                    f"Course {course.id} is {course.course_type}; it has no sessions.",
                )
            return []
        own = {s.id: s for s in course.sessions}
        chosen: list[CourseSession] = []
        for raw in requested:
            session = own.get(_canonical_guid(raw))
            if session is None:
                raise _ApiError(
                    400,
                    "InvalidCourseSession",
                    f"{raw!r} is not a session of course {course.id}.",
                )
            if session not in chosen:
                chosen.append(session)
        kind = course.session_enrollment_type
        if kind == "EnrollToSingle" and len(chosen) > 1:
            raise _ApiError(
                400,
                "TooManySessions",
                f"Course {course.id} enrolls into a single session; {len(chosen)} were given.",
            )
        for session in chosen:
            reason = _closed_reason(session, now)
            if reason:
                raise _ApiError(400, "SessionClosed", f"Session {session.id} {reason}.")
        if not chosen and kind == "EnrollToAll":
            chosen = [s for s in course.sessions if not _closed_reason(s, now)]
        return chosen

    def _add(
        self,
        course_id: int,
        principal: Principal,
        session_ids: tuple[str, ...],
        *,
        status: str,
        when: str,
    ) -> Enrollment:
        enrollment = Enrollment(
            id=self._next_id,
            course_id=course_id,
            user_id=principal.id,
            user_login_name=principal.login_name,
            registration_date=when,
            registration_status=status,
            course_session_ids=session_ids,
        )
        self._next_id += 1
        self._by_id[enrollment.id] = enrollment
        self._held[(course_id, enrollment.principal_key)] = enrollment
        return enrollment

    def _list_enrollments(self, scope: Scope, query: Mapping[str, str]) -> _Reply:
        course_id: int | None = None
        principal_key: str | None = None
        impossible = False
        for name, value in _parse_filter(
            query.get("$filter"), {"CourseId": int, "UserLoginName": str}
        ):
            if name == "CourseId":
                assert isinstance(value, int)
                impossible |= course_id is not None and course_id != value
                course_id = value
            else:
                assert isinstance(value, str)
                principal = self.catalog.resolve(value)
                key = principal.login_name.lower() if principal is not None else None
                impossible |= key is None or (principal_key is not None and principal_key != key)
                principal_key = key
        with self._lock:
            if impossible:
                found: list[Enrollment] = []
            elif course_id is not None and principal_key is not None:
                one = self._held.get((course_id, principal_key))
                found = [one] if one is not None else []
            else:
                found = [
                    e
                    for e in self._by_id.values()
                    if (course_id is None or e.course_id == course_id)
                    and (principal_key is None or e.principal_key == principal_key)
                ]
        return self._page(scope, query, [e.to_json() for e in found])

    def _list_users(self, scope: Scope, query: Mapping[str, str]) -> _Reply:
        wanted = [
            (name, str(value).lower())
            for name, value in _parse_filter(query.get("$filter"), {"Email": str, "LoginName": str})
        ]
        found = [
            {"Id": u.id, "LoginName": u.login_name, "Email": u.email, "Title": u.title}
            for u in self.catalog.users
            if all(
                (u.email if name == "Email" else u.login_name).lower() == value
                for name, value in wanted
            )
        ]
        return self._page(scope, query, found)

    def _page(self, scope: Scope, query: Mapping[str, str], items: list[dict[str, Any]]) -> _Reply:
        """Cut a collection to ``$skip``/``$top`` and the page size, linking to the rest."""
        skip = _non_negative(query, "$skip") or 0
        top = _non_negative(query, "$top")
        window = items[skip:] if top is None else items[skip : skip + top]
        body: dict[str, Any] = {"value": window[: self.page_size]}
        if len(window) > self.page_size:
            rest = dict(query)
            rest["$skip"] = str(skip + self.page_size)
            if top is not None:
                rest["$top"] = str(top - self.page_size)
            else:
                rest.pop("$top", None)
            body["@odata.nextLink"] = (
                f"{_base_url(scope)}{scope['path']}?{urlencode(rest, quote_via=quote, safe='$')}"
            )
        return _json(200, body)

    # --- testing endpoints --------------------------------------------------------------------

    async def _testing(self, scope: Scope, send: Send, path: str) -> None:
        method = scope["method"]
        allowed = _TESTING_METHODS.get(path)
        if allowed is None:
            reply = _error(404, "NotFound", f"No resource at {path}.")
        elif method != allowed:
            reply = _error(405, "MethodNotAllowed", f"{method} is not allowed here.")
            reply.headers.append((b"allow", allowed.encode()))
        elif path == "/_sim/stats":
            reply = _json(200, self.stats.to_dict())
        elif path == "/_sim/enrollments":
            reply = _json(200, self.enrollments_report())
        else:
            self.reset()
            reply = _Reply(204)
        await _send(send, reply)


# --- request parsing -------------------------------------------------------------------------

_CLAUSE = re.compile(r"\s*([A-Za-z_]\w*)\s+(?i:eq)\s+(?:'((?:[^']|'')*)'|(-?\d{1,18}))(\s*)")
_AND = re.compile(r"(?i:and)\s+")


def _parse_filter(
    text: str | None, fields: Mapping[str, type[int] | type[str]]
) -> list[tuple[str, int | str]]:
    """Parse ``Field eq literal [and ...]``; string literals double ``'`` to escape it."""
    if text is None or not text.strip():
        return []
    clauses: list[tuple[str, int | str]] = []
    pos = 0
    while True:
        match = _CLAUSE.match(text, pos)
        if match is None:
            raise _bad_filter(text, f"expected `Field eq value` at position {pos}")
        name, string, number, space = match.groups()
        kind = fields.get(name)
        if kind is None:
            raise _bad_filter(text, f"cannot filter on {name!r}; use {sorted(fields)}")
        if kind is int and number is None:
            raise _bad_filter(text, f"{name} takes an integer")
        if kind is str and string is None:
            raise _bad_filter(text, f"{name} takes a quoted string")
        clauses.append((name, int(number) if kind is int else string.replace("''", "'")))
        pos = match.end()
        if pos == len(text):
            return clauses
        joined = _AND.match(text, pos)
        if not space or joined is None:
            raise _bad_filter(text, f"expected `and` at position {pos}")
        pos = joined.end()


def _bad_filter(text: str, why: str) -> _ApiError:
    return _ApiError(400, "BadRequest", f"Invalid $filter {text!r}: {why}.")


def _parse_query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _non_negative(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise _ApiError(400, "BadRequest", f"{name} must be a non-negative integer.")
    return int(value)


def _course_id(key: str | None) -> int:
    if key is None or not _INTEGER.fullmatch(key):
        raise _ApiError(400, "BadRequest", f"Course id {key!r} is not an integer.")
    return int(key)


async def _read_json(receive: Receive) -> Mapping[str, Any]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ApiError(400, "BadRequest", "The client went away mid-request.")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _ApiError(413, "PayloadTooLarge", "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise _ApiError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _ApiError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def _login_of(body: Mapping[str, Any]) -> str:
    login = body.get("userLoginName")
    if not isinstance(login, str) or not login:
        raise _ApiError(400, "BadRequest", "userLoginName is required and must be a string.")
    return login


def _requested_sessions(body: Mapping[str, Any]) -> list[str]:
    ids = body.get("courseSessionIds")
    if ids is None:
        ids = []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _ApiError(400, "BadRequest", "courseSessionIds must be a list of strings.")
    # The deprecated single field still works; with both, the union counts.
    single = body.get("courseSessionId")
    if single is not None:
        if not isinstance(single, str):
            raise _ApiError(400, "BadRequest", "courseSessionId must be a string.")
        if single not in ids:
            ids = [*ids, single]
    return ids


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _ApiError(400, "BadRequest", f"{name} must be true or false.")
    return value


def _closed_reason(session: CourseSession, now: datetime) -> str:
    if session.end_date is not None and session.end_date <= now:
        return "has ended"
    if session.registration_deadline is not None and session.registration_deadline < now:
        return "is past its registration deadline"
    return ""


# --- responses -------------------------------------------------------------------------------


def _json(status: int, body: Any) -> _Reply:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _Reply(status, data, [_JSON])


def _error(
    status: int, code: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> _Reply:
    reply = _json(status, {"error": {"code": code, "message": message}})
    reply.headers.extend(headers)
    reply.code = code
    return reply


async def _send(send: Send, reply: _Reply) -> None:
    headers = reply.headers
    if reply.status != 204:
        headers = [*headers, (b"content-length", b"%d" % len(reply.body))]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- small helpers ---------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _auth_headers(catalog: Catalog) -> dict[bytes, str]:
    """Precompute each key's exact ``Authorization`` value: one dict lookup per request."""
    return {
        b"Basic " + base64.b64encode(f"api:{k.key}".encode()): k.access for k in catalog.api_keys
    }


def _canonical_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _date_or_none(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


def _base_url(scope: Scope) -> str:
    host = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] in (None, 80, 443) else f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"
