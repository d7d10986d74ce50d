"""Serve a fake LMS365 API as a raw ASGI app, following the shared API contract strictly.

The app is hand-written ASGI with a dict-and-regex router rather than a framework: benchmarks
drive it at thousands of requests per second on one core, and every layer of per-request
machinery shows up there. It runs under uvicorn (see ``server.py``) and in-process through
``httpx.ASGITransport``.

Routes (the ``/odata/`` ones are throttled, delayed, fault-injected and authenticated)::

    GET  /odata/v2/Courses[?$filter&$select&$top&$skip&$count=true&$expand=CourseSessions]
    GET  /odata/v2/Courses({Id})[?$expand=CourseSessions&$select=...]
    POST /odata/v2/Courses({Id})/Enroll
    POST /odata/v2/Courses({Id})/Unenroll
    GET  /odata/v2/Enrollments[?$filter=CourseId eq <guid> and UserLoginName eq '...'][&$top&$skip]
    GET  /odata/v2/Users[?$filter=Email eq '...' | LoginName eq '...']
    GET  /_sim/stats          counters (no auth, no throttle, no delay)
    GET  /_sim/enrollments    enrollments held now, and how often each was created
    POST /_sim/reset          back to the catalog's state, counters cleared

Keys are unquoted GUIDs (``Courses(65c61b1a-04c1-46e6-9d6e-41576a0ce14f)``, any case); filters
take ``eq`` joined by ``and``/``or`` with parentheses, string literals in quotes (``''`` escapes
a quote) and GUID literals unquoted. String comparisons ignore case, as LMS365's database does;
``UserLoginName`` also ignores the claims prefix, because LMS365 stores ``i:0#.f|membership|<upn>``
whatever form the login was enrolled with.

Order of checks for an ``/odata/`` request, first failure wins:

1. throttle: token bucket per API key (per ``Authorization`` value), at a fixed rate or one
   that moves on a schedule (``throttle.py``) -> 429 ``TooManyRequests`` with ``Retry-After``;
   a throttled request has no effect;
2. latency: wait ``latency_ms`` (throttled answers wait too: they cross the same network);
3. fault: with ``fault_rate``, a random 500/502/503/504 with no effect;
4. auth: missing or wrong key -> 401 ``Unauthorized`` (only the password counts);
5. route: unknown path -> 404 ``NotFound``, wrong method -> 405 ``MethodNotAllowed``;
6. access: a ReadOnly key on POST -> 403 ``Forbidden``;
7. request syntax: a key that is not a GUID (``Courses(101)``), bad JSON body, missing
   ``userLoginName``, malformed ``$filter``/``$select``/``$top`` -> 400 ``BadRequest``;
8. course: unknown -> 404 ``CourseNotFound``; for Enroll, deleted, ended or unpublished
   -> 400 ``CourseNotAvailable``;
9. user: ``userLoginName`` names no user or group -> 404 ``UserNotFound``;
10. sessions (Enroll): sessions on an e-learning course or training plan, or an id that is not
    one of the course's -> 400 ``InvalidCourseSession``; more than one (a session group counts
    as one) for EnrollToSingle, or any for EnrollToAll -> 400 ``TooManySessions``; none where
    ``IsEnrollmentWithoutSessionsAllowed`` is false -> 400 ``SessionRequired``; a session that
    ended or is past its ``EnrollmentDeadline`` (for EnrollToAll: the course's deadline)
    -> 400 ``SessionClosed``. A group's placeholder dates never count as ended;
11. already enrolled (Enroll): an Active, Pending or WaitingList enrollment in the course -> 409
    ``UserAlreadyEnrolled``; not enrolled (Unenroll) -> 400 ``UserNotEnrolled``;
12. cap (Enroll): the course already holds ``max_enrollments_per_course`` users -> 400
    ``MaxEnrollmentsReached``;
13. seats (Enroll): a chosen session (for EnrollToAll: the course) is full, i.e.
    ``TakenSeatsCount >= MaxAttendees`` with a limit above 0: with ``WaitingListEnabled`` the
    person goes on the waiting list (2xx, ``RegistrationStatus`` ``"WaitingList"``, no seat
    taken), else 400 ``MaxAttendeesReached`` unless ``ignoreMaxAttendees``;
14. success: 201 with the enrollment (Enroll) or 204 (Unenroll); with ``drop_rate`` an Enroll
    that succeeded drops the connection after the enrollment was made.

Session choice on success: none given means the course only, except EnrollToAll, which takes
every session still open for registration; a session group's id books its member sessions.
``TakenSeatsCount`` in the catalog already counts the catalog's own enrollments, so seeding them
does not add seats; enrolling and unenrolling through the API moves the count.

Dates are served as LMS365 serves them: UTC with ``Z`` and 0 to 7 fractional digits, varying
from field to field. ``rename_fields`` renames fields in every course and session object served,
so a tenant check can be shown a tenant whose JSON differs from the contract.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

import anyio
import httpx

from batch_enroll.simulator.catalog import (
    COURSE_KEYS,
    Catalog,
    Course,
    CourseSession,
    Principal,
    User,
    canonical_guid,
    format_datetime,
    login_key,
    stable_guid,
)
from batch_enroll.simulator.throttle import RateSchedule, Throttle

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

ROUTES: Final = ("courses", "course", "enroll", "unenroll", "enrollments", "users", "other")
MAX_BODY_BYTES: Final = 1 << 20

_COURSE_PATH = re.compile(r"/odata/v2/Courses\(([^()/]*)\)(?:/(Enroll|Unenroll))?")
_FIXED_PATHS: Final = {
    "/odata/v2/Courses": "courses",
    "/odata/v2/Enrollments": "enrollments",
    "/odata/v2/Users": "users",
}
_METHODS: Final = {
    "courses": "GET",
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
# A session group's dates, exactly as LMS365 serves them.
_GROUP_START_TEXT: Final = "1753-01-01T00:00:00Z"
_GROUP_END_TEXT: Final = "9999-12-31T23:59:59.997Z"
_T = TypeVar("_T")


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

    id: str
    course_id: str
    user_id: str
    user_login_name: str
    registration_date: str
    registration_status: str
    course_session_ids: tuple[str, ...]
    course_passing_status: str = "NotStarted"
    can_unenroll: bool = True
    # The sessions whose seats this enrollment holds (none while on a waiting list).
    seated_session_ids: tuple[str, ...] = ()
    is_user: bool = True

    @property
    def principal_key(self) -> str:
        """Return the login as compared: no claims prefix, lowercase (identity for duplicates)."""
        return login_key(self.user_login_name)

    def to_json(self) -> dict[str, Any]:
        """Render as the API does (the contract's shape plus ``CourseSessionIds``)."""
        ids = self.course_session_ids
        return {
            "Id": self.id,
            "CourseId": self.course_id,
            "UserId": self.user_id,
            "UserLoginName": self.user_login_name,
            "Roles": ["Learner"],
            "RegistrationDate": self.registration_date,
            "RegistrationStatus": self.registration_status,
            "CoursePassingStatus": self.course_passing_status,
            "CourseSessionId": ids[0] if ids else None,
            "CourseSessionIds": list(ids),
            "CanUnenroll": self.can_unenroll,
            "IsPartOfTrainingPlan": False,
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
    rename_fields: Mapping[str, str] | None = None,
    rate_schedule: str | Sequence[tuple[float, float]] | RateSchedule | None = None,
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
        rename_fields=rename_fields,
        rate_schedule=rate_schedule,
    )


class Simulator:
    """The ASGI app, with its state readable (and its knobs settable) from Python.

    Options: ``latency_ms`` delays every ``/odata/`` answer; ``rate_limit`` (requests/s per key)
    and ``burst`` (bucket size, default one second's worth) throttle; ``rate_schedule``
    (``"0:100,15:40,30:100"``: seconds since the first request : requests/s) moves the rate
    instead; ``fault_rate`` answers a
    random 5xx with no effect; ``drop_rate`` drops the connection after a successful Enroll;
    ``page_size`` caps collection pages; ``seed`` makes faults reproducible; ``now`` is the
    clock for registration dates and session deadlines; ``rename_fields`` (old name -> new
    name) renames fields in every course and session object served. The knobs are plain
    attributes and may be changed between requests, e.g. to turn faults on in the middle of a
    run.
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
        rename_fields: Mapping[str, str] | None = None,
        rate_schedule: str | Sequence[tuple[float, float]] | RateSchedule | None = None,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must not be negative")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no throttling)")
        if rate_schedule is not None and rate_limit is not None:
            raise ValueError("rate_schedule replaces rate_limit: give one of them")
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
        self.rate_schedule = None if rate_schedule is None else RateSchedule.of(rate_schedule)
        self.burst = burst
        self.fault_rate = fault_rate
        self.drop_rate = drop_rate
        self.page_size = page_size
        self.rename_fields: dict[str, str] = dict(rename_fields or {})
        for old, new in self.rename_fields.items():
            if not old or not new:
                raise ValueError("rename_fields needs non-empty names on both sides")
        self._rng = random.Random(seed)  # faults, not secrets
        clock = now or _utc_now
        # A naive test clock means UTC; comparing it with the catalog's aware dates must work.
        self._now: Callable[[], datetime] = lambda: _as_utc(clock())
        self._clock = time.monotonic
        # Tests read state from another thread while uvicorn serves in its own.
        self._lock = threading.Lock()
        self._next_id = 1
        self._auth_cache = _auth_headers(catalog)
        self._throttle = Throttle()
        self.stats = SimulatorStats()
        self._by_id: dict[str, Enrollment] = {}
        self._held: dict[tuple[str, str], Enrollment] = {}
        self._attendees: dict[str, int] = {}
        self._creations: Counter[tuple[str, str]] = Counter()
        self._users_in: Counter[str] = Counter()
        self.reset()

    # --- state, for tests and the /_sim/ endpoints --------------------------------------------

    def reset(self) -> None:
        """Return to the catalog's state: seats, seed enrollments, no counters, full buckets."""
        with self._lock:
            self.stats = SimulatorStats()
            self._throttle = Throttle()
            self._by_id = {}
            self._held = {}
            self._creations = Counter()
            self._users_in = Counter()
            self._next_id = 1
            self._attendees = {
                s.id: s.taken_seats for c in self.catalog.courses for s in c.sessions
            }
            now = self._now()
            for seed in self.catalog.enrollments:
                principal = self.catalog.resolve(seed.user_login_name)
                course = self.catalog.course(seed.course_id)
                # The catalog checked both when it loaded.
                assert principal is not None
                assert course is not None
                ids = tuple(_canonical_guid(s) for s in seed.course_session_ids)
                seated = () if seed.registration_status == "WaitingList" else ids
                # TakenSeatsCount in the catalog already counts these people.
                self._add(
                    course,
                    principal,
                    ids,
                    seated,
                    status=seed.registration_status,
                    now=now,
                    take_seats=False,
                )

    @property
    def enrollments(self) -> list[Enrollment]:
        """Return the enrollments held now, oldest first."""
        with self._lock:
            return list(self._by_id.values())

    @property
    def creations(self) -> dict[tuple[str, str], int]:
        """Count enrollments made through the API per (course id, login without claims prefix).

        The login is lowercase and without the claims prefix, as LMS365 compares logins.
        """
        with self._lock:
            return dict(self._creations)

    def taken_seats(self, session_id: str) -> int:
        """Return a session's current ``TakenSeatsCount``."""
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
            "taken_seats": attendees,
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
                return self._enroll(_course_key(course_key), await _read_json(receive))
            if route == "unenroll":
                return self._unenroll(_course_key(course_key), await _read_json(receive))
            query = _parse_query(scope["query_string"])
            if route == "course":
                return self._get_course(_course_key(course_key), query)
            if route == "courses":
                return self._list_courses(scope, query)
            if route == "enrollments":
                return self._list_enrollments(scope, query)
            return self._list_users(scope, query)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.headers)

    def _take_token(self, identity: bytes) -> int:
        """Spend a token of this key's bucket; return 0, or whole seconds until one is there."""
        if self.rate_limit is None and self.rate_schedule is None:
            return 0
        return self._throttle.take(
            identity,
            self._clock(),
            rate_limit=self.rate_limit,
            schedule=self.rate_schedule,
            burst=self.burst,
        )

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
        # LMS365 reads only the password: the user name may be "api", empty, or anything.
        _user, sep, key = decoded.partition(":")
        if not sep:
            return None
        return self.catalog.access_of(key)

    # --- handlers -----------------------------------------------------------------------------

    def _course(self, course_id: str) -> Course:
        course = self.catalog.course(course_id)
        if course is None:
            raise _ApiError(404, "CourseNotFound", f"Course {course_id} was not found.")
        return course

    def _get_course(self, course_id: str, query: Mapping[str, str]) -> _Reply:
        course = self._course(course_id)
        select = _select(query)
        expand = _expand(query)
        return _json(200, self._course_json(course, select=select, expand=expand))

    def _list_courses(self, scope: Scope, query: Mapping[str, str]) -> _Reply:
        select = _select(query)
        expand = _expand(query)
        where = _parse_filter(query.get("$filter"), _COURSE_FILTER)
        found = [c for c in self.catalog.courses if where is None or where.test(_course_values(c))]
        return self._page(
            scope,
            query,
            found,
            lambda c: self._course_json(c, select=select, expand=expand),
        )

    def _course_json(
        self, course: Course, *, select: frozenset[str] | None, expand: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Id": course.id,
            "CourseID": course.code,
            "Title": course.title,
            "CourseCatalogId": course.catalog_id,
            "CourseType": course.course_type,
            "CourseSessionEnrollmentType": course.session_enrollment_type,
            "EnrollmentFlow": course.enrollment_flow,
            "IsPublished": course.is_published,
            "IsEnded": course.is_ended,
            "IsDeleted": course.is_deleted,
            "MaxAttendees": course.max_attendees,
            "EnrollmentDeadline": _date_field(
                course.enrollment_deadline, course.id, "EnrollmentDeadline"
            ),
            "WaitingListEnabled": course.waiting_list_enabled,
            "IsEnrollmentWithoutSessionsAllowed": course.enrollment_without_sessions_allowed,
            "UnenrollDisabled": course.unenroll_disabled,
        }
        if select is not None:
            body = {k: v for k, v in body.items() if k in select}
        if expand:
            body["CourseSessions"] = [self._session_json(course, s) for s in course.sessions]
        return self._renamed(body)

    def _session_json(self, course: Course, session: CourseSession) -> dict[str, Any]:
        if session.is_group:
            start: str | None = _GROUP_START_TEXT
            end: str | None = _GROUP_END_TEXT
        else:
            start = _date_field(session.start_date, session.id, "StartDate")
            end = _date_field(session.end_date, session.id, "EndDate")
        body: dict[str, Any] = {
            "Id": session.id,
            "CourseId": course.id,
            "Title": session.title,
            "StartDate": start,
            "EndDate": end,
            "EnrollmentDeadline": _date_field(
                session.enrollment_deadline, session.id, "EnrollmentDeadline"
            ),
            "TimeZone": session.time_zone,
            "MaxAttendees": session.max_attendees,
            "TakenSeatsCount": self._attendees[session.id],
            "IsGroup": session.is_group,
            "GroupId": session.group_id,
        }
        local = session.start_date_local
        if local is not None:
            body["StartDateLocal"] = local
        return self._renamed(body)

    def _renamed(self, body: dict[str, Any]) -> dict[str, Any]:
        renames = self.rename_fields
        if not renames:
            return body
        return {renames.get(name, name): value for name, value in body.items()}

    def _enroll(self, course_id: str, body: Mapping[str, Any]) -> _Reply:
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
        chosen, booked = self._choose_sessions(course, requested, now)
        status = (
            "Active" if ignore_flow or course.enrollment_flow == "AutomaticApproval" else "Pending"
        )
        is_user = isinstance(principal, User)
        with self._lock:
            key = (course.id, login_key(principal.login_name))
            if key in self._held:
                raise _ApiError(
                    409,
                    "UserAlreadyEnrolled",
                    f"{principal.login_name} is already enrolled in course {course.id}.",
                )
            cap = self.catalog.max_enrollments_per_course
            if is_user and self._users_in[course.id] >= cap:
                raise _ApiError(
                    400,
                    "MaxEnrollmentsReached",
                    f"Course {course.id} already holds {cap} enrolled users, the most a course "
                    "can hold.",
                )
            seated = tuple(s.id for s in booked)
            full = "" if ignore_seats else self._full_reason(course, booked)
            if full:
                if not course.waiting_list_enabled:
                    raise _ApiError(400, "MaxAttendeesReached", full)
                status, seated = "WaitingList", ()
            ids = tuple(s.id for s in chosen) + tuple(s.id for s in booked if s not in chosen)
            enrollment = self._add(course, principal, ids, seated, status=status, now=now)
            self._creations[key] += 1
            self.stats.enrollments_created += 1
        reply = _json(201, enrollment.to_json())
        reply.drop = self.drop_rate > 0 and self._rng.random() < self.drop_rate
        return reply

    def _full_reason(self, course: Course, booked: list[CourseSession]) -> str:
        """Say why the booked sessions (or, for EnrollToAll, the course) have no seat left."""
        if course.session_enrollment_type == "EnrollToAll" and course.max_attendees:
            taken = max((self._attendees[s.id] for s in booked), default=0)
            if taken >= course.max_attendees:
                return f"Course {course.id} is full ({course.max_attendees} attendees)."
        for session in booked:
            limit = session.max_attendees
            # MaxAttendees null or 0 means no limit.
            if limit and self._attendees[session.id] >= limit:
                return f"Session {session.id} is full ({limit} attendees)."
        return ""

    def _unenroll(self, course_id: str, body: Mapping[str, Any]) -> _Reply:
        login = _login_of(body)
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise _ApiError(400, "BadRequest", "message must be a string.")
        course = self._course(course_id)
        principal = self._principal(login)
        with self._lock:
            key = (course.id, login_key(principal.login_name))
            enrollment = self._held.pop(key, None)
            if enrollment is None:
                raise _ApiError(
                    400,
                    "UserNotEnrolled",
                    f"{principal.login_name} holds no enrollment in course {course.id}.",
                )
            del self._by_id[enrollment.id]
            if enrollment.is_user:
                self._users_in[course.id] -= 1
            for session_id in enrollment.seated_session_ids:
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
    ) -> tuple[list[CourseSession], list[CourseSession]]:
        """Apply the contract's session-rules table, up to (not including) the seat check.

        Return the sessions asked for (groups as themselves) and the sessions booked (a group
        and its open member sessions; for EnrollToAll, every open session).
        """
        if not course.is_ilt:
            if requested:
                raise _ApiError(
                    400,
                    "InvalidCourseSession",
                    f"Course {course.id} is {course.course_type}; it has no sessions.",
                )
            return [], []
        kind = course.session_enrollment_type
        if kind == "EnrollToAll":
            if requested:
                raise _ApiError(
                    400,
                    "TooManySessions",
                    f"Course {course.id} enrolls into all its sessions; send no session ids.",
                )
            deadline = course.enrollment_deadline
            if deadline is not None and deadline < now:
                raise _ApiError(
                    400, "SessionClosed", f"Course {course.id} is past its enrollment deadline."
                )
            every = [s for s in course.sessions if not s.is_group]
            return [], [s for s in every if not _closed_reason(course, s, now)]
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
        if kind == "EnrollToSingle" and len(chosen) > 1:
            raise _ApiError(
                400,
                "TooManySessions",
                f"Course {course.id} enrolls into a single session; {len(chosen)} were given.",
            )
        if not chosen and not course.enrollment_without_sessions_allowed:
            raise _ApiError(
                400,
                "SessionRequired",
                f"Course {course.id} does not allow enrollment without a session; "
                "name one in courseSessionIds.",
            )
        booked: list[CourseSession] = []
        for session in chosen:
            reason = _closed_reason(course, session, now)
            if reason:
                raise _ApiError(400, "SessionClosed", f"Session {session.id} {reason}.")
            members = course.members_of(session.id) if session.is_group else ()
            for booking in (session, *members):
                if booking not in booked and not _closed_reason(course, booking, now):
                    booked.append(booking)
        return chosen, booked

    def _add(
        self,
        course: Course,
        principal: Principal,
        session_ids: tuple[str, ...],
        seated: tuple[str, ...],
        *,
        status: str,
        now: datetime,
        take_seats: bool = True,
    ) -> Enrollment:
        enrollment_id = stable_guid(f"enrollment:{self._next_id}")
        self._next_id += 1
        is_user = isinstance(principal, User)
        enrollment = Enrollment(
            id=enrollment_id,
            course_id=course.id,
            user_id=principal.id,
            user_login_name=principal.login_name,
            registration_date=format_datetime(now, digits=_digits(enrollment_id)),
            registration_status=status,
            course_session_ids=session_ids,
            can_unenroll=not course.unenroll_disabled,
            seated_session_ids=seated,
            is_user=is_user,
        )
        self._by_id[enrollment.id] = enrollment
        self._held[(course.id, enrollment.principal_key)] = enrollment
        if is_user:
            self._users_in[course.id] += 1
        if take_seats:
            for session_id in seated:
                self._attendees[session_id] += 1
        return enrollment

    def _list_enrollments(self, scope: Scope, query: Mapping[str, str]) -> _Reply:
        where = _parse_filter(query.get("$filter"), _ENROLLMENT_FILTER)
        pair = None if where is None else where.course_and_login()
        with self._lock:
            if pair is not None:
                # The client's look-up before a resend: one dict probe, not a scan.
                one = self._held.get(pair)
                found = [one] if one is not None else []
            else:
                found = [
                    e
                    for e in self._by_id.values()
                    if where is None or where.test(_enrollment_values(e))
                ]
        return self._page(scope, query, found, Enrollment.to_json)

    def _list_users(self, scope: Scope, query: Mapping[str, str]) -> _Reply:
        where = _parse_filter(query.get("$filter"), _USER_FILTER)
        found = [
            {"Id": u.id, "LoginName": u.login_name, "Email": u.email, "Title": u.title}
            for u in self.catalog.users
            if where is None or where.test(_user_values(u))
        ]
        return self._page(scope, query, found, dict)

    def _page(
        self,
        scope: Scope,
        query: Mapping[str, str],
        items: Sequence[_T],
        render: Callable[[_T], dict[str, Any]],
    ) -> _Reply:
        """Cut a collection to ``$skip``/``$top`` and the page size, linking to the rest."""
        skip = _non_negative(query, "$skip") or 0
        top = _non_negative(query, "$top")
        count = query.get("$count", "false").lower()
        if count not in ("true", "false"):
            raise _ApiError(400, "BadRequest", "$count must be true or false.")
        window = items[skip:] if top is None else items[skip : skip + top]
        body: dict[str, Any] = {}
        if count == "true":
            body["@odata.count"] = len(items)
        body["value"] = [render(item) for item in window[: self.page_size]]
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

# How a filterable field compares: a GUID (unquoted literal), a string (quoted, any case), or a
# login (quoted, any case, claims prefix ignored).
_Kind = Literal["guid", "string", "login"]
_COURSE_FILTER: Final[Mapping[str, _Kind]] = {
    "Id": "guid",
    "CourseID": "string",
    "Title": "string",
    "CourseType": "string",
    "CourseCatalogId": "guid",
}
_ENROLLMENT_FILTER: Final[Mapping[str, _Kind]] = {
    "Id": "guid",
    "CourseId": "guid",
    "UserId": "guid",
    "UserLoginName": "login",
}
_USER_FILTER: Final[Mapping[str, _Kind]] = {"Id": "guid", "Email": "string", "LoginName": "login"}
# What $select may name: a course's own fields, the catalog's keys less its sessions.
_COURSE_FIELDS: Final = frozenset(COURSE_KEYS - {"CourseSessions"})
_TOKEN = re.compile(
    r"\s*(?:(?P<open>\()|(?P<close>\))|'(?P<string>(?:[^']|'')*)'"
    r"|(?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])"
    r"|(?P<number>-?\d+(?:\.\d+)?)(?![\w.-])|(?P<word>[A-Za-z_]\w*))"
)
_GUID_TEXT = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)


@dataclass(frozen=True, slots=True)
class _Eq:
    name: str
    value: str | None  # normalised for comparison; None is the literal null


@dataclass(frozen=True, slots=True)
class _Both:
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _Either:
    left: _Node
    right: _Node


_Node = _Eq | _Both | _Either


@dataclass(frozen=True, slots=True)
class _Filter:
    """A parsed ``$filter``: test records whose values are normalised like the literals."""

    root: _Node

    def test(self, record: Mapping[str, str | None]) -> bool:
        """Tell whether a record (field -> normalised value) satisfies the filter."""
        return _evaluate(self.root, record)

    def course_and_login(self) -> tuple[str, str] | None:
        """Return (course id, login) when the filter is exactly ``CourseId eq .. and Login..``."""
        clauses: list[_Eq] = []
        stack: list[_Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, _Either):
                return None
            if isinstance(node, _Both):
                stack += [node.left, node.right]
            else:
                clauses.append(node)
        names = sorted(c.name for c in clauses)
        if names != ["CourseId", "UserLoginName"]:
            return None
        values = {c.name: c.value for c in clauses}
        course, login = values["CourseId"], values["UserLoginName"]
        if course is None or login is None:
            return None
        return course, login


def _evaluate(node: _Node, record: Mapping[str, str | None]) -> bool:
    if isinstance(node, _Eq):
        return record.get(node.name) == node.value
    if isinstance(node, _Both):
        return _evaluate(node.left, record) and _evaluate(node.right, record)
    return _evaluate(node.left, record) or _evaluate(node.right, record)


def _normalise(kind: _Kind, value: str | None) -> str | None:
    """Bring a stored value to the form its literals compare in."""
    if value is None:
        return None
    if kind == "guid":
        return canonical_guid(value) or value
    if kind == "login":
        return login_key(value)
    return value.casefold()


def _course_values(course: Course) -> dict[str, str | None]:
    return {
        "Id": course.id,
        "CourseID": _normalise("string", course.code),
        "Title": course.title.casefold(),
        "CourseType": course.course_type.casefold(),
        "CourseCatalogId": course.catalog_id,
    }


def _user_values(user: User) -> dict[str, str | None]:
    return {"Id": user.id, "LoginName": login_key(user.login_name), "Email": user.email.casefold()}


def _enrollment_values(enrollment: Enrollment) -> dict[str, str | None]:
    return {
        "Id": enrollment.id,
        "CourseId": enrollment.course_id,
        "UserId": enrollment.user_id,
        "UserLoginName": enrollment.principal_key,
    }


def _parse_filter(text: str | None, fields: Mapping[str, _Kind]) -> _Filter | None:
    """Parse ``Field eq literal`` joined by ``and``/``or``, with parentheses.

    String literals are quoted (``''`` escapes a quote); GUID literals are not quoted, as in
    OData v4. Anything else is a 400, as a real OData service answers.
    """
    if text is None or not text.strip():
        return None
    # (kind, text, position, whether white space came before it)
    tokens: list[tuple[str, str, int, bool]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _bad_filter(text, f"unexpected text at position {pos}")
        kind = match.lastgroup
        assert kind is not None
        start = match.start(kind) - (1 if kind == "string" else 0)
        tokens.append((kind, match.group(kind) or "", start, start > pos))
        pos = match.end()
    parser = _FilterParser(text, tokens, fields)
    root = parser.disjunction()
    if parser.index != len(tokens):
        raise _bad_filter(text, f"unexpected {tokens[parser.index][1]!r}")
    return _Filter(root)


class _FilterParser:
    """Recursive descent over the tokens: ``or`` binds looser than ``and``."""

    def __init__(
        self, text: str, tokens: list[tuple[str, str, int, bool]], fields: Mapping[str, _Kind]
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.fields = fields
        self.index = 0

    def _peek_word(self, word: str) -> bool:
        if self.index >= len(self.tokens):
            return False
        kind, value, at, spaced = self.tokens[self.index]
        if kind != "word" or value.lower() != word:
            return False
        # OData needs white space around its keywords: 'x'and is an error, not a conjunction.
        if not spaced:
            raise _bad_filter(self.text, f"expected a space before {value!r} at position {at}")
        return True

    def _next(self, what: str, *, spaced: bool = False) -> tuple[str, str, int]:
        if self.index >= len(self.tokens):
            raise _bad_filter(self.text, f"expected {what} at the end")
        kind, value, at, space_before = self.tokens[self.index]
        if spaced and not space_before:
            raise _bad_filter(self.text, f"expected a space before {what} at position {at}")
        self.index += 1
        return kind, value, at

    def disjunction(self) -> _Node:
        node = self.conjunction()
        while self._peek_word("or"):
            self.index += 1
            node = _Either(node, self.conjunction(spaced=True))
        return node

    def conjunction(self, *, spaced: bool = False) -> _Node:
        node = self.comparison(spaced=spaced)
        while self._peek_word("and"):
            self.index += 1
            node = _Both(node, self.comparison(spaced=True))
        return node

    def comparison(self, *, spaced: bool = False) -> _Node:
        kind, name, at = self._next("a field name or '('", spaced=spaced)
        if kind == "open":
            node = self.disjunction()
            if self._next("')'")[0] != "close":
                raise _bad_filter(self.text, f"expected ')' after position {at}")
            return node
        if kind != "word":
            raise _bad_filter(self.text, f"expected a field name at position {at}")
        field_kind = self.fields.get(name)
        if field_kind is None:
            raise _bad_filter(self.text, f"cannot filter on {name!r}; use {sorted(self.fields)}")
        op_kind, op, op_at = self._next("an operator", spaced=True)
        if op_kind != "word" or op != "eq":
            raise _bad_filter(self.text, f"only 'eq' is supported, got {op!r} at position {op_at}")
        lit_kind, literal, lit_at = self._next("a value", spaced=True)
        if lit_kind == "word" and literal == "null":
            return _Eq(name, None)
        if field_kind == "guid":
            if lit_kind != "guid":
                raise _bad_filter(
                    self.text,
                    f"{name} takes an unquoted GUID such as "
                    f"65c61b1a-04c1-46e6-9d6e-41576a0ce14f, got {literal!r} at position {lit_at}",
                )
            return _Eq(name, canonical_guid(literal))
        if lit_kind != "string":
            raise _bad_filter(
                self.text, f"{name} takes a quoted string, got {literal!r} at position {lit_at}"
            )
        return _Eq(name, _normalise(field_kind, literal.replace("''", "'")))


def _bad_filter(text: str, why: str) -> _ApiError:
    return _ApiError(400, "BadRequest", f"Invalid $filter {text!r}: {why}.")


def _select(query: Mapping[str, str]) -> frozenset[str] | None:
    raw = query.get("$select")
    if raw is None or raw.strip() in ("", "*"):
        return None
    names = frozenset(part.strip() for part in raw.split(","))
    unknown = sorted(names - _COURSE_FIELDS)
    if unknown:
        raise _ApiError(
            400,
            "BadRequest",
            f"Invalid $select: the Course type has no property {', '.join(unknown)}.",
        )
    return names


def _expand(query: Mapping[str, str]) -> bool:
    raw = query.get("$expand")
    if raw is None or not raw.strip():
        return False
    names = {part.strip() for part in raw.split(",")}
    if names - {"CourseSessions"}:
        raise _ApiError(400, "BadRequest", f"Invalid $expand {raw!r}: only CourseSessions.")
    return True


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


def _course_key(key: str | None) -> str:
    """Read a course key: an unquoted GUID in any case, as OData v4 writes a Guid key."""
    if key is None or not _GUID_TEXT.fullmatch(key):
        raise _ApiError(
            400,
            "BadRequest",
            f"The key value {key!r} in Courses({key}) is not a valid Guid: write an unquoted "
            "GUID such as Courses(65c61b1a-04c1-46e6-9d6e-41576a0ce14f).",
        )
    return key.lower()


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


def _closed_reason(course: Course, session: CourseSession, now: datetime) -> str:
    deadline = session.enrollment_deadline
    if session.is_group:
        # A group's 1753/9999 dates are placeholders: it closes with its deadline, or when
        # every one of its sessions has.
        if deadline is not None and deadline < now:
            return "is past its enrollment deadline"
        members = course.members_of(session.id)
        if members and all(_closed_reason(course, m, now) for m in members):
            return "has no session open for enrollment any more"
        return ""
    if session.end_date is not None and session.end_date <= now:
        return "has ended"
    if deadline is not None and deadline < now:
        return "is past its enrollment deadline"
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
    """Precompute the usual ``Authorization`` values: one dict lookup per request."""
    return {
        b"Basic " + base64.b64encode(f"{user}:{k.key}".encode()): k.access
        for k in catalog.api_keys
        for user in ("api", "")
    }


def _canonical_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _digits(key: str) -> int:
    """Pick 0 to 7 fractional digits for a timestamp, stable per field (real tenants vary)."""
    return zlib.crc32(key.encode()) % 8


def _date_field(value: datetime | None, owner: str, name: str) -> str | None:
    if value is None:
        return None
    return format_datetime(value, digits=_digits(f"{owner}/{name}"))


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
