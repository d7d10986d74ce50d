"""Flag the rows LMS365 would refuse, before anything is sent.

Offline rules look at the cells alone and run vectorised, so a million-row sheet
checks in seconds. Session rules need each course's metadata, read once per
course; they follow the session-rule table of the API contract row by row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from batch_enroll.classifier import (
    is_full,
    keeps_waiting_list,
    parse_lms_time,
    seat_limit,
    seats_taken,
)
from batch_enroll.client import canonical_login, login_keys
from batch_enroll.errors import ConfigError
from batch_enroll.ids import (
    course_keys,
    folds,
    fullmatches,
    is_placeholder,
    session_guids_column,
)
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

if TYPE_CHECKING:
    from batch_enroll.resolve import CourseInfo

__all__ = [
    "OFFLINE_RULES",
    "check_offline",
    "check_sessions",
    "guard_unenroll",
    "jobs_from",
    "mark_duplicates",
    "parse_bool",
    "unenroll_limit",
    "with_global_flags",
]

CHECK_COLUMNS = ("status", "error_code", "error_message", "warnings")
#: The parsed columns check_offline adds for the later stages.
INTERNAL_COLUMNS = ("_course_key", "_course", "_sessions", "_session_cell", "_action", "_login_key")
# A plain UPN or e-mail; a SharePoint claims name; a group's name or custom group id.
_EMAIL = r"[^@\s|]+@[^@\s|]+\.[^@\s|.]+"
_LOGIN = re.compile(
    r"(?:" + _EMAIL + r")"
    r"|(?:[icIC]:0[^|\s]*\|[^|\s]+\|\S+)"
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


#: Cells sampled across a column to tell whether its cells repeat.
_SAMPLE = 10_000


def _distinct(
    column: pd.Series[str],
) -> tuple[pd.Series[str], Callable[[pd.Series[Any]], pd.Series[Any]]]:
    """Return a column's distinct cells and a function spreading per-cell answers over its rows.

    A sheet names a few courses and often repeats its people across them, so
    each distinct cell is checked once. When rows sampled across the column show
    nearly every cell differs, the cells are returned all, as they are.
    """
    # Rows spread over the whole sheet: one sorted by course starts with everyone once.
    if len(column) > _SAMPLE and column.iloc[:: len(column) // _SAMPLE].nunique() > _SAMPLE // 2:
        # Nearly every cell differs (a login per person): finding the distinct ones
        # would hash a million cells to save little. Check them all as they are.
        def as_they_are(answers: pd.Series[Any]) -> pd.Series[Any]:
            return pd.Series(answers.array, index=column.index)

        return column.reset_index(drop=True), as_they_are
    codes, uniques = pd.factorize(column)
    distinct = pd.Series(uniques, dtype=column.dtype)

    def spread(answers: pd.Series[Any]) -> pd.Series[Any]:
        return pd.Series(answers.array.take(codes), index=column.index)

    return distinct, spread


def _excel_error(column: pd.Series[str]) -> pd.Series[bool]:
    return column.isin(_EXCEL_ERRORS)


def _mark_ragged(frame: pd.DataFrame) -> None:
    """Mark the rows the loader found longer than the header; their cells cannot be trusted."""
    if RAGGED_COLUMN in frame.columns:
        ragged = frame[RAGGED_COLUMN].astype(str)
        _mark(frame, ragged != "", INVALID, "RaggedRow", ragged)


def check_offline(sheet: pd.DataFrame) -> pd.DataFrame:
    """Check every row's cells; return the sheet with verdict columns added.

    Adds ``status`` (ok, invalid, duplicate), ``error_code``, ``error_message``,
    ``warnings`` and the parsed ``_course_key`` (the course cell, normalised),
    ``_course`` (its GUID when the cell is one; resolving fills the rest),
    ``_sessions`` (session GUIDs), ``_session_cell`` (a sessions cell that names
    sessions by title or start, matched when resolving) and ``_action`` columns.
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
        for column in INTERNAL_COLUMNS:
            frame[column] = pd.Series(dtype=object)
        return frame
    for rule in OFFLINE_RULES:
        rule(frame)
    return frame


def _check_course(frame: pd.DataFrame) -> None:
    """Normalise the course cell (``_course_key``; ``_course`` when it is a GUID); refuse
    an empty cell or an Excel error. Codes and titles are looked up when resolving.
    """
    course = frame["course_id"].astype(str)
    courses, per_course_cell = _distinct(course)
    keys, guids = course_keys(courses.to_numpy(dtype=object))
    frame["_course_key"] = per_course_cell(pd.Series(keys, dtype=object))
    frame["_course"] = per_course_cell(pd.Series(guids, dtype=object))
    _mark(frame, course == "", INVALID, "MissingCourseId", "the course cell is empty")
    _mark(
        frame,
        _excel_error(course),
        INVALID,
        "InvalidCourseId",
        _quoting(course, "the course cell holds the Excel error "),
    )


def _check_login(frame: pd.DataFrame) -> None:
    """Refuse an empty or malformed login; set ``_login_key``, the form logins compare in."""
    login = frame["user_login_name"].astype(str)
    logins, per_login_cell = _distinct(login)
    distinct = logins.to_numpy(dtype=object)
    malformed = ~fullmatches(_LOGIN, distinct)
    # A login with white space never matches _LOGIN: only the malformed need a look.
    spaced = np.zeros(len(distinct), dtype=np.bool_)
    if malformed.any():
        spaced[malformed] = logins[malformed].str.contains(r"\s", regex=True).to_numpy(dtype=bool)
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
        per_login_cell(pd.Series(spaced)),
        INVALID,
        "InvalidLogin",
        _quoting(login, 'the login name "', '" contains spaces', width=80),
    )
    _mark(
        frame,
        per_login_cell(pd.Series(malformed)),
        INVALID,
        "InvalidLogin",
        _quoting(
            login,
            '"',
            '" is not an e-mail address, a login name (i:0#.f|membership|...) or a group name',
            width=80,
        ),
    )
    # The client's rule, over the distinct logins at once: duplicates and lookups must agree.
    frame["_login_key"] = per_login_cell(pd.Series(login_keys(distinct), dtype=object))


def _check_session_ids(frame: pd.DataFrame) -> None:
    """Normalise a cell of session GUIDs to ``_sessions``; keep any other in ``_session_cell``.

    Titles and start times are matched against the course's sessions when resolving.
    """
    raw_sessions = frame["course_session_ids"].astype(str)
    cells, per_session_cell = _distinct(raw_sessions)
    # A sheet may hold a different sessions cell on nearly every row: read them as a column.
    all_guids, joined = session_guids_column(cells.to_numpy(dtype=object))
    frame["_sessions"] = per_session_cell(pd.Series(joined, dtype=object))
    frame["_session_cell"] = per_session_cell(cells.where(~all_guids, ""))
    _mark(
        frame,
        _excel_error(raw_sessions),
        INVALID,
        "InvalidSessionId",
        _quoting(raw_sessions, "the sessions cell holds the Excel error "),
    )


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
            # parse_bool's steps over the column at once: strip, lower, look the word up.
            words = _LOWER(_STRIP(cell.to_numpy(dtype=object)))
            unknown = pd.Series(~pd.Series(words).isin(_TRUE | _FALSE).to_numpy(), index=cell.index)
            _mark(
                frame,
                unknown,
                INVALID,
                "InvalidFlag",
                _quoting(cell, f'{flag} must be true or false, not "', '"', width=40),
            )


_CONTAINS = np.frompyfunc(str.__contains__, 2, 1)
_STRIP = np.frompyfunc(str.strip, 1, 1)
_LOWER = np.frompyfunc(str.lower, 1, 1)
_SPLIT = np.frompyfunc(str.split, 2, 1)
_SORTED = np.frompyfunc(sorted, 1, 1)
_JOIN_SESSIONS = np.frompyfunc(";".join, 1, 1)


def _fold_codes(column: pd.Series[str], rows: pd.Series[bool]) -> npt.NDArray[np.int64]:
    """Number the ``rows``' cells so that cells equal but for case and spacing share a number.

    Other rows get -1. Each distinct cell is folded once: a number per row keeps a
    million-row comparison in C.
    """
    numbers = np.full(len(column), -1, dtype=np.int64)
    picked = rows.to_numpy(dtype=bool)
    if not picked.any():
        return numbers
    codes, uniques = pd.factorize(column if picked.all() else column[picked])
    folded_codes, _ = pd.factorize(folds(np.asarray(uniques, dtype=object)))
    numbers[picked] = np.asarray(folded_codes, dtype=np.int64).take(codes)
    return numbers


def _codes(column: pd.Series[str], rows: pd.Series[bool] | None = None) -> npt.NDArray[np.int64]:
    """Number a column's cells from 0, equal cells alike; outside ``rows`` every cell gets -1.

    Limiting the hashing to ``rows`` skips a column that is empty on most rows.
    """
    if rows is None:
        codes, _ = pd.factorize(column)
        return np.asarray(codes, dtype=np.int64)
    numbers = np.full(len(column), -1, dtype=np.int64)
    picked = rows.to_numpy(dtype=bool)
    if picked.any():
        codes, _ = pd.factorize(column[picked])
        numbers[picked] = codes
    return numbers


def _combined(parts: list[npt.NDArray[np.int64]]) -> npt.NDArray[np.int64]:
    """Number each row's tuple of codes (each -1 or more) so that equal tuples share a number."""
    key = np.zeros(len(parts[0]), dtype=np.int64)
    span = 1
    for part in parts:
        width = int(part.max()) + 2 if len(part) else 1
        if span * width >= 1 << 62:
            # Renumber densely before the product could overflow.
            codes, _ = pd.factorize(key)
            key = np.asarray(codes, dtype=np.int64)
            span = int(key.max()) + 1 if len(key) else 1
        key = key * width + (part + 1)
        span *= width
    return key


def mark_duplicates(frame: pd.DataFrame) -> None:
    """Mark a clean row that repeats an earlier one's course, user, sessions and action.

    Before resolving, courses and sessions compare as written (no case, single
    spaces); after it, by the GUIDs they became, so "SAF-101" and its title meet.
    """
    clean = frame["status"] == OK
    if not clean.any():
        return
    # Only a row whose user is on another clean row can repeat one: one hash of the
    # logins settles a sheet where everyone is distinct, and narrows any other.
    users = frame["_login_key"] if clean.all() else frame.loc[clean, "_login_key"]
    shared = users.duplicated(keep=False).to_numpy(dtype=bool)
    if not shared.any():
        return
    everyone = bool(shared.all())
    index = users.index if everyone else users.index[shared]
    user_codes, _ = pd.factorize(users if everyone else users[shared])

    def column(name: str) -> pd.Series[Any]:
        return frame[name] if everyone and len(index) == len(frame) else frame[name][index]

    course = column("_course").astype(str)
    unresolved = course == ""
    # An unresolved cell is compared as written; a resolved one by its GUID alone.
    written = _fold_codes(column("_course_key").astype(str), unresolved)
    sessions = column("_sessions").astype(str)
    listed = sessions.to_numpy(dtype=object)
    # One join in C tells the usual sheet, where no cell lists several sessions.
    several = np.zeros(len(listed), dtype=np.bool_)
    if ";" in "".join(listed):
        several = np.asarray(_CONTAINS(listed, ";"), dtype=np.bool_)
    if several.any():
        # The same sessions in any order are one booking; sorted by ufuncs, not per row.
        ordered = _JOIN_SESSIONS(_SORTED(_SPLIT(listed[several], ";")))
        sessions = sessions.copy()
        sessions[several] = ordered
    cell = column("_session_cell").astype(str)
    no_sessions = sessions == ""
    named = _fold_codes(cell, (cell != "") & no_sessions)
    # Every part as a number, equal numbers for equal cells, the parts as one number:
    # a million rows then compare by hashing one integer each, not six cells of text.
    parts = [
        _codes(course, ~unresolved),
        written,
        np.asarray(user_codes, dtype=np.int64),
        _codes(sessions, ~no_sessions),
        named,
        _codes(column("_action").astype(str)),
    ]
    key = pd.Series(_combined(parts), index=index)
    repeated = key.duplicated(keep="first")
    if repeated.any():
        first_row = column("row").groupby(key).transform("first")
        message = pd.Series("", index=frame.index, dtype=object)
        rep_index = repeated[repeated].index
        message[rep_index] = "the same course, user and sessions as row " + first_row[
            rep_index
        ].astype(str)
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
    mark_duplicates,
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


def _when(record: Mapping[str, Any], *fields: str) -> datetime | None:
    """Return the first of ``fields`` that holds a real time (a group's placeholders do not)."""
    for name in fields:
        when = parse_lms_time(record.get(name))
        if when is not None and not is_placeholder(when):
            return when
    return None


def _closed(record: Mapping[str, Any], now: datetime) -> bool:
    """Say whether a session ended or its enrollment deadline passed."""
    for fields in (("EndDate",), ("EnrollmentDeadline", "RegistrationDeadline")):
        when = _when(record, *fields)
        if when is not None and when < now:
            return True
    return False


def _course_seats(info: CourseInfo, now: datetime) -> Mapping[str, Any]:
    """Return an EnrollToAll course's seats: its own limit, taken as its busiest open session's."""
    meta = info.metadata or {}
    taken = meta.get("TakenSeatsCount")
    if taken is None:
        counts = [
            seats_taken(s)
            for s in info.session_list()
            if s.get("IsGroup") is not True and not _closed(s, now)
        ]
        numbers = [c for c in counts if c is not None]
        taken = max(numbers) if numbers else None
    return {"MaxAttendees": meta.get("MaxAttendees"), "TakenSeatsCount": taken}


def _group_full(info: CourseInfo, group: Mapping[str, Any], now: datetime) -> bool:
    """Say whether booking a session group meets a full session: the group or an open member."""
    if is_full(group):
        return True
    group_id = str(group.get("Id", "")).lower()
    return any(
        is_full(member)
        for member in info.session_list()
        if str(member.get("GroupId") or "").lower() == group_id and not _closed(member, now)
    )


def _full_verdict(
    info: CourseInfo, what: str, *, ignore_max: bool
) -> tuple[str, str, str, str] | None:
    """Say what a full session (or EnrollToAll course) means for a row."""
    if ignore_max:
        return None
    if keeps_waiting_list(info.metadata):
        return OK, "", "", f"{what} is full: the learner goes onto its waiting list"
    return INVALID, "MaxAttendeesReached", f"{what} is full", ""


def _verdict_for(
    info: CourseInfo,
    sessions: Sequence[str],
    *,
    ignore_max: bool,
    require_session: bool,
    now: datetime,
) -> tuple[str, str, str, str]:
    """Return (status, code, message, warning) for one enroll row of a course."""
    name = info.name
    if not info.found:
        return INVALID, "CourseNotFound", f"course {name} does not exist in LMS365", ""
    if info.error:
        return OK, "", "", f"course {name} could not be read to check sessions ({info.error})"
    meta = info.metadata or {}
    if meta.get("IsDeleted"):
        return INVALID, "CourseNotAvailable", f"course {name} has been deleted", ""
    if meta.get("IsEnded"):
        return INVALID, "CourseNotAvailable", f"course {name} has ended", ""
    if meta.get("IsPublished") is False:
        return INVALID, "CourseNotAvailable", f"course {name} is not published", ""
    if not info.is_ilt:
        if sessions:
            kind = "a training plan" if meta.get("CourseType") == "TrainingPlan" else "e-learning"
            return (
                INVALID,
                "InvalidCourseSession",
                f"course {name} is {kind} and has no sessions; leave the session empty",
                "",
            )
        return OK, "", "", ""
    mode = info.session_mode
    if mode == "EnrollToAll":
        if sessions:
            return (
                INVALID,
                "TooManySessions",
                f"course {name} enrolls each learner into all its sessions;"
                " leave the sessions empty",
                "",
            )
        # The course's own deadline and seats are what count for EnrollToAll.
        if _closed({"EnrollmentDeadline": meta.get("EnrollmentDeadline")}, now):
            return (
                INVALID,
                "SessionClosed",
                f"the enrollment deadline of course {name} has passed",
                "",
            )
        if is_full(_course_seats(info, now)):
            return _full_verdict(info, f"course {name}", ignore_max=ignore_max) or (OK, "", "", "")
        return OK, "", "", ""
    if not sessions:
        if meta.get("IsEnrollmentWithoutSessionsAllowed") is False:
            return (
                INVALID,
                "SessionRequired",
                f"course {name} requires a session: LMS365 does not enroll without one",
                "",
            )
        if require_session:
            return (
                INVALID,
                "SessionRequired",
                f"course {name} is instructor-led and no session was given",
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
                f"session {session_id} is not one of course {name}'s sessions",
                "",
            )
    if mode == "EnrollToSingle" and len(sessions) > 1:
        return (
            INVALID,
            "TooManySessions",
            f"course {name} lets a learner attend one session only, but {len(sessions)} were given",
            "",
        )
    warning = ""
    for session_id in sessions:
        session = known[session_id]
        title = session.get("Title") or session_id
        if _closed(session, now):
            return (
                INVALID,
                "SessionClosed",
                f'session "{title}" has ended or its enrollment deadline has passed',
                "",
            )
        if _group_full(info, session, now) if session.get("IsGroup") is True else is_full(session):
            verdict = _full_verdict(info, f'session "{title}"', ignore_max=ignore_max)
            if verdict is not None and verdict[0] != OK:
                return verdict
            if verdict is not None:
                warning = _append_warning(warning, verdict[3])
    return OK, "", "", warning


def _append_warning(current: str, warning: str) -> str:
    return f"{current}; {warning}" if current else warning


def _seat_warning(
    info: CourseInfo,
    sessions: Sequence[str],
    seats_used: dict[tuple[str, str], int],
) -> str:
    """Count this row's seats; warn when the sheet asks for more than a session has free."""
    known = info.sessions()
    for session_id in sessions:
        seat = (info.course_id, session_id)
        seats_used[seat] = seats_used.get(seat, 0) + 1
        session = known.get(session_id, {})
        limit, taken = seat_limit(session), seats_taken(session)
        if limit is None or taken is None or is_full(session):
            continue  # no limit, unknown, or already full (said by the rules)
        if is_full(session, adding=seats_used[seat] - 1):
            rest = (
                "the rest go onto its waiting list"
                if keeps_waiting_list(info.metadata)
                else "the rest will be refused"
            )
            return (
                f'session "{session.get("Title") or session_id}" has {limit - taken}'
                f" free seats, fewer than the sheet asks for; {rest}"
            )
    return ""


def check_sessions(
    frame: pd.DataFrame,
    courses: Mapping[str, CourseInfo],
    *,
    require_session: bool = False,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Apply the contract's session rules to the rows still ``ok``; return the frame.

    Rows are first compared by the GUIDs they resolved to, so two rows naming
    the same course and session differently are one booking.
    """
    now = now or datetime.now(UTC)
    mark_duplicates(frame)
    clean = frame.index[frame["status"] == OK]
    if len(clean) == 0:
        return frame
    statuses = frame["status"].to_numpy(dtype=object, copy=True)
    codes = frame["error_code"].to_numpy(dtype=object, copy=True)
    messages = frame["error_message"].to_numpy(dtype=object, copy=True)
    warnings = frame["warnings"].to_numpy(dtype=object, copy=True)
    has_ignore = "ignore_max_attendees" in frame.columns
    first_sessions: dict[tuple[str, str], tuple[int, str]] = {}
    seats_used: dict[tuple[str, str], int] = {}
    positions = frame.index.get_indexer(clean)
    course_col = frame["_course"].to_numpy(dtype=object)
    session_col = frame["_sessions"].to_numpy(dtype=object)
    cell_col = frame["_session_cell"].to_numpy(dtype=object)
    action_col = frame["_action"].to_numpy(dtype=object)
    key_col = frame["_login_key"].to_numpy(dtype=object)
    row_col = frame["row"].to_numpy()
    ignore_col = frame["ignore_max_attendees"].to_numpy(dtype=object) if has_ignore else None
    for pos in positions:
        cid = str(course_col[pos])
        info = courses.get(cid)
        if info is None:
            continue
        sessions = [s for s in str(session_col[pos]).split(";") if s]
        if not sessions and cell_col[pos]:
            sessions = [str(cell_col[pos])]  # named sessions of a course that has none
        if action_col[pos] == UNENROLL:
            if not info.found:
                statuses[pos], codes[pos] = INVALID, "CourseNotFound"
                messages[pos] = f"course {info.name} does not exist in LMS365"
            elif sessions:
                warnings[pos] = _append_warning(
                    warnings[pos], "session ids are ignored when unenrolling"
                )
            continue
        ignore_max = bool(parse_bool(str(ignore_col[pos]))) if ignore_col is not None else False
        status, code, message, warning = _verdict_for(
            info, sessions, ignore_max=ignore_max, require_session=require_session, now=now
        )
        if status == OK and info.found and info.is_ilt and info.session_mode != "EnrollToAll":
            user = (cid, str(key_col[pos]))
            joined = ";".join(sorted(sessions))
            first = first_sessions.setdefault(user, (int(row_col[pos]), joined))
            if first[1] != joined and info.session_mode == "EnrollToSingle":
                status, code = INVALID, "ConflictingSessions"
                message = (
                    f"row {first[0]} already books this user into course {info.name}, which"
                    " allows one session per learner"
                )
            elif not ignore_max:
                seat_warning = _seat_warning(info, sessions, seats_used)
                if seat_warning:
                    warning = _append_warning(warning, seat_warning)
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
    """Build one job per row that may be sent (``ok`` or ``warning``, its course resolved)."""
    # A course cell never resolved to a GUID (an offline check only) is never sent.
    sendable = frame[frame["status"].isin((OK, WARNING)) & (frame["_course"].astype(str) != "")]
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
            course_id=str(course),
            login=canonical_login(str(login)),
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
