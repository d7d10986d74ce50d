"""Flag the rows LMS365 would refuse, before anything is sent.

Offline rules look at the cells alone and run vectorised, so a million-row sheet
checks in seconds. Session rules need each course's metadata, read once per
course; they follow the session-rule table of the API contract row by row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from batch_enroll.classifier import parse_lms_time
from batch_enroll.client import LmsClient, login_key
from batch_enroll.errors import CallFailed, ConfigError
from batch_enroll.loader import RAGGED_COLUMN
from batch_enroll.model import (
    DUPLICATE,
    ENROLL,
    INVALID,
    OK,
    UNENROLL,
    WARNING,
    Job,
    carried_name,
)
from batch_enroll.pool import map_concurrently

__all__ = [
    "OFFLINE_RULES",
    "CourseInfo",
    "check_offline",
    "check_sessions",
    "fetch_courses",
    "guard_unenroll",
    "jobs_from",
    "parse_bool",
    "parse_time",
    "unenroll_limit",
    "with_global_flags",
]

CHECK_COLUMNS = ("status", "error_code", "error_message", "warnings")

_INT = re.compile(r"\+?0*([0-9]{1,10})(?:\.0*)?")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID_RE = re.compile(r"\{?(" + _GUID + r")\}?")
_SESSION_SPLIT = re.compile(r"[;,|\s]+")
# A plain UPN or e-mail; a SharePoint claims name; a group's name or custom group id.
_EMAIL = r"[^@\s|]+@[^@\s|]+\.[^@\s|.]+"
_LOGIN = re.compile(
    r"(?:" + _EMAIL + r")"
    r"|(?:[ic]:0[^|\s]*\|[^|\s]+\|\S+)"
    r"|(?:[\w][\w.\-'&]*)"
)
_EXCEL_ERRORS = frozenset(
    {"#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?", "#NULL!", "#NUM!", "#SPILL!", "#CALC!"}
)
_TRUE = frozenset({"true", "yes", "y", "1", "x"})
_FALSE = frozenset({"false", "no", "n", "0", ""})
_ACTIONS = {
    "": ENROLL,
    "enroll": ENROLL,
    "enrol": ENROLL,
    "add": ENROLL,
    "unenroll": UNENROLL,
    "unenrol": UNENROLL,
    "remove": UNENROLL,
}
#: Per-row flags a sheet may carry, and a global option may fill in.
FLAG_COLUMNS = ("ignore_max_attendees", "ignore_enrollment_flow")
ILT_TYPES = frozenset({"ClassRoom", "Webinar"})
MAX_COURSE_ID = 2**31 - 1


def parse_bool(value: str) -> bool | None:
    """Read a yes/no cell; None when it is neither."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _mark(frame: pd.DataFrame, mask: pd.Series[bool], status: str, code: str, message: Any) -> None:
    """Set a verdict on the rows of ``mask`` that are still clean.

    ``message`` is a text, a Series, or a function of the rows to mark (see
    ``_quoting``) that builds their messages for them only, not for a million
    clean rows.
    """
    if not mask.any():
        return  # the usual case: no need to compare a million statuses
    target = mask & (frame["status"] == OK)
    if not target.any():
        return
    frame.loc[target, "status"] = status
    frame.loc[target, "error_code"] = code
    if callable(message):
        message = message(target)
    if isinstance(message, pd.Series):
        frame.loc[target, "error_message"] = message[target]
    else:
        frame.loc[target, "error_message"] = message


def _quoting(
    column: pd.Series[str], before: str, after: str = "", *, width: int | None = None
) -> Callable[[pd.Series[bool]], pd.Series[str]]:
    """Return a message builder: ``before`` + the cell (cut to ``width``) + ``after``."""

    def build(rows: pd.Series[bool]) -> pd.Series[str]:
        cells = column[rows]
        return before + (cells if width is None else cells.str.slice(0, width)) + after

    return build


def _distinct(
    column: pd.Series[str],
) -> tuple[pd.Series[str], Callable[[pd.Series[Any]], pd.Series[Any]]]:
    """Return a column's distinct cells and a function spreading per-cell answers over its rows.

    pandas runs string checks cell by cell in Python. A sheet names a few
    courses and repeats its people across them, so checking each distinct
    cell once is what keeps a million-row sheet to seconds.
    """
    codes, uniques = pd.factorize(column)
    distinct = pd.Series(uniques, dtype=column.dtype)

    def spread(answers: pd.Series[Any]) -> pd.Series[Any]:
        return pd.Series(answers.array.take(codes), index=column.index)

    return distinct, spread


def _excel_error(column: pd.Series[str]) -> pd.Series[bool]:
    return column.isin(_EXCEL_ERRORS)


def _normalise_sessions(cell: str) -> str | None:
    """Return the cell's GUIDs joined by ``;``, or None if one is not a GUID."""
    ids: list[str] = []
    for token in _SESSION_SPLIT.split(cell.strip()):
        if not token:
            continue
        match = _GUID_RE.fullmatch(token)
        if match is None:
            return None
        guid = match.group(1).lower()
        if guid not in ids:
            ids.append(guid)
    return ";".join(ids)


def _first_bad_session(cell: str) -> str:
    for token in _SESSION_SPLIT.split(cell.strip()):
        if token and _GUID_RE.fullmatch(token) is None:
            return token
    return cell


def _mark_ragged(frame: pd.DataFrame) -> None:
    """Mark the rows the loader found longer than the header; their cells cannot be trusted."""
    if RAGGED_COLUMN in frame.columns:
        ragged = frame[RAGGED_COLUMN].astype(str)
        _mark(frame, ragged != "", INVALID, "RaggedRow", ragged)


def check_offline(sheet: pd.DataFrame) -> pd.DataFrame:
    """Check every row's cells; return the sheet with verdict columns added.

    Adds ``status`` (ok, invalid, duplicate), ``error_code``, ``error_message``,
    ``warnings`` and the parsed ``_course``, ``_sessions``, ``_action`` columns.
    An input column already named like one of these is kept as ``input_<name>``.
    The rules run in order and a row keeps the first verdict it gets.
    """
    frame = sheet.rename(columns=carried_name)
    frame["status"] = OK
    frame["error_code"] = ""
    frame["error_message"] = ""
    frame["warnings"] = ""
    _mark_ragged(frame)
    if len(frame) == 0:
        frame["_course"] = pd.Series(dtype="Int64")
        frame["_sessions"] = pd.Series(dtype=object)
        frame["_action"] = pd.Series(dtype=object)
        frame["_login_key"] = pd.Series(dtype=object)
        return frame
    for rule in OFFLINE_RULES:
        rule(frame)
    return frame


def _check_course(frame: pd.DataFrame) -> None:
    """Parse ``_course``; refuse an empty, erroneous or non-positive course id."""
    course = frame["course_id"].astype(str)
    courses, per_course_cell = _distinct(course)
    digits = courses.str.extract(_INT.pattern + "$", expand=False)
    digits = digits.where(courses.str.fullmatch(_INT.pattern), other=None)
    parsed = per_course_cell(pd.to_numeric(digits, errors="coerce").astype("Int64"))
    frame["_course"] = parsed
    _mark(frame, course == "", INVALID, "MissingCourseId", "the course id is empty")
    _mark(
        frame,
        _excel_error(course),
        INVALID,
        "InvalidCourseId",
        _quoting(course, "the course id cell holds the Excel error "),
    )
    bad_course = parsed.isna() | (parsed <= 0) | (parsed > MAX_COURSE_ID)
    _mark(
        frame,
        bad_course.fillna(True).astype(bool),
        INVALID,
        "InvalidCourseId",
        _quoting(course, 'the course id "', '" is not a positive whole number', width=60),
    )


def _check_login(frame: pd.DataFrame) -> None:
    """Refuse an empty or malformed login; set ``_login_key``, the form logins compare in."""
    login = frame["user_login_name"].astype(str)
    logins, per_login_cell = _distinct(login)
    _mark(frame, login == "", INVALID, "MissingLogin", "the user's login name is empty")
    _mark(
        frame,
        _excel_error(login),
        INVALID,
        "InvalidLogin",
        _quoting(login, "the login name cell holds the Excel error "),
    )
    _mark(
        frame,
        per_login_cell(logins.str.contains(r"\s", regex=True)),
        INVALID,
        "InvalidLogin",
        _quoting(login, 'the login name "', '" contains spaces', width=80),
    )
    _mark(
        frame,
        per_login_cell(~logins.str.fullmatch(_LOGIN.pattern)),
        INVALID,
        "InvalidLogin",
        _quoting(
            login,
            '"',
            '" is not an e-mail address, a login name (i:0#.f|membership|...) or a group name',
            width=80,
        ),
    )
    # The client's rule, once per distinct login: duplicates and lookups must agree.
    frame["_login_key"] = per_login_cell(logins.map(login_key))


def _check_session_ids(frame: pd.DataFrame) -> None:
    """Normalise ``_sessions`` to GUIDs joined by ``;``; refuse a cell holding anything else."""
    raw_sessions = frame["course_session_ids"].astype(str)
    sessions = pd.Series("", index=frame.index, dtype=object)
    has_sessions = raw_sessions != ""
    if has_sessions.any():
        normalised = raw_sessions[has_sessions].map(_normalise_sessions)
        sessions[has_sessions] = normalised.fillna("")
        bad = pd.Series(False, index=frame.index)
        bad[has_sessions] = normalised.isna()
        if bad.any():
            bad_token = raw_sessions[bad].map(_first_bad_session).str.slice(0, 60)
            message = pd.Series("", index=frame.index, dtype=object)
            message[bad] = 'the session id "' + bad_token + '" is not a session id (a GUID)'
            _mark(frame, bad, INVALID, "InvalidSessionId", message)
    frame["_sessions"] = sessions


def _check_action(frame: pd.DataFrame) -> None:
    """Read ``_action`` (enroll when absent); refuse an action that is neither."""
    if "action" not in frame.columns:
        frame["_action"] = ENROLL
        return
    action_cell = frame["action"].astype(str)
    action = action_cell.str.lower().map(_ACTIONS)
    _mark(
        frame,
        action.isna(),
        INVALID,
        "InvalidAction",
        _quoting(action_cell, 'the action "', '" is neither enroll nor unenroll', width=40),
    )
    frame["_action"] = action.fillna(ENROLL)


def _check_flags(frame: pd.DataFrame) -> None:
    """Refuse a per-row flag cell that is neither true nor false."""
    for flag in FLAG_COLUMNS:
        if flag in frame.columns:
            cell = frame[flag].astype(str)
            unknown = cell.map(parse_bool).isna()
            _mark(
                frame,
                unknown,
                INVALID,
                "InvalidFlag",
                _quoting(cell, f'{flag} must be true or false, not "', '"', width=40),
            )


def _mark_duplicates(frame: pd.DataFrame) -> None:
    """Mark a clean row that repeats an earlier one's course, user, sessions and action."""
    clean = frame["status"] == OK
    if not clean.any():
        return
    sorted_sessions = frame["_sessions"].copy()
    several = sorted_sessions.str.contains(";", regex=False)
    if several.any():
        sorted_sessions[several] = sorted_sessions[several].map(
            lambda s: ";".join(sorted(s.split(";")))
        )
    dup_key = pd.DataFrame(
        {
            "c": frame["_course"],
            "u": frame["_login_key"],
            "s": sorted_sessions,
            "a": frame["_action"],
        }
    )[clean]
    repeated = dup_key.duplicated(keep="first")
    if not repeated.any():
        return
    first_row = (
        frame.loc[dup_key.index, "row"].groupby([dup_key[c] for c in "cusa"]).transform("first")
    )
    message = pd.Series("", index=frame.index, dtype=object)
    rep_index = repeated[repeated].index
    message[rep_index] = "the same course, user and sessions as row " + first_row[rep_index].astype(
        str
    )
    mask = pd.Series(False, index=frame.index)
    mask[rep_index] = True
    _mark(frame, mask, DUPLICATE, "Duplicate", message)


#: The cell rules, in the order their verdicts take precedence.
OFFLINE_RULES: tuple[Callable[[pd.DataFrame], None], ...] = (
    _check_course,
    _check_login,
    _check_session_ids,
    _check_action,
    _check_flags,
    _mark_duplicates,
)


# -- rules about the whole sheet -----------------------------------------------------------------


def with_global_flags(
    frame: pd.DataFrame, *, ignore_max_attendees: bool, ignore_enrollment_flow: bool
) -> pd.DataFrame:
    """Apply --ignore-max-attendees / --ignore-enrollment-flow to rows that do not say."""
    for name, on in zip(FLAG_COLUMNS, (ignore_max_attendees, ignore_enrollment_flow), strict=True):
        if not on:
            continue
        frame = frame.copy()
        if name not in frame.columns:
            frame[name] = "true"
        else:
            frame[name] = frame[name].where(frame[name].astype(str) != "", "true")
    return frame


def unenroll_limit(spec: str, rows: int) -> float:
    """Read --max-unenroll: a count ("25") or a share of the sheet's rows ("10%")."""
    text = spec.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return rows * share / 100
        count = int(text)
        if count < 0:
            raise ValueError
        return float(count)
    except ValueError:
        raise ConfigError(
            f"--max-unenroll {spec!r} is neither a count like 25 nor a share like 10%"
        ) from None


def guard_unenroll(checked: pd.DataFrame, spec: str) -> None:
    """Refuse the whole run when the sheet would unenroll more rows than ``spec`` allows."""
    wanted = checked[(checked["_action"] == UNENROLL) & checked["status"].isin((OK, WARNING))]
    limit = unenroll_limit(spec, len(checked))
    if len(wanted) <= limit:
        return
    rows = ", ".join(str(r) for r in wanted["row"].head(5))
    more = ", ..." if len(wanted) > 5 else ""
    raise ConfigError(
        f"this sheet would unenroll {len(wanted)} users (rows {rows}{more}), more than"
        f" --max-unenroll {spec} allows ({limit:g} of {len(checked)} rows); nothing was sent."
        f" If that is intended, pass --max-unenroll {len(wanted)}"
    )


# -- session rules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CourseInfo:
    """What the session rules need of a course; ``found`` is False for a 404."""

    course_id: int
    found: bool
    error: str = ""
    metadata: Mapping[str, Any] | None = None
    #: The read failed without any answer from LMS365 (no connection, no reply).
    unreachable: bool = False

    @property
    def is_ilt(self) -> bool:
        """Say whether the course is instructor-led (classroom or webinar)."""
        return (self.metadata or {}).get("CourseType") in ILT_TYPES

    @property
    def session_mode(self) -> str:
        """Return EnrollToSingle, EnrollToMultiple or EnrollToAll."""
        mode = (self.metadata or {}).get("CourseSessionEnrollmentType")
        return str(mode) if mode else "EnrollToSingle"

    def sessions(self) -> dict[str, Mapping[str, Any]]:
        """Map each session's lower-case id to its record."""
        found = (self.metadata or {}).get("CourseSessions") or []
        return {
            str(session.get("Id", "")).lower(): session
            for session in found
            if isinstance(session, Mapping)
        }


async def fetch_courses(
    client: LmsClient, course_ids: Iterable[int], *, concurrency: int = 8
) -> dict[int, CourseInfo]:
    """Read each course once, several at a time, under the client's shared limiter."""

    async def read(course_id: int) -> CourseInfo:
        try:
            metadata = await client.get_course(course_id)
        except CallFailed as exc:
            no_answer = exc.outcome.http_status is None
            return CourseInfo(course_id, True, error=str(exc), unreachable=no_answer)
        return CourseInfo(course_id, metadata is not None, metadata=metadata)

    return await map_concurrently(sorted(set(course_ids)), read, concurrency=concurrency)


def parse_time(value: Any) -> datetime | None:
    """Read an ISO-8601 time as LMS365 writes it (``...Z``); None when it is not one."""
    return parse_lms_time(value)


def _closed(session: Mapping[str, Any], now: datetime) -> bool:
    for field in ("EndDate", "RegistrationDeadline"):
        when = parse_time(session.get(field))
        if when is not None and when < now:
            return True
    return False


def _full(session: Mapping[str, Any]) -> bool:
    limit = session.get("MaxAttendees")
    count = session.get("AttendeesCount")
    if not isinstance(limit, int) or limit <= 0 or not isinstance(count, int):
        return False
    return count >= limit


def _verdict_for(
    info: CourseInfo,
    sessions: Sequence[str],
    *,
    ignore_max: bool,
    require_session: bool,
    now: datetime,
) -> tuple[str, str, str, str]:
    """Return (status, code, message, warning) for one enroll row of a course."""
    cid = info.course_id
    if not info.found:
        return INVALID, "CourseNotFound", f"course {cid} does not exist in LMS365", ""
    if info.error:
        return OK, "", "", f"course {cid} could not be read to check sessions ({info.error})"
    meta = info.metadata or {}
    if meta.get("IsDeleted"):
        return INVALID, "CourseNotAvailable", f"course {cid} has been deleted", ""
    if meta.get("IsEnded"):
        return INVALID, "CourseNotAvailable", f"course {cid} has ended", ""
    if meta.get("IsPublished") is False:
        return INVALID, "CourseNotAvailable", f"course {cid} is not published", ""
    if not info.is_ilt:
        if sessions:
            kind = "a training plan" if meta.get("CourseType") == "TrainingPlan" else "e-learning"
            return (
                INVALID,
                "InvalidCourseSession",
                f"course {cid} is {kind} and has no sessions; leave the session empty",
                "",
            )
        return OK, "", "", ""
    mode = info.session_mode
    if not sessions:
        if mode == "EnrollToAll":
            return OK, "", "", ""
        if require_session:
            return (
                INVALID,
                "SessionRequired",
                f"course {cid} is instructor-led and no session was given",
                "",
            )
        return (
            WARNING,
            "",
            "",
            "no session given: the learner will get an e-mail asking them to pick one",
        )
    known = info.sessions()
    for session_id in sessions:
        if session_id not in known:
            return (
                INVALID,
                "InvalidCourseSession",
                f"session {session_id} is not one of course {cid}'s sessions",
                "",
            )
    if mode == "EnrollToSingle" and len(sessions) > 1:
        return (
            INVALID,
            "TooManySessions",
            f"course {cid} lets a learner attend one session only, but {len(sessions)} were given",
            "",
        )
    for session_id in sessions:
        session = known[session_id]
        title = session.get("Title") or session_id
        if _closed(session, now):
            return (
                INVALID,
                "SessionClosed",
                f'session "{title}" has ended or its registration deadline has passed',
                "",
            )
        if _full(session) and not ignore_max:
            return INVALID, "MaxAttendeesReached", f'session "{title}" is full', ""
    if mode == "EnrollToAll":
        return (
            WARNING,
            "",
            "",
            "the course enrolls into all its sessions; only the given ones will be booked",
        )
    return OK, "", "", ""


def _append_warning(current: str, warning: str) -> str:
    return f"{current}; {warning}" if current else warning


def check_sessions(
    frame: pd.DataFrame,
    courses: Mapping[int, CourseInfo],
    *,
    require_session: bool = False,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Apply the contract's session rules to the rows still ``ok``; return the frame."""
    now = now or datetime.now(UTC)
    clean = frame.index[frame["status"] == OK]
    if len(clean) == 0:
        return frame
    statuses = frame["status"].to_numpy(dtype=object, copy=True)
    codes = frame["error_code"].to_numpy(dtype=object, copy=True)
    messages = frame["error_message"].to_numpy(dtype=object, copy=True)
    warnings = frame["warnings"].to_numpy(dtype=object, copy=True)
    has_ignore = "ignore_max_attendees" in frame.columns
    first_sessions: dict[tuple[int, str], tuple[int, str]] = {}
    seats_used: dict[tuple[int, str], int] = {}
    positions = frame.index.get_indexer(clean)
    course_col = frame["_course"].to_numpy()
    session_col = frame["_sessions"].to_numpy(dtype=object)
    action_col = frame["_action"].to_numpy(dtype=object)
    key_col = frame["_login_key"].to_numpy(dtype=object)
    row_col = frame["row"].to_numpy()
    ignore_col = frame["ignore_max_attendees"].to_numpy(dtype=object) if has_ignore else None
    for pos in positions:
        cid = int(course_col[pos])
        info = courses.get(cid)
        if info is None:
            continue
        sessions = [s for s in str(session_col[pos]).split(";") if s]
        if action_col[pos] == UNENROLL:
            if not info.found:
                statuses[pos], codes[pos] = INVALID, "CourseNotFound"
                messages[pos] = f"course {cid} does not exist in LMS365"
            elif sessions:
                warnings[pos] = _append_warning(
                    warnings[pos], "session ids are ignored when unenrolling"
                )
            continue
        ignore_max = bool(parse_bool(str(ignore_col[pos]))) if ignore_col is not None else False
        status, code, message, warning = _verdict_for(
            info, sessions, ignore_max=ignore_max, require_session=require_session, now=now
        )
        if status == OK and info.found and info.is_ilt:
            user = (cid, str(key_col[pos]))
            joined = ";".join(sorted(sessions))
            first = first_sessions.setdefault(user, (int(row_col[pos]), joined))
            if first[1] != joined and info.session_mode == "EnrollToSingle":
                status, code = INVALID, "ConflictingSessions"
                message = (
                    f"row {first[0]} already books this user into course {cid}, which allows"
                    " one session per learner"
                )
            elif not ignore_max:
                known = info.sessions()
                for session_id in sessions:
                    seat = (cid, session_id)
                    seats_used[seat] = seats_used.get(seat, 0) + 1
                    session = known.get(session_id, {})
                    limit, count = session.get("MaxAttendees"), session.get("AttendeesCount")
                    if (
                        isinstance(limit, int)
                        and isinstance(count, int)
                        and limit > 0
                        and count + seats_used[seat] > limit
                    ):
                        warning = _append_warning(
                            warning,
                            f'session "{session.get("Title") or session_id}" has'
                            f" {max(0, limit - count)} free seats, fewer than the sheet asks for",
                        )
                        break
        if warning:
            warnings[pos] = _append_warning(warnings[pos], warning)
        if status != OK:
            statuses[pos], codes[pos], messages[pos] = status, code, message
        elif warning and statuses[pos] == OK:
            statuses[pos] = WARNING
    frame["status"] = statuses
    frame["error_code"] = codes
    frame["error_message"] = messages
    frame["warnings"] = warnings
    return frame


def jobs_from(frame: pd.DataFrame) -> list[Job]:
    """Build one job per row that may be sent (``ok`` or ``warning``)."""
    sendable = frame[frame["status"].isin((OK, WARNING))]
    if sendable.empty:
        return []
    n = len(sendable)
    ignore_max = (
        sendable["ignore_max_attendees"].map(lambda v: bool(parse_bool(str(v)))).tolist()
        if "ignore_max_attendees" in sendable.columns
        else [False] * n
    )
    ignore_flow = (
        sendable["ignore_enrollment_flow"].map(lambda v: bool(parse_bool(str(v)))).tolist()
        if "ignore_enrollment_flow" in sendable.columns
        else [False] * n
    )
    messages = sendable["message"].tolist() if "message" in sendable.columns else [""] * n
    logins = sendable["user_login_name"]
    if "resolved_login_name" in sendable.columns:
        # --resolve-users found the LoginName LMS365 knows this e-mail by: send that.
        resolved = sendable["resolved_login_name"]
        logins = resolved.where(resolved != "", logins)
    return [
        Job(
            index=int(index),
            row=int(row),
            course_id=int(course),
            login=str(login),
            session_ids=tuple(s for s in str(sessions).split(";") if s),
            action=str(action),
            message=str(message),
            ignore_max_attendees=bool(imax),
            ignore_enrollment_flow=bool(iflow),
        )
        for index, row, course, login, sessions, action, message, imax, iflow in zip(
            sendable.index,
            sendable["row"],
            sendable["_course"],
            logins,
            sendable["_sessions"],
            sendable["_action"],
            messages,
            ignore_max,
            ignore_flow,
            strict=True,
        )
    ]
