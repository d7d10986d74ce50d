"""Load and validate the simulator's catalog: keys, courses, sessions, users, groups.

A catalog is a JSON document (contract version 2: every id is a GUID)::

    {"api_keys": [{"key": "...", "access": "FullControl" | "ReadOnly"}],
     "max_enrollments_per_course": 5000,
     "courses": [<course as in the API contract, with "CourseSessions">],
     "users": [{"Id": "<guid>", "LoginName": "i:0#.f|membership|kay@contoso.com",
                "Email": "kay@contoso.com", "Title": "Kay"}],
     "groups": [{"Id": "<guid>", "LoginName": "c:0o.c|...", "Title": "New hires"}],
     "enrollments": [{"CourseId": "<guid>", "UserLoginName": "kay@contoso.com",
                      "CourseSessionIds": [...], "RegistrationStatus": "Active"}]}

A course holds the contract's fields: ``Id`` (GUID), ``CourseID`` (the visible code: optional,
may be empty or shared), ``Title``, ``CourseCatalogId``, ``CourseType``,
``CourseSessionEnrollmentType``, ``EnrollmentFlow``, ``IsPublished``, ``IsEnded``, ``IsDeleted``,
``MaxAttendees`` and ``EnrollmentDeadline`` (course level, for EnrollToAll),
``WaitingListEnabled``, ``IsEnrollmentWithoutSessionsAllowed``, ``UnenrollDisabled``. A session
holds ``Id``, ``Title``, ``StartDate``, ``EndDate``, ``EnrollmentDeadline``, ``TimeZone`` (a
Windows zone name, as LMS365 writes it), ``MaxAttendees``, ``TakenSeatsCount``, ``IsGroup`` and
``GroupId``. A session group (``IsGroup: true``) has no dates of its own: the API serves its
placeholders; its members name it in ``GroupId``. User and group ``Id`` may be left out: a
stable GUID is derived from the login name.

``max_enrollments_per_course`` (default 5,000, LMS365's documented cap) lets a test reach the
cap with a handful of people.

Date fields are absolute ISO-8601 or relative to the load time (``"+30d"``, ``"-2d"``, ``"+3h"``,
``"+14d3h"``; units w, d, h, m, s), so shipped sample data never expires. Unknown keys are
rejected: a typo such as ``"IsPublised"`` would otherwise silently publish a course.

Everything here is immutable; the simulator keeps the mutable state (seat counts, enrollments)
itself, which is what lets it reset to the catalog at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ACCESS_LEVELS",
    "COURSE_KEYS",
    "COURSE_TYPES",
    "DEFAULT_COURSE_CATALOG_ID",
    "DEFAULT_MAX_ENROLLMENTS",
    "ENROLLMENT_FLOWS",
    "ENROLLMENT_TYPES",
    "GROUP_END",
    "GROUP_START",
    "ILT_COURSE_TYPES",
    "WINDOWS_TIME_ZONES",
    "ApiKey",
    "Catalog",
    "CatalogError",
    "Course",
    "CourseSession",
    "Group",
    "Principal",
    "SeedEnrollment",
    "User",
    "canonical_guid",
    "format_datetime",
    "load_catalog",
    "login_key",
    "parse_date",
    "stable_guid",
    "upn_of",
]

ACCESS_LEVELS: Final = frozenset({"FullControl", "ReadOnly"})
COURSE_TYPES: Final = frozenset({"ELearning", "ClassRoom", "Webinar", "TrainingPlan"})
ILT_COURSE_TYPES: Final = frozenset({"ClassRoom", "Webinar"})
ENROLLMENT_TYPES: Final = frozenset({"EnrollToSingle", "EnrollToMultiple", "EnrollToAll"})
ENROLLMENT_FLOWS: Final = frozenset(
    {
        "AutomaticApproval",
        "LineManagerApproval",
        "LMSAdministratorsApproval",
        "CustomApproval",
        "ExternalWebhookApproval",
    }
)
REGISTRATION_STATUSES: Final = frozenset({"Active", "Pending", "WaitingList"})
DEFAULT_MAX_ENROLLMENTS: Final = 5000
# Every course sits in a course catalog; one the catalog file does not name goes here.
DEFAULT_COURSE_CATALOG_ID: Final = "b1670146-674a-4730-9e9d-d7d29ba52385"
# The placeholder dates LMS365 gives a session group (seen on real tenants).
GROUP_START: Final = datetime(1753, 1, 1, tzinfo=UTC)
GROUP_END: Final = datetime(9999, 12, 31, 23, 59, 59, 997000, tzinfo=UTC)

# LMS365 names time zones the Windows way; zoneinfo knows them by their IANA names.
WINDOWS_TIME_ZONES: Final[Mapping[str, str]] = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "Central Europe Standard Time": "Europe/Budapest",
    "FLE Standard Time": "Europe/Helsinki",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "India Standard Time": "Asia/Kolkata",
    "Singapore Standard Time": "Asia/Singapore",
    "China Standard Time": "Asia/Shanghai",
    "Tokyo Standard Time": "Asia/Tokyo",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "E. South America Standard Time": "America/Sao_Paulo",
}

_RELATIVE = re.compile(r"([+-])((?:\d+[wdhms])+)")
_RELATIVE_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS: Final = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_CLAIMS = re.compile(r"i:0#\.f\|membership\|", re.IGNORECASE)
_CLAIMS_PREFIX: Final = "i:0#.f|membership|"


class CatalogError(ValueError):
    """Report an invalid catalog, naming the offending entry."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key and what it may do."""

    key: str
    access: str


@dataclass(frozen=True, slots=True)
class CourseSession:
    """One session (or session group) of an instructor-led course, as loaded.

    Seat counts move in the app; ``taken_seats`` is the catalog's starting value.
    """

    id: str
    title: str
    start_date: datetime | None
    end_date: datetime | None
    enrollment_deadline: datetime | None
    max_attendees: int | None
    taken_seats: int
    time_zone: str | None = None
    is_group: bool = False
    group_id: str | None = None

    @property
    def start_date_local(self) -> str | None:
        """Return the start in the session's own time zone, ISO without offset, if known."""
        if self.is_group or self.start_date is None or self.time_zone is None:
            return None
        zone = zoneinfo.ZoneInfo(WINDOWS_TIME_ZONES[self.time_zone])
        return self.start_date.astimezone(zone).replace(tzinfo=None).isoformat()

    @property
    def served_start(self) -> datetime | None:
        """Return the start date as served: a group's is the 1753 placeholder."""
        return GROUP_START if self.is_group else self.start_date

    @property
    def served_end(self) -> datetime | None:
        """Return the end date as served: a group's is the 9999 placeholder."""
        return GROUP_END if self.is_group else self.end_date


@dataclass(frozen=True, slots=True)
class Course:
    """A course with its sessions."""

    id: str
    title: str
    course_type: str
    session_enrollment_type: str | None
    enrollment_flow: str
    is_published: bool
    is_ended: bool
    is_deleted: bool
    sessions: tuple[CourseSession, ...] = ()
    code: str | None = None
    catalog_id: str = DEFAULT_COURSE_CATALOG_ID
    max_attendees: int | None = None
    enrollment_deadline: datetime | None = None
    waiting_list_enabled: bool = False
    enrollment_without_sessions_allowed: bool = True
    unenroll_disabled: bool = False

    @property
    def is_ilt(self) -> bool:
        """Tell whether the course is instructor-led (ClassRoom or Webinar)."""
        return self.course_type in ILT_COURSE_TYPES

    @property
    def is_available(self) -> bool:
        """Tell whether the course accepts enrollments at all."""
        return self.is_published and not self.is_ended and not self.is_deleted

    def members_of(self, group_id: str) -> tuple[CourseSession, ...]:
        """Return the sessions of a session group."""
        return tuple(s for s in self.sessions if s.group_id == group_id)


@dataclass(frozen=True, slots=True)
class User:
    """A user of the tenant."""

    id: str
    login_name: str
    email: str
    title: str


@dataclass(frozen=True, slots=True)
class Group:
    """A group; it can be enrolled by its login name or, for custom groups, by its id."""

    id: str
    login_name: str
    title: str


Principal = User | Group


@dataclass(frozen=True, slots=True)
class SeedEnrollment:
    """An enrollment that exists before the run starts."""

    course_id: str
    user_login_name: str
    course_session_ids: tuple[str, ...] = ()
    registration_status: str = "Active"


@dataclass(frozen=True, slots=True)
class Catalog:
    """The validated, immutable content the simulator serves."""

    api_keys: tuple[ApiKey, ...]
    courses: tuple[Course, ...]
    users: tuple[User, ...]
    groups: tuple[Group, ...] = ()
    enrollments: tuple[SeedEnrollment, ...] = ()
    max_enrollments_per_course: int = DEFAULT_MAX_ENROLLMENTS
    _principals: dict[str, Principal] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _courses_by_id: dict[str, Course] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        _validate_and_index(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: datetime | None = None) -> Catalog:
        """Build a catalog from parsed JSON, resolving relative dates against ``now``."""
        return _parse_catalog(data, now=_utc(now or datetime.now(UTC)))

    def course(self, course_id: str) -> Course | None:
        """Return the course with this id (a GUID in any case, with or without braces)."""
        return self._courses_by_id.get(canonical_guid(course_id) or course_id)

    def resolve(self, login: str) -> Principal | None:
        """Find the user or group a ``userLoginName`` names (claims, UPN, e-mail or group id)."""
        guid = canonical_guid(login)
        if guid is not None:
            return self._principals.get(guid)
        return self._principals.get(login_key(login))

    def access_of(self, key: str) -> str | None:
        """Return the access level of an API key, or None when the key is unknown."""
        for api_key in self.api_keys:
            if api_key.key == key:
                return api_key.access
        return None

    def key_with(self, access: str) -> str:
        """Return the first key with this access level (handy for tests and demos)."""
        for api_key in self.api_keys:
            if api_key.access == access:
                return api_key.key
        raise LookupError(f"the catalog has no {access} key")


def load_catalog(
    path: str | os.PathLike[str] | None = None, *, now: datetime | None = None
) -> Catalog:
    """Read and validate a catalog file; without a path, load the one shipped in the package."""
    if path is None:
        source = "batch_enroll/data/catalog.json"
        text = resources.files("batch_enroll").joinpath("data", "catalog.json").read_text("utf-8")
    else:
        source = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {source}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"catalog {source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"catalog {source} must be a JSON object")
    try:
        return Catalog.from_dict(data, now=now)
    except CatalogError as exc:
        raise CatalogError(f"catalog {source}: {exc}") from None


def format_datetime(value: datetime, *, digits: int | None = None) -> str:
    """Write a UTC timestamp the way LMS365 does: ``Z``, 0 to 7 fractional digits.

    LMS365 (.NET) keeps 7 digits of ticks and trims trailing zeros, and some of its answers
    pad instead; ``digits`` asks for at least that many digits (never fewer than the value
    needs, so nothing is lost). Without it, trailing zeros are trimmed.
    """
    value = _utc(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    ticks = f"{value.microsecond:06d}0".rstrip("0")
    if digits is not None and digits > len(ticks):
        ticks = ticks.ljust(min(digits, 7), "0")
    return f"{text}.{ticks}Z" if ticks else f"{text}Z"


def upn_of(login_name: str) -> str:
    """Return the UPN part of a claims login name (the whole name when it is not claims)."""
    return _CLAIMS.sub("", login_name, count=1) if _CLAIMS.match(login_name) else login_name


def login_key(login: str) -> str:
    """Return a login as LMS365 compares it: without the claims prefix, in any case."""
    return upn_of(login.strip()).lower()


def stable_guid(name: str) -> str:
    """Return a random-looking (version 4) GUID that is always the same for ``name``.

    Reproducible ids let two runs be compared; version 4 is what LMS365's ids look like.
    """
    digest = hashlib.sha256(name.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def canonical_guid(value: str) -> str | None:
    """Return a GUID in canonical lowercase form (any case, braces allowed), else None."""
    text = value.strip()
    if not re.fullmatch(r"\{?[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}?", text):
        return None
    if text.startswith("{") != text.endswith("}"):
        return None
    return str(uuid.UUID(text.strip("{}")))


# --- parsing ---------------------------------------------------------------------------------

_CATALOG_KEYS: Final = {
    "api_keys",
    "courses",
    "users",
    "groups",
    "enrollments",
    "max_enrollments_per_course",
}
COURSE_KEYS: Final = {
    "Id",
    "CourseID",
    "Title",
    "CourseCatalogId",
    "CourseType",
    "CourseSessionEnrollmentType",
    "EnrollmentFlow",
    "IsPublished",
    "IsEnded",
    "IsDeleted",
    "MaxAttendees",
    "EnrollmentDeadline",
    "WaitingListEnabled",
    "IsEnrollmentWithoutSessionsAllowed",
    "UnenrollDisabled",
    "CourseSessions",
}
_SESSION_KEYS: Final = {
    "Id",
    "Title",
    "StartDate",
    "EndDate",
    "EnrollmentDeadline",
    "TimeZone",
    "MaxAttendees",
    "TakenSeatsCount",
    "IsGroup",
    "GroupId",
}


def _parse_catalog(data: Mapping[str, Any], *, now: datetime) -> Catalog:
    _check_keys(data, allowed=_CATALOG_KEYS, required={"api_keys", "courses", "users"}, where="")
    cap = _int(data, "max_enrollments_per_course", where="", default=DEFAULT_MAX_ENROLLMENTS)
    if cap < 1:
        raise CatalogError("max_enrollments_per_course must be at least 1")
    return Catalog(
        api_keys=tuple(
            _parse_key(item, where=f"api_keys[{i}]")
            for i, item in enumerate(_list(data, "api_keys", where=""))
        ),
        courses=tuple(
            _parse_course(item, now=now, where=f"courses[{i}]")
            for i, item in enumerate(_list(data, "courses", where=""))
        ),
        users=tuple(
            _parse_user(item, where=f"users[{i}]")
            for i, item in enumerate(_list(data, "users", where=""))
        ),
        groups=tuple(
            _parse_group(item, where=f"groups[{i}]")
            for i, item in enumerate(_list(data, "groups", where="", default=[]))
        ),
        enrollments=tuple(
            _parse_seed(item, where=f"enrollments[{i}]")
            for i, item in enumerate(_list(data, "enrollments", where="", default=[]))
        ),
        max_enrollments_per_course=cap,
    )


def _parse_key(item: Any, *, where: str) -> ApiKey:
    obj = _object(item, where=where)
    _check_keys(obj, allowed={"key", "access"}, required={"key", "access"}, where=where)
    key = _str(obj, "key", where=where)
    access = _str(obj, "access", where=where)
    if access not in ACCESS_LEVELS:
        raise CatalogError(f"{where}.access must be one of {sorted(ACCESS_LEVELS)}, got {access!r}")
    return ApiKey(key=key, access=access)


def _parse_course(item: Any, *, now: datetime, where: str) -> Course:
    obj = _object(item, where=where)
    _check_keys(obj, allowed=COURSE_KEYS, required={"Id", "Title", "CourseType"}, where=where)
    sessions = tuple(
        _parse_session(s, now=now, where=f"{where}.CourseSessions[{i}]")
        for i, s in enumerate(_list(obj, "CourseSessions", where=where, default=[]))
    )
    enrollment_type = obj.get("CourseSessionEnrollmentType")
    if enrollment_type is not None and not isinstance(enrollment_type, str):
        raise CatalogError(f"{where}.CourseSessionEnrollmentType must be a string or null")
    code = obj.get("CourseID")
    if code is not None and not isinstance(code, str):
        raise CatalogError(f"{where}.CourseID must be a string or null, got {code!r}")
    catalog_id = obj.get("CourseCatalogId")
    return Course(
        id=_guid(obj, "Id", where=where),
        code=code,
        title=_str(obj, "Title", where=where),
        catalog_id=(
            DEFAULT_COURSE_CATALOG_ID
            if catalog_id is None
            else _guid(obj, "CourseCatalogId", where=where)
        ),
        course_type=_str(obj, "CourseType", where=where),
        session_enrollment_type=enrollment_type,
        enrollment_flow=_str(obj, "EnrollmentFlow", where=where, default="AutomaticApproval"),
        is_published=_bool(obj, "IsPublished", where=where, default=True),
        is_ended=_bool(obj, "IsEnded", where=where, default=False),
        is_deleted=_bool(obj, "IsDeleted", where=where, default=False),
        max_attendees=_limit(obj, where=where),
        enrollment_deadline=_date(obj, "EnrollmentDeadline", now=now, where=where),
        waiting_list_enabled=_bool(obj, "WaitingListEnabled", where=where, default=False),
        enrollment_without_sessions_allowed=_bool(
            obj, "IsEnrollmentWithoutSessionsAllowed", where=where, default=True
        ),
        unenroll_disabled=_bool(obj, "UnenrollDisabled", where=where, default=False),
        sessions=sessions,
    )


def _parse_session(item: Any, *, now: datetime, where: str) -> CourseSession:
    obj = _object(item, where=where)
    _check_keys(obj, allowed=_SESSION_KEYS, required={"Id"}, where=where)
    is_group = _bool(obj, "IsGroup", where=where, default=False)
    if is_group and ({"StartDate", "EndDate", "GroupId"} & set(obj)):
        raise CatalogError(
            f"{where}: a session group has no StartDate, EndDate or GroupId of its own "
            "(the API serves its 1753/9999 placeholders)"
        )
    taken = _int(obj, "TakenSeatsCount", where=where, default=0)
    if taken < 0:
        raise CatalogError(f"{where}.TakenSeatsCount must not be negative")
    time_zone = obj.get("TimeZone")
    if time_zone is not None and time_zone not in WINDOWS_TIME_ZONES:
        raise CatalogError(
            f"{where}.TimeZone {time_zone!r} is not a Windows time zone name the simulator knows; "
            f"use one of {sorted(WINDOWS_TIME_ZONES)}"
        )
    group_id = obj.get("GroupId")
    return CourseSession(
        id=_guid(obj, "Id", where=where),
        title=_str(obj, "Title", where=where, default=""),
        start_date=_date(obj, "StartDate", now=now, where=where),
        end_date=_date(obj, "EndDate", now=now, where=where),
        enrollment_deadline=_date(obj, "EnrollmentDeadline", now=now, where=where),
        max_attendees=_limit(obj, where=where),
        taken_seats=taken,
        time_zone=time_zone,
        is_group=is_group,
        group_id=None if group_id is None else _guid(obj, "GroupId", where=where),
    )


def _parse_user(item: Any, *, where: str) -> User:
    obj = _object(item, where=where)
    keys = {"Id", "LoginName", "Email", "Title"}
    _check_keys(obj, allowed=keys, required={"LoginName", "Email"}, where=where)
    login = _str(obj, "LoginName", where=where)
    if not _CLAIMS.match(login):
        raise CatalogError(f"{where}.LoginName must be in claims form {_CLAIMS_PREFIX}<upn>")
    # LMS365 stores the claims prefix in lower case, whatever case it was written in.
    login = _CLAIMS_PREFIX + upn_of(login)
    return User(
        id=_guid(obj, "Id", where=where) if "Id" in obj else _derived_id(login),
        login_name=login,
        email=_str(obj, "Email", where=where),
        title=_str(obj, "Title", where=where, default=""),
    )


def _parse_group(item: Any, *, where: str) -> Group:
    obj = _object(item, where=where)
    keys = {"Id", "LoginName", "Title"}
    _check_keys(obj, allowed=keys, required={"LoginName"}, where=where)
    login = _str(obj, "LoginName", where=where)
    return Group(
        id=_guid(obj, "Id", where=where) if "Id" in obj else _derived_id(login),
        login_name=login,
        title=_str(obj, "Title", where=where, default=""),
    )


def _parse_seed(item: Any, *, where: str) -> SeedEnrollment:
    obj = _object(item, where=where)
    keys = {"CourseId", "UserLoginName", "CourseSessionIds", "RegistrationStatus"}
    _check_keys(obj, allowed=keys, required={"CourseId", "UserLoginName"}, where=where)
    session_ids = _list(obj, "CourseSessionIds", where=where, default=[])
    if not all(isinstance(s, str) for s in session_ids):
        raise CatalogError(f"{where}.CourseSessionIds must be a list of strings")
    return SeedEnrollment(
        course_id=_guid(obj, "CourseId", where=where),
        user_login_name=_str(obj, "UserLoginName", where=where),
        course_session_ids=tuple(session_ids),
        registration_status=_str(obj, "RegistrationStatus", where=where, default="Active"),
    )


def _derived_id(login: str) -> str:
    return stable_guid(f"principal:{login.lower()}")


def _limit(obj: Mapping[str, Any], *, where: str) -> int | None:
    if obj.get("MaxAttendees") is None:
        return None
    value = _int(obj, "MaxAttendees", where=where)
    if value < 0:
        raise CatalogError(f"{where}.MaxAttendees must not be negative")
    return value


# --- cross-checks ----------------------------------------------------------------------------


def _validate_and_index(catalog: Catalog) -> None:
    if not catalog.api_keys:
        raise CatalogError("api_keys must list at least one key")
    _unique([k.key for k in catalog.api_keys], what="api key")

    _unique([c.id for c in catalog.courses], what="course Id")
    _unique([s.id for c in catalog.courses for s in c.sessions], what="course session Id")
    for course in catalog.courses:
        _validate_course(course)
    catalog._courses_by_id.update({c.id: c for c in catalog.courses})

    _unique([u.id for u in catalog.users], what="user Id")
    _unique([g.id for g in catalog.groups], what="group Id")
    principals = catalog._principals
    for user in catalog.users:
        for name in {login_key(user.login_name), user.email.lower(), user.id}:
            _add_principal(principals, name, user)
    for group in catalog.groups:
        for name in {login_key(group.login_name), group.id}:
            _add_principal(principals, name, group)

    held: set[tuple[str, Principal]] = set()
    for i, seed in enumerate(catalog.enrollments):
        where = f"enrollments[{i}]"
        seeded = catalog._courses_by_id.get(seed.course_id)
        if seeded is None:
            raise CatalogError(f"{where}: no course with Id {seed.course_id}")
        principal = catalog.resolve(seed.user_login_name)
        if principal is None:
            raise CatalogError(f"{where}: no user or group {seed.user_login_name!r}")
        if (seeded.id, principal) in held:
            raise CatalogError(f"{where}: {seed.user_login_name!r} is enrolled twice")
        held.add((seeded.id, principal))
        own = {s.id for s in seeded.sessions}
        for session_id in seed.course_session_ids:
            if canonical_guid(session_id) not in own:
                raise CatalogError(f"{where}: {session_id!r} is not a session of {seeded.id}")
        if seed.registration_status not in REGISTRATION_STATUSES:
            raise CatalogError(
                f"{where}.RegistrationStatus must be one of {sorted(REGISTRATION_STATUSES)}"
            )


def _validate_course(course: Course) -> None:
    where = f"course {course.id}"
    if course.course_type not in COURSE_TYPES:
        raise CatalogError(
            f"{where}: CourseType must be one of {sorted(COURSE_TYPES)}, got {course.course_type!r}"
        )
    if course.enrollment_flow not in ENROLLMENT_FLOWS:
        raise CatalogError(
            f"{where}: EnrollmentFlow must be one of {sorted(ENROLLMENT_FLOWS)}, "
            f"got {course.enrollment_flow!r}"
        )
    if course.is_ilt:
        if course.session_enrollment_type not in ENROLLMENT_TYPES:
            raise CatalogError(
                f"{where}: an ILT course needs CourseSessionEnrollmentType in "
                f"{sorted(ENROLLMENT_TYPES)}, got {course.session_enrollment_type!r}"
            )
    else:
        if course.session_enrollment_type is not None:
            raise CatalogError(f"{where}: CourseSessionEnrollmentType is only for ILT courses")
        if course.sessions:
            raise CatalogError(f"{where}: only ClassRoom and Webinar courses have sessions")
    groups = {s.id for s in course.sessions if s.is_group}
    for session in course.sessions:
        if session.group_id is not None and session.group_id not in groups:
            raise CatalogError(
                f"{where}: session {session.id} names GroupId {session.group_id}, "
                "which is not a session group of this course"
            )


def _add_principal(index: dict[str, Principal], name: str, principal: Principal) -> None:
    other = index.get(name)
    if other is not None and other != principal:
        raise CatalogError(f"login name {name!r} names both {other} and {principal}")
    index[name] = principal


def _unique(values: Sequence[object], *, what: str) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise CatalogError(f"duplicate {what} {value!r}")
        seen.add(value)


# --- typed field readers ---------------------------------------------------------------------

_MISSING: Final[Any] = object()


def _object(item: Any, *, where: str) -> Mapping[str, Any]:
    if not isinstance(item, dict):
        raise CatalogError(f"{where} must be an object")
    return item


def _check_keys(
    obj: Mapping[str, Any], *, allowed: set[str], required: set[str], where: str
) -> None:
    label = f"{where}: " if where else ""
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise CatalogError(f"{label}unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise CatalogError(f"{label}missing field(s) {missing}")


def _field(obj: Mapping[str, Any], name: str, default: Any) -> Any:
    value = obj.get(name, default)
    if value is _MISSING:
        raise CatalogError(f"missing field {name!r}")
    return value


def _list(obj: Mapping[str, Any], name: str, *, where: str, default: Any = _MISSING) -> list[Any]:
    value = _field(obj, name, default)
    if value is None and default is not _MISSING:
        value = default
    if not isinstance(value, list):
        raise CatalogError(f"{where + '.' if where else ''}{name} must be a list")
    return value


def _str(obj: Mapping[str, Any], name: str, *, where: str, default: Any = _MISSING) -> str:
    value = _field(obj, name, default)
    if not isinstance(value, str) or (default is _MISSING and not value):
        raise CatalogError(f"{where}.{name} must be a non-empty string, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], name: str, *, where: str, default: Any = _MISSING) -> int:
    value = _field(obj, name, default)
    # bool is an int subclass; True as a course id is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        label = f"{where}.{name}" if where else name
        raise CatalogError(f"{label} must be an integer, got {value!r}")
    return value


def _guid(obj: Mapping[str, Any], name: str, *, where: str) -> str:
    value = _field(obj, name, _MISSING)
    guid = canonical_guid(value) if isinstance(value, str) else None
    if guid is None:
        raise CatalogError(f"{where}.{name} must be a GUID, got {value!r}")
    return guid


def _bool(obj: Mapping[str, Any], name: str, *, where: str, default: bool) -> bool:
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise CatalogError(f"{where}.{name} must be true or false, got {value!r}")
    return value


def _date(obj: Mapping[str, Any], name: str, *, now: datetime, where: str) -> datetime | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogError(f"{where}.{name} must be an ISO-8601 string or like '+30d'")
    try:
        return parse_date(value, now=now)
    except ValueError as exc:
        raise CatalogError(f"{where}.{name}: {exc}") from None


def parse_date(value: str, *, now: datetime) -> datetime:
    """Parse an ISO-8601 timestamp or an offset from ``now`` such as ``+30d`` or ``-1d12h``."""
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        sign, parts = relative.groups()
        seconds = sum(
            int(amount) * _UNIT_SECONDS[unit] for amount, unit in _RELATIVE_PART.findall(parts)
        )
        seconds *= -1 if sign == "-" else 1
        # Whole seconds keep the served timestamps tidy and stable between requests.
        return (_utc(now) + timedelta(seconds=seconds)).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither ISO-8601 nor a relative offset like '+30d' or '-3h'"
        ) from None
    return _utc(parsed)


def _utc(value: datetime) -> datetime:
    # A naive timestamp in a catalog or from a test clock means UTC, never local time.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
