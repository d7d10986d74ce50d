"""Load and validate the simulator's catalog: keys, courses, sessions, users, groups.

A catalog is a JSON document::

    {"api_keys": [{"key": "...", "access": "FullControl" | "ReadOnly"}],
     "courses": [<course as in the API contract, with "CourseSessions">],
     "users": [{"Id": 1, "LoginName": "i:0#.f|membership|kay@contoso.com",
                "Email": "kay@contoso.com", "Title": "Kay"}],
     "groups": [{"Id": 5001, "LoginName": "c:0o.c|...", "Title": "New hires"}],
     "enrollments": [{"CourseId": 101, "UserLoginName": "kay@contoso.com",
                      "CourseSessionIds": [...], "RegistrationStatus": "Active"}]}

Date fields (``StartDate``, ``EndDate``, ``RegistrationDeadline``) are absolute ISO-8601 or
relative to the load time (``"+30d"``, ``"-2d"``, ``"+3h"``, ``"+14d3h"``; units w, d, h, m, s),
so shipped sample data never expires. Unknown keys are rejected: a typo such as
``"IsPublised"`` would otherwise silently publish a course.

Everything here is immutable; the simulator keeps the mutable state (seat counts, enrollments)
itself, which is what lets it reset to the catalog at any time.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = [
    "ACCESS_LEVELS",
    "COURSE_TYPES",
    "ENROLLMENT_TYPES",
    "ILT_COURSE_TYPES",
    "ApiKey",
    "Catalog",
    "CatalogError",
    "Course",
    "CourseSession",
    "Group",
    "Principal",
    "SeedEnrollment",
    "User",
    "format_datetime",
    "load_catalog",
    "parse_date",
    "upn_of",
]

ACCESS_LEVELS: Final = frozenset({"FullControl", "ReadOnly"})
COURSE_TYPES: Final = frozenset({"ELearning", "ClassRoom", "Webinar", "TrainingPlan"})
ILT_COURSE_TYPES: Final = frozenset({"ClassRoom", "Webinar"})
ENROLLMENT_TYPES: Final = frozenset({"EnrollToSingle", "EnrollToMultiple", "EnrollToAll"})
REGISTRATION_STATUSES: Final = frozenset({"Active", "Pending"})

_RELATIVE = re.compile(r"([+-])((?:\d+[wdhms])+)")
_RELATIVE_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS: Final = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
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
    """One session of an instructor-led course, as loaded (seat counts move in the app)."""

    id: str
    title: str
    start_date: datetime | None
    end_date: datetime | None
    registration_deadline: datetime | None
    max_attendees: int | None
    attendees_count: int


@dataclass(frozen=True, slots=True)
class Course:
    """A course with its sessions."""

    id: int
    title: str
    course_type: str
    session_enrollment_type: str | None
    enrollment_flow: str
    is_published: bool
    is_ended: bool
    is_deleted: bool
    sessions: tuple[CourseSession, ...] = ()

    @property
    def is_ilt(self) -> bool:
        """Tell whether the course is instructor-led (ClassRoom or Webinar)."""
        return self.course_type in ILT_COURSE_TYPES

    @property
    def is_available(self) -> bool:
        """Tell whether the course accepts enrollments at all."""
        return self.is_published and not self.is_ended and not self.is_deleted


@dataclass(frozen=True, slots=True)
class User:
    """A user of the tenant."""

    id: int
    login_name: str
    email: str
    title: str


@dataclass(frozen=True, slots=True)
class Group:
    """A group; it can be enrolled by its login name or, for custom groups, by its id."""

    id: int
    login_name: str
    title: str


Principal = User | Group


@dataclass(frozen=True, slots=True)
class SeedEnrollment:
    """An enrollment that exists before the run starts."""

    course_id: int
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
    _principals: dict[str, Principal] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _courses_by_id: dict[int, Course] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        _validate_and_index(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: datetime | None = None) -> Catalog:
        """Build a catalog from parsed JSON, resolving relative dates against ``now``."""
        return _parse_catalog(data, now=_utc(now or datetime.now(UTC)))

    def course(self, course_id: int) -> Course | None:
        """Return the course with this id, if any."""
        return self._courses_by_id.get(course_id)

    def resolve(self, login: str) -> Principal | None:
        """Find the user or group a ``userLoginName`` names (claims, UPN, e-mail or group id)."""
        return self._principals.get(login.lower())

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


def format_datetime(value: datetime, *, milliseconds: bool = False) -> str:
    """Write a UTC timestamp the way the API does (``2026-12-01T09:00:00Z``)."""
    value = _utc(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if milliseconds:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def upn_of(login_name: str) -> str:
    """Return the UPN part of a claims login name (the whole name when it is not claims)."""
    return login_name.rsplit("|", 1)[-1]


# --- parsing ---------------------------------------------------------------------------------

_CATALOG_KEYS: Final = {"api_keys", "courses", "users", "groups", "enrollments"}
_COURSE_KEYS: Final = {
    "Id",
    "Title",
    "CourseType",
    "CourseSessionEnrollmentType",
    "EnrollmentFlow",
    "IsPublished",
    "IsEnded",
    "IsDeleted",
    "CourseSessions",
}
_SESSION_KEYS: Final = {
    "Id",
    "Title",
    "StartDate",
    "EndDate",
    "RegistrationDeadline",
    "MaxAttendees",
    "AttendeesCount",
}


def _parse_catalog(data: Mapping[str, Any], *, now: datetime) -> Catalog:
    _check_keys(data, allowed=_CATALOG_KEYS, required={"api_keys", "courses", "users"}, where="")
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
    _check_keys(obj, allowed=_COURSE_KEYS, required={"Id", "Title", "CourseType"}, where=where)
    sessions = tuple(
        _parse_session(s, now=now, where=f"{where}.CourseSessions[{i}]")
        for i, s in enumerate(_list(obj, "CourseSessions", where=where, default=[]))
    )
    enrollment_type = obj.get("CourseSessionEnrollmentType")
    if enrollment_type is not None and not isinstance(enrollment_type, str):
        raise CatalogError(f"{where}.CourseSessionEnrollmentType must be a string or null")
    return Course(
        id=_int(obj, "Id", where=where),
        title=_str(obj, "Title", where=where),
        course_type=_str(obj, "CourseType", where=where),
        session_enrollment_type=enrollment_type,
        enrollment_flow=_str(obj, "EnrollmentFlow", where=where, default="AutomaticApproval"),
        is_published=_bool(obj, "IsPublished", where=where, default=True),
        is_ended=_bool(obj, "IsEnded", where=where, default=False),
        is_deleted=_bool(obj, "IsDeleted", where=where, default=False),
        sessions=sessions,
    )


def _parse_session(item: Any, *, now: datetime, where: str) -> CourseSession:
    obj = _object(item, where=where)
    _check_keys(obj, allowed=_SESSION_KEYS, required={"Id"}, where=where)
    raw_id = _str(obj, "Id", where=where)
    try:
        session_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise CatalogError(f"{where}.Id must be a GUID, got {raw_id!r}") from None
    max_attendees = obj.get("MaxAttendees")
    if max_attendees is not None:
        max_attendees = _int(obj, "MaxAttendees", where=where)
        if max_attendees < 0:
            raise CatalogError(f"{where}.MaxAttendees must not be negative")
    attendees = _int(obj, "AttendeesCount", where=where, default=0)
    if attendees < 0:
        raise CatalogError(f"{where}.AttendeesCount must not be negative")
    return CourseSession(
        id=session_id,
        title=_str(obj, "Title", where=where, default=""),
        start_date=_date(obj, "StartDate", now=now, where=where),
        end_date=_date(obj, "EndDate", now=now, where=where),
        registration_deadline=_date(obj, "RegistrationDeadline", now=now, where=where),
        max_attendees=max_attendees,
        attendees_count=attendees,
    )


def _parse_user(item: Any, *, where: str) -> User:
    obj = _object(item, where=where)
    keys = {"Id", "LoginName", "Email", "Title"}
    _check_keys(obj, allowed=keys, required={"Id", "LoginName", "Email"}, where=where)
    return User(
        id=_int(obj, "Id", where=where),
        login_name=_str(obj, "LoginName", where=where),
        email=_str(obj, "Email", where=where),
        title=_str(obj, "Title", where=where, default=""),
    )


def _parse_group(item: Any, *, where: str) -> Group:
    obj = _object(item, where=where)
    keys = {"Id", "LoginName", "Title"}
    _check_keys(obj, allowed=keys, required={"Id", "LoginName"}, where=where)
    return Group(
        id=_int(obj, "Id", where=where),
        login_name=_str(obj, "LoginName", where=where),
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
        course_id=_int(obj, "CourseId", where=where),
        user_login_name=_str(obj, "UserLoginName", where=where),
        course_session_ids=tuple(session_ids),
        registration_status=_str(obj, "RegistrationStatus", where=where, default="Active"),
    )


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
        for name in {user.login_name, upn_of(user.login_name), user.email}:
            _add_principal(principals, name, user)
    for group in catalog.groups:
        for name in {group.login_name, str(group.id)}:
            _add_principal(principals, name, group)

    held: set[tuple[int, Principal]] = set()
    for i, seed in enumerate(catalog.enrollments):
        where = f"enrollments[{i}]"
        seeded = catalog._courses_by_id.get(seed.course_id)
        if seeded is None:
            raise CatalogError(f"{where}: no course with Id {seed.course_id}")
        principal = principals.get(seed.user_login_name.lower())
        if principal is None:
            raise CatalogError(f"{where}: no user or group {seed.user_login_name!r}")
        if (seeded.id, principal) in held:
            raise CatalogError(f"{where}: {seed.user_login_name!r} is enrolled twice")
        held.add((seeded.id, principal))
        own = {s.id for s in seeded.sessions}
        for session_id in seed.course_session_ids:
            if _normal_guid(session_id) not in own:
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


def _add_principal(index: dict[str, Principal], name: str, principal: Principal) -> None:
    key = name.lower()
    other = index.get(key)
    if other is not None and other != principal:
        raise CatalogError(f"login name {name!r} names both {other} and {principal}")
    index[key] = principal


def _unique(values: Sequence[object], *, what: str) -> None:
    seen: set[object] = set()
    for value in values:
        if value in seen:
            raise CatalogError(f"duplicate {what} {value!r}")
        seen.add(value)


def _normal_guid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


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
        raise CatalogError(f"{where}.{name} must be an integer, got {value!r}")
    return value


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
