"""Turn every LMS365 answer, or the lack of one, into a verdict the pool acts on.

LMS365 documents the shape of its errors but not most of their codes, nor how it
answers "already enrolled", a waiting list or a throttled request. Every such
assumption lives here and only here, so that matching the real service means
editing this module. Each one is a named entry of ``ASSUMPTIONS`` carrying the
contract's mark (doc, seen or assumed); the fields the tool reads are described
by ``COURSE_FIELDS``, ``SESSION_FIELDS``, ``ENROLLMENT_FIELDS`` and
``USER_FIELDS``. ``batch-enroll doctor`` checks a tenant against them by name.

Reading is tolerant throughout: fields the tool does not know are ignored, a
missing optional field means "unknown" (or "no limit"), and an answer the tool
cannot place is a final, explained failure of its row, never a crash or a retry.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import re
import ssl
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import httpx

from batch_enroll.ids import parse_guid

# ---------------------------------------------------------------------------------------------
# The assumptions, by name
# ---------------------------------------------------------------------------------------------

DOC: Final = "doc"
SEEN: Final = "seen"
ASSUMED: Final = "assumed"


@dataclass(frozen=True, slots=True)
class Assumption:
    """One belief about LMS365's answers, and what a run does if it is wrong."""

    name: str
    #: The contract's mark: ``doc`` (the vendor says so), ``seen`` (real tenants
    #: show it) or ``assumed`` (both are silent).
    source: str
    belief: str
    #: What a run does when a tenant answers otherwise.
    if_wrong: str


ASSUMPTIONS: Final[Mapping[str, Assumption]] = {
    a.name: a
    for a in (
        Assumption(
            "error-shape",
            DOC,
            'a failure carries {"error": {"code": ..., "message": ...}}',
            "other shapes are read as well as can be (OData v3, plain text); a row the tool"
            " cannot place fails with LMS365's own status and words",
        ),
        Assumption(
            "unknown-code-final",
            ASSUMED,
            "an error code the tool does not know refuses that row for good",
            "the row is failed with LMS365's status, code and message kept verbatim;"
            " it is never retried",
        ),
        Assumption(
            "key-refused",
            ASSUMED,
            "a wrong key answers 401, a Read Only key answers 403 on POST",
            "the run stops at the first such answer (exit 3)",
        ),
        Assumption(
            "read-only-probe",
            ASSUMED,
            "an Enroll POST to the all-zero course answers 403 for a Read Only key and 404"
            " (CourseNotFound) for a Full Control key; it enrolls no one",
            "doctor cannot tell the key's rights; the first enroll of a run tells instead",
        ),
        Assumption(
            "already-enrolled",
            ASSUMED,
            "an existing enrollment answers 409 UserAlreadyEnrolled, or another 4xx whose"
            " message says the person is already enrolled",
            "the row fails with LMS365's words instead of counting as already_enrolled",
        ),
        Assumption(
            "not-enrolled",
            ASSUMED,
            "Unenroll of someone with no enrollment answers 400 UserNotEnrolled",
            "the row fails with LMS365's words instead of counting as unenrolled",
        ),
        Assumption(
            "waiting-list",
            ASSUMED,
            'a full session with a waiting list answers 2xx with RegistrationStatus "WaitingList"',
            "the person counts as enrolled although they wait for a seat",
        ),
        Assumption(
            "pending-approval",
            ASSUMED,
            'an enrollment that awaits approval answers 2xx with RegistrationStatus "Pending"',
            "the row counts as enrolled without the note that it awaits approval",
        ),
        Assumption(
            "max-enrollments",
            DOC,
            "a course holds at most 5,000 individually enrolled users; past that LMS365"
            " refuses with 400 MaxEnrollmentsReached (the code is assumed)",
            "the row fails with LMS365's own words instead of the plain explanation",
        ),
        Assumption(
            "throttle",
            DOC,
            "a throttled request answers 429 with Retry-After in seconds (or an HTTP date)",
            "the run backs off on its own schedule instead of the tenant's",
        ),
        Assumption(
            "transient",
            ASSUMED,
            "500 and 503 had no effect and may be retried; 502 and 504 may hide a request"
            " that landed, so the tool looks before resending",
            "a retried row could meet 409 and count as already_enrolled",
        ),
        Assumption(
            "json-answers",
            DOC,
            "LMS365 answers in JSON; a 2xx HTML page is a proxy's, not LMS365's",
            "a proxy's sign-in page would count as an answer",
        ),
        Assumption(
            "dates",
            SEEN,
            "dates are ISO-8601 in UTC with Z and 0 to 7 fractional digits"
            " (2021-09-23T11:31:07.46Z); a date without an offset is UTC",
            "a date the tool cannot read counts as unknown: ended sessions and passed"
            " deadlines are not caught before sending",
        ),
        Assumption(
            "guid-ids",
            SEEN,
            "course, session and user ids are GUIDs, written unquoted in keys and filters",
            "every course lookup and every Enroll request is malformed",
        ),
        Assumption(
            "seats",
            ASSUMED,
            "a session's seats are TakenSeatsCount of MaxAttendees; MaxAttendees null or 0"
            " means no limit",
            "full sessions are not caught before sending; LMS365 still refuses them row by row",
        ),
        Assumption(
            "session-groups",
            SEEN,
            "a session group is a session with IsGroup true; its members carry its id in"
            " GroupId; its dates are placeholders (1753 and 9999)",
            "a session group may be taken for a session that ended or never starts",
        ),
        Assumption(
            "course-fields",
            DOC,
            "a course carries Id, CourseID, Title, CourseType, CourseSessionEnrollmentType,"
            " IsPublished, IsEnded, IsDeleted and the v2 rules (WaitingListEnabled,"
            " IsEnrollmentWithoutSessionsAllowed, MaxAttendees, EnrollmentDeadline)",
            "the rule the field carries is not checked before sending",
        ),
        Assumption(
            "courses-query",
            DOC,
            "GET /odata/v2/Courses takes $filter on Id, CourseID and Title, $select, $top,"
            " $skip, $count and pages with @odata.nextLink",
            "courses cannot be found by code or title",
        ),
        Assumption(
            "enrollments-filter",
            ASSUMED,
            "GET /odata/v2/Enrollments takes $filter=CourseId eq <guid> (and UserLoginName eq"
            " '...'); stored logins are in claims form",
            "--skip-enrolled, --resume and the check after an unanswered POST cannot read"
            " who is enrolled",
        ),
        Assumption(
            "users-filter",
            DOC,
            "GET /odata/v2/Users takes $filter=Email eq '...'",
            "--resolve-users cannot find people by e-mail",
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# The fields the tool reads
# ---------------------------------------------------------------------------------------------

GUID: Final = "guid"
TEXT: Final = "text"
BOOL: Final = "bool"
INT: Final = "int"
DATE: Final = "date"
ENUM: Final = "enum"
LIST: Final = "list"


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One field of an LMS365 answer that the tool reads, and what it is used for."""

    name: str
    kind: str
    #: The contract shows it on every entity: absent from all of them, it was renamed.
    expected: bool = True
    nullable: bool = True
    values: frozenset[str] = frozenset()
    #: The ``ASSUMPTIONS`` entry this field belongs to.
    assumption: str = "course-fields"
    #: What the tool does with the field.
    used_for: str = ""
    #: What a run does without it, when the assumption's own words are too general.
    if_wrong: str = ""

    @property
    def consequence(self) -> str:
        """Say what a run does when this field is missing or differs."""
        return self.if_wrong or ASSUMPTIONS[self.assumption].if_wrong


COURSE_TYPES: Final = frozenset({"ELearning", "ClassRoom", "Webinar", "TrainingPlan"})
#: Course types whose learners book sessions (instructor-led training).
ILT_COURSE_TYPES: Final = frozenset({"ClassRoom", "Webinar"})
SESSION_ENROLLMENT_TYPES: Final = frozenset({"EnrollToSingle", "EnrollToMultiple", "EnrollToAll"})
ENROLLMENT_FLOWS: Final = frozenset(
    {
        "AutomaticApproval",
        "LineManagerApproval",
        "LMSAdministratorsApproval",
        "CustomApproval",
        "ExternalWebhookApproval",
    }
)
WAITING_LIST: Final = "WaitingList"
PENDING: Final = "Pending"
REGISTRATION_STATUSES: Final = frozenset({"Active", PENDING, WAITING_LIST})

COURSE_FIELDS: Final = (
    FieldRule(
        "Id",
        GUID,
        nullable=False,
        assumption="guid-ids",
        used_for="addresses the course in every request",
    ),
    FieldRule(
        "CourseID",
        TEXT,
        used_for="finds the course by the code in the sheet",
        if_wrong="courses cannot be found by code",
    ),
    FieldRule(
        "Title",
        TEXT,
        used_for="finds the course by the title in the sheet",
        if_wrong="courses cannot be found by title",
    ),
    FieldRule(
        "CourseType",
        ENUM,
        values=COURSE_TYPES,
        used_for="tells instructor-led courses (sessions) from e-learning (none)",
        if_wrong="every course looks like e-learning: rows with sessions become invalid"
        " and no session is checked",
    ),
    FieldRule(
        "CourseSessionEnrollmentType",
        ENUM,
        values=SESSION_ENROLLMENT_TYPES,
        used_for="says how many sessions a learner may book",
        if_wrong="too many sessions in a row are refused by LMS365 one row at a time"
        " instead of before sending",
    ),
    FieldRule(
        "EnrollmentFlow",
        ENUM,
        values=ENROLLMENT_FLOWS,
        used_for="says whether enrollments wait for approval",
    ),
    FieldRule(
        "IsPublished",
        BOOL,
        used_for="refuses rows for unpublished courses before sending",
        if_wrong="rows for such courses are sent and refused by LMS365 one at a time",
    ),
    FieldRule(
        "IsEnded",
        BOOL,
        used_for="refuses rows for ended courses before sending",
        if_wrong="rows for such courses are sent and refused by LMS365 one at a time",
    ),
    FieldRule(
        "IsDeleted",
        BOOL,
        used_for="refuses rows for deleted courses before sending",
        if_wrong="rows for such courses are sent and refused by LMS365 one at a time",
    ),
    FieldRule(
        "MaxAttendees",
        INT,
        assumption="seats",
        used_for="counts free seats of an enroll-to-all course",
    ),
    FieldRule(
        "EnrollmentDeadline",
        DATE,
        assumption="dates",
        used_for="refuses rows past an enroll-to-all course's deadline",
        if_wrong="a passed deadline is not caught before sending",
    ),
    FieldRule(
        "WaitingListEnabled",
        BOOL,
        assumption="waiting-list",
        used_for="sends rows for full sessions to the waiting list instead of refusing them",
    ),
    FieldRule(
        "IsEnrollmentWithoutSessionsAllowed",
        BOOL,
        used_for="refuses instructor-led rows without a session when the course needs one",
        if_wrong="rows without a session are sent and refused by LMS365 one at a time",
    ),
)

SESSION_FIELDS: Final = (
    FieldRule(
        "Id",
        GUID,
        nullable=False,
        assumption="guid-ids",
        used_for="books the session",
    ),
    FieldRule(
        "Title",
        TEXT,
        used_for="finds the session by the title in the sheet",
        if_wrong="sessions cannot be found by title",
    ),
    FieldRule(
        "StartDate",
        DATE,
        assumption="dates",
        used_for="finds the session by the start time in the sheet",
        if_wrong="sessions cannot be found by start time",
    ),
    FieldRule(
        "EndDate",
        DATE,
        assumption="dates",
        used_for="refuses sessions that have ended before sending",
        if_wrong="ended sessions are not caught before sending",
    ),
    FieldRule(
        "EnrollmentDeadline",
        DATE,
        assumption="dates",
        used_for="refuses sessions past their enrollment deadline before sending",
        if_wrong="passed deadlines are not caught before sending",
    ),
    FieldRule(
        "StartDateLocal",
        DATE,
        expected=False,
        assumption="dates",
        used_for="matches start times in the session's own time zone (else UTC)",
    ),
    FieldRule(
        "MaxAttendees",
        INT,
        assumption="seats",
        used_for="counts the session's free seats",
    ),
    FieldRule(
        "TakenSeatsCount",
        INT,
        assumption="seats",
        used_for="counts the session's free seats",
    ),
    FieldRule(
        "IsGroup",
        BOOL,
        assumption="session-groups",
        used_for="tells session groups (placeholder dates) from sessions",
        if_wrong="a session group may be taken for a session that ended long ago",
    ),
    FieldRule(
        "GroupId",
        GUID,
        assumption="session-groups",
        used_for="ties a session to its session group",
        if_wrong="a group's member sessions are not known",
    ),
)

ENROLLMENT_FIELDS: Final = (
    FieldRule(
        "Id",
        TEXT,
        nullable=False,
        assumption="enrollments-filter",
        used_for="goes into the results as enrollment_id",
    ),
    FieldRule(
        "CourseId",
        GUID,
        assumption="enrollments-filter",
        used_for="keeps only the asked course's enrollments",
    ),
    FieldRule(
        "UserLoginName",
        TEXT,
        assumption="enrollments-filter",
        used_for="tells who is enrolled (--skip-enrolled, --resume, unenroll)",
    ),
    FieldRule(
        "RegistrationDate",
        DATE,
        assumption="dates",
        used_for="goes into the results and tells a resumed run's own enrollments",
    ),
    FieldRule(
        "RegistrationStatus",
        ENUM,
        values=REGISTRATION_STATUSES,
        assumption="waiting-list",
        used_for="tells enrolled, awaiting approval and waiting-list people apart",
    ),
)

USER_FIELDS: Final = (
    FieldRule("Id", GUID, nullable=False, assumption="users-filter", used_for="names the user"),
    FieldRule(
        "LoginName",
        TEXT,
        nullable=False,
        assumption="users-filter",
        used_for="is what --resolve-users sends for the e-mail",
    ),
    FieldRule("Email", TEXT, assumption="users-filter", used_for="matches the e-mail"),
)

_DATE_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(:\d{2})?)"
    r"(\.(?P<fraction>\d{1,7}))?(?P<zone>Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def parse_lms_time(value: Any) -> datetime | None:
    """Read a date as LMS365 writes it (0 to 7 fractional digits, ``Z``); None when it is not one.

    The one reader of LMS365's dates. A date without an offset is taken as UTC; a
    date with one keeps it, so a session's local start still reads as its wall
    clock. A 7th fractional digit (.NET ticks) is dropped: Python keeps microseconds.
    """
    if not isinstance(value, str):
        return None
    match = _DATE_RE.fullmatch(value.strip())
    if match is None:
        return None
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or "+00:00"
    zone = "+00:00" if zone.upper() == "Z" else zone
    time_part = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    try:
        return datetime.fromisoformat(f"{match['date']}T{time_part}.{fraction}{zone}")
    except ValueError:
        return None


def value_problem(rule: FieldRule, value: Any) -> str:
    """Say how a present value breaks its rule, or return an empty string when it fits."""
    if value is None:
        return "" if rule.nullable else "is null"
    kind = rule.kind
    if kind == GUID:
        ok = isinstance(value, str) and parse_guid(value) is not None
        return "" if ok else f"is {value!r}, not a GUID"
    if kind == BOOL:
        return "" if isinstance(value, bool) else f"is {value!r}, not true or false"
    if kind == INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return "" if ok else f"is {value!r}, not a whole number"
    if kind == DATE:
        return "" if parse_lms_time(value) is not None else f"is {value!r}, not a date"
    if kind == LIST:
        return "" if isinstance(value, list) else f"is {value!r}, not a list"
    if not isinstance(value, str):
        return f"is {value!r}, not text"
    if kind == ENUM and value not in rule.values:
        return f"is {value!r}, not one of {', '.join(sorted(rule.values))}"
    return ""


def seat_limit(entity: Mapping[str, Any]) -> int | None:
    """Return a session's (or course's) seat limit, or None for no limit or unknown."""
    limit = entity.get("MaxAttendees")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        return None
    return limit


def seats_taken(entity: Mapping[str, Any]) -> int | None:
    """Return the seats a session has taken, or None when LMS365 does not say."""
    taken = entity.get("TakenSeatsCount")
    if isinstance(taken, bool) or not isinstance(taken, int) or taken < 0:
        return None
    return taken


def is_full(entity: Mapping[str, Any], *, adding: int = 0) -> bool:
    """Say whether the seats run out; unknown seats or no limit are never full."""
    limit, taken = seat_limit(entity), seats_taken(entity)
    if limit is None or taken is None:
        return False
    return taken + adding >= limit


def keeps_waiting_list(course: Mapping[str, Any] | None) -> bool:
    """Say whether a full session of the course is sent to its waiting list (``waiting-list``)."""
    return (course or {}).get("WaitingListEnabled") is True


def registration_status(enrollment: Mapping[str, Any] | None) -> str:
    """Return an enrollment's RegistrationStatus, or an empty string when unknown."""
    if not enrollment:
        return ""
    value = enrollment.get("RegistrationStatus")
    return value if isinstance(value, str) else ""


def is_waitlisted(enrollment: Mapping[str, Any] | None) -> bool:
    """Say whether LMS365 put the person on a waiting list (assumption ``waiting-list``)."""
    return registration_status(enrollment).replace(" ", "").lower() in {"waitinglist", "waitlist"}


def is_pending(enrollment: Mapping[str, Any] | None) -> bool:
    """Say whether the enrollment awaits approval (assumption ``pending-approval``)."""
    return registration_status(enrollment).lower() == PENDING.lower()


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What the pool should do with an answer."""

    SUCCESS = "success"
    #: LMS365 took the person onto a full session's waiting list (assumption ``waiting-list``).
    WAITLISTED = "waitlisted"
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
    #: The ``ASSUMPTIONS`` entry the verdict rests on, when one does.
    assumption: str = ""
    #: LMS365 answered with an error code the tool does not know.
    unknown_code: bool = False


ALREADY_ENROLLED_CODE = "UserAlreadyEnrolled"
NOT_ENROLLED_CODE = "UserNotEnrolled"
MAX_ENROLLMENTS_CODE = "MaxEnrollmentsReached"
#: The codes of the contract's error table (every one assumed); others are unknown.
KNOWN_ERROR_CODES: Final = frozenset(
    {
        "InvalidCourseSession",
        "TooManySessions",
        "SessionRequired",
        "SessionClosed",
        "MaxAttendeesReached",
        MAX_ENROLLMENTS_CODE,
        "CourseNotAvailable",
        NOT_ENROLLED_CODE,
        "CourseNotFound",
        "UserNotFound",
        ALREADY_ENROLLED_CODE,
        "Unauthorized",
        "Forbidden",
        "TooManyRequests",
        "BadRequest",
    }
)
MAX_ENROLLMENTS_WORDS = (
    "the course already holds 5,000 individually enrolled people, the most LMS365 allows"
    " in one course"
)

# LMS365 may say "already enrolled" under a code of its own: read the words too.
_ALREADY_ENROLLED_RE = re.compile(
    r"\balready\s+(been\s+)?(enrol+ed|registered|a\s+(participant|learner|member))\b"
    r"|\b(enrol+ment|registration)\s+(already\s+exists|exists\s+already)\b"
    r"|\balready\s+(has|have)\s+an?\s+(active\s+)?(enrol+ment|registration)\b",
    re.IGNORECASE,
)
_NEGATED_RE = re.compile(r"\bnot\s+(yet\s+)?(already\s+)?(enrol|register)", re.IGNORECASE)
_MAX_ENROLLMENTS_RE = re.compile(
    r"\b5[,. ]?000\b.*\b(enrol|user|learner|people)|\b(enrol|user|learner).*\b5[,. ]?000\b",
    re.IGNORECASE | re.DOTALL,
)

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


def _text(value: Any) -> str:
    """Read a code or message that may be a string, a number or ``{"value": ...}``."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return _text(value.get("value"))
    return str(value).strip()


def error_fields(body: Any, *, text: str = "") -> tuple[str, str]:
    """Return (code, message) from an error answer, whatever shape it takes.

    The contract's ``{"error": {"code", "message"}}`` first; then OData v3's
    ``odata.error`` with ``{"message": {"value": ...}}``, ASP.NET's ``Message``,
    OAuth's ``error``/``error_description``, and a plain-text body.
    """
    if isinstance(body, Mapping):
        error = body.get("error", body.get("odata.error"))
        if isinstance(error, Mapping):
            return _text(error.get("code")), _text(error.get("message"))
        if isinstance(error, str):
            return error.strip(), _text(body.get("error_description") or body.get("message"))
        code = _text(body.get("code") or body.get("Code"))
        return code, _text(body.get("message") or body.get("Message"))
    return "", text.strip()[:300]


def says_already_enrolled(message: str) -> bool:
    """Say whether an error message means the person is already enrolled."""
    return bool(_ALREADY_ENROLLED_RE.search(message)) and not _NEGATED_RE.search(message)


def _read_body(response: httpx.Response) -> tuple[Any, str]:
    """Return the JSON body (or None) and, for a plain-text body, its text."""
    if not response.content:
        return None, ""
    try:
        return json.loads(response.content), ""
    except ValueError:
        pass
    kind = response.headers.get("Content-Type", "").lower()
    if kind.startswith("text/plain"):
        return None, response.content[:600].decode("utf-8", "replace")
    return None, ""


def _html(response: httpx.Response) -> bool:
    if "html" in response.headers.get("Content-Type", "").lower():
        return True
    return response.content.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))


def classify_response(response: httpx.Response, *, doubt: bool = False) -> Outcome:
    """Classify an HTTP answer to any LMS365 request.

    ``doubt`` says an earlier attempt of the same POST may have landed; an
    "already enrolled" answer then means that attempt enrolled the user, so it
    counts as our success.
    """
    status = response.status_code
    body, text = _read_body(response)
    code, message = error_fields(body, text=text)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    mapping = body if isinstance(body, Mapping) else None

    if 200 <= status < 300:
        if mapping is None and response.content and _html(response):
            # A proxy's sign-in or block page, not LMS365: the request may never
            # have reached it, or may have; look before resending.
            return Outcome(
                Verdict.IN_DOUBT,
                status,
                "NotLms365",
                f"HTTP {status} came with an HTML page, not LMS365's JSON (a proxy's page?)",
                assumption="json-answers",
            )
        if is_waitlisted(mapping):
            return Outcome(Verdict.WAITLISTED, status, body=mapping, assumption="waiting-list")
        return Outcome(Verdict.SUCCESS, status, body=mapping)
    if status == 407:
        # From the proxy, not LMS365, and just as fatal: no request can get through.
        return _proxy_auth_refused(status)
    if status in (401, 403):
        code = code or ("Unauthorized" if status == 401 else "Forbidden")
        return Outcome(
            Verdict.FATAL_AUTH,
            status,
            code,
            message or "LMS365 refused the API key",
            assumption="key-refused",
        )
    if status == 429:
        return Outcome(
            Verdict.THROTTLED,
            status,
            code or "TooManyRequests",
            message,
            retry_after,
            assumption="throttle",
        )
    if 400 <= status < 500 and (
        (status == 409 and code in (ALREADY_ENROLLED_CODE, ""))
        or code == ALREADY_ENROLLED_CODE
        or says_already_enrolled(message)
    ):
        # A conflict on Enroll can only mean an existing enrollment, even when a
        # gateway stripped the body; the code is assumed, the status is not.
        verdict = Verdict.SUCCESS if doubt else Verdict.ALREADY_ENROLLED
        return Outcome(
            verdict,
            status,
            code or ALREADY_ENROLLED_CODE,
            message,
            assumption="already-enrolled",
        )
    if status == 400 and code == NOT_ENROLLED_CODE:
        return Outcome(Verdict.NOT_ENROLLED, status, code, message, assumption="not-enrolled")
    if status in _IN_DOUBT_STATUSES:
        return Outcome(
            Verdict.IN_DOUBT,
            status,
            code or f"HTTP{status}",
            message,
            retry_after,
            assumption="transient",
        )
    if status in _RETRY_STATUSES or status >= 500:
        return Outcome(
            Verdict.RETRY,
            status,
            code or f"HTTP{status}",
            message,
            retry_after,
            assumption="transient",
        )
    if code == MAX_ENROLLMENTS_CODE or (
        code not in KNOWN_ERROR_CODES and _MAX_ENROLLMENTS_RE.search(message)
    ):
        said = f" (LMS365: {message})" if message else ""
        return Outcome(
            Verdict.REJECTED,
            status,
            code or MAX_ENROLLMENTS_CODE,
            MAX_ENROLLMENTS_WORDS + said,
            assumption="max-enrollments",
        )
    # Anything else refuses the row for good, in LMS365's own words: retrying a
    # refusal the tool cannot read would only repeat it.
    unknown = bool(code) and code not in KNOWN_ERROR_CODES
    return Outcome(
        Verdict.REJECTED,
        status,
        code or f"HTTP{status}",
        message or response.reason_phrase or "request refused",
        assumption="unknown-code-final" if unknown else "error-shape",
        unknown_code=unknown,
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


# ---------------------------------------------------------------------------------------------
# Failures without an answer
# ---------------------------------------------------------------------------------------------


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
