"""Resolve what a sheet names against LMS365, then apply the rules that need its answers.

The resolve stage of ``validate`` and ``run``: what an HR sheet says becomes the
GUIDs LMS365 knows, courses and sessions alike.

A course cell is a course's GUID, its visible code (``CourseID``) or its title; a
sessions cell is session GUIDs, or session titles and start times. The matching
rules are pure functions of a cell and what LMS365 holds; the reads ask LMS365
as little as possible: one request per distinct course cell, or one paged read
of the course list, whichever is fewer, and never one per row.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import pandas as pd

from batch_enroll.classifier import ILT_COURSE_TYPES, parse_lms_time
from batch_enroll.client import COURSE_FIELDS, LmsClient, odata_quote
from batch_enroll.errors import AuthFailure, CallFailed
from batch_enroll.ids import (
    course_key,
    fold,
    is_placeholder,
    parse_guid,
    session_guids,
)
from batch_enroll.model import DUPLICATE, ENROLL, INVALID, OK
from batch_enroll.options import RunOptions
from batch_enroll.pool import PoolEnd, StopHandle, map_concurrently
from batch_enroll.validator import check_sessions

__all__ = [
    "AMBIGUOUS_COURSE",
    "AMBIGUOUS_SESSION",
    "COURSE_NOT_FOUND",
    "SESSION_NOT_FOUND",
    "CourseInfo",
    "CourseRef",
    "Halted",
    "Match",
    "check_online",
    "course_filter",
    "course_key",
    "describe",
    "fetch_courses",
    "find_courses",
    "fold",
    "is_placeholder",
    "match_course",
    "match_sessions",
    "parse_guid",
    "resolution_changes",
    "resolve",
    "resolve_frame",
    "resolved_courses",
    "session_guids",
    "session_label",
    "session_local_start",
]

COURSE_NOT_FOUND = "CourseNotFound"
AMBIGUOUS_COURSE = "AmbiguousCourse"
SESSION_NOT_FOUND = "SessionNotFound"
AMBIGUOUS_SESSION = "AmbiguousSession"

#: Candidates an ambiguous course names.
COURSE_CANDIDATES = 3
#: Candidates a session message names.
SESSION_CANDIDATES = 5

# Titles hold commas and spaces ("Morning, Oslo"), so named sessions split on ; and | only.
_NAME_SPLIT = re.compile(r"[;|]")
_WHEN = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[ T]+(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::[0-9]{2}(?:\.[0-9]*)?)?)?"
)


@dataclass(frozen=True, slots=True)
class CourseRef:
    """What a lookup knows of a course: its GUID, visible code and title."""

    id: str
    code: str = ""
    title: str = ""

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CourseRef | None:
        """Read a course record; None when it has no usable ``Id``."""
        guid = parse_guid(str(record.get("Id") or ""))
        if guid is None:
            return None
        code = record.get("CourseID")
        title = record.get("Title")
        return cls(guid, "" if code is None else str(code), "" if title is None else str(title))

    def describe(self) -> str:
        """Name the course for a message: GUID, code and title."""
        parts = [self.id]
        if self.code:
            parts.append(f"code {self.code!r}")
        if self.title:
            parts.append(f"title {self.title!r}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Match:
    """The ids a cell names, or why it names none (``error_code``, ``error_message``)."""

    ids: tuple[str, ...] = ()
    error_code: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        """Say whether the cell resolved."""
        return not self.error_code


def _candidates(found: Sequence[CourseRef]) -> str:
    named = "; ".join(ref.describe() for ref in found[:COURSE_CANDIDATES])
    more = f"; and {len(found) - COURSE_CANDIDATES} more" if len(found) > COURSE_CANDIDATES else ""
    return named + more


def match_course(cell: str, catalogue: Iterable[CourseRef]) -> Match:
    """Match one course cell: its GUID, else its code, else its title.

    The code is compared trimmed and without case, the title without case and with
    inner white space collapsed. A code that several courses share is ambiguous
    even if a title would match: the sheet's author meant a code.
    """
    key = course_key(cell)
    guid = parse_guid(key)
    if guid is not None:
        return Match((guid,))
    wanted = fold(key)
    courses = list({ref.id: ref for ref in catalogue}.values())
    for field, label in (("code", "code"), ("title", "title")):
        found = [
            ref for ref in courses if getattr(ref, field) and fold(getattr(ref, field)) == wanted
        ]
        if len(found) == 1:
            return Match((found[0].id,))
        if found:
            return Match(
                error_code=AMBIGUOUS_COURSE,
                error_message=(
                    f'{len(found)} courses have the {label} "{key}": {_candidates(found)};'
                    " write the course's id (GUID) instead"
                ),
            )
    return Match(
        error_code=COURSE_NOT_FOUND,
        error_message=f'no course in LMS365 has the id, code or title "{key}"',
    )


def course_filter(cell: str) -> str:
    """Return the ``$filter`` that finds the courses a cell may name by code or title.

    The code is the trimmed cell; the title is also asked with its inner white
    space collapsed, as a person retyping it would mean.
    """
    key = course_key(cell)
    quoted = odata_quote(key)
    clauses = [f"CourseID eq {quoted}", f"Title eq {quoted}"]
    collapsed = " ".join(key.split())
    if collapsed != key:
        clauses.append(f"Title eq {odata_quote(collapsed)}")
    return " or ".join(clauses)


async def find_courses(
    client: LmsClient, cells: Iterable[str], *, concurrency: int = 8
) -> dict[str, Match]:
    """Resolve each distinct course cell; GUID cells need no request.

    One cell to look up: one filtered read (``CourseID eq ... or Title eq ...``).
    More: the course list (``$select=Id,CourseID,Title``), which is one page on
    nearly every tenant; when its first page shows that the rest would take more
    requests than one per cell, each cell is asked for instead. The server's
    answers are matched here by the rules of ``match_course``. Should a filter be
    refused (400), or find nothing for a cell (a server whose ``eq`` minds case,
    say), the whole list is read before a cell is called unknown.
    """
    keys = sorted({course_key(cell) for cell in cells})
    answers: dict[str, Match] = {}
    wanted: list[str] = []
    for key in keys:
        guid = parse_guid(key)
        if guid is not None:
            answers[key] = Match((guid,))
        elif key:
            wanted.append(key)
    if not wanted:
        return answers
    catalogue: list[CourseRef] = []
    complete = False
    if len(wanted) > 1:
        complete = await _read_list(client, catalogue, cells=len(wanted))
    if not complete:
        refused = await _read_filtered(client, catalogue, wanted, concurrency=concurrency)
        unknown = any(match_course(key, catalogue).error_code == COURSE_NOT_FOUND for key in wanted)
        if refused or unknown:
            catalogue.clear()
            await _read_list(client, catalogue, cells=None)
    for key in wanted:
        answers[key] = match_course(key, catalogue)
    return answers


async def _read_list(client: LmsClient, catalogue: list[CourseRef], *, cells: int | None) -> bool:
    """Read the course list into ``catalogue``; say whether it was read to the end.

    With ``cells``, stop after the first page when the rest would take more
    requests than asking once per cell.
    """
    pages = client.course_pages(select=COURSE_FIELDS, count=cells is not None)
    try:
        async for page, body in pages:
            catalogue.extend(_refs(page))
            if not body.get("@odata.nextLink"):
                return True
            if cells is not None and not _worth_paging(body, len(catalogue), len(page), cells):
                return False
    finally:
        await pages.aclose()
    return True


async def _read_filtered(
    client: LmsClient, catalogue: list[CourseRef], wanted: Sequence[str], *, concurrency: int
) -> bool:
    """Ask for each cell's courses by a filter; say whether LMS365 refused a filter (400)."""

    async def by_filter(key: str) -> list[CourseRef] | CallFailed:
        try:
            return _refs(await client.find_courses(course_filter(key)))
        except CallFailed as exc:
            return exc  # raised below as itself, not inside a task group's ExceptionGroup

    refused = False
    found = await map_concurrently(list(wanted), by_filter, concurrency=concurrency)
    for refs in found.values():
        if isinstance(refs, CallFailed):
            if refs.outcome.http_status != 400:
                raise refs
            refused = True
        else:
            catalogue.extend(refs)
    return refused


def _refs(items: Iterable[Any]) -> list[CourseRef]:
    refs = (CourseRef.from_record(item) for item in items if isinstance(item, Mapping))
    return [ref for ref in refs if ref is not None]


def _worth_paging(body: Mapping[str, Any], seen: int, page_size: int, cells: int) -> bool:
    """Say whether reading the rest of the list takes no more requests than one per cell."""
    total = body.get("@odata.count")
    if not isinstance(total, int) or page_size <= 0:
        return False  # unknown length: asking per cell is bounded, paging may not be
    remaining = math.ceil(max(0, total - seen) / page_size)
    return remaining <= cells


# -- sessions -----------------------------------------------------------------------------------


def session_local_start(session: Mapping[str, Any]) -> datetime | None:
    """Return a session's start as its own wall clock shows it (naive).

    ``StartDateLocal`` when LMS365 gives it, else the UTC ``StartDate``; a session
    group's placeholder dates give None.
    """
    # The local time's wall clock is what people read, whatever offset it carries.
    local = parse_lms_time(session.get("StartDateLocal"))
    if local is not None:
        local = local.replace(tzinfo=None)
    else:
        start = parse_lms_time(session.get("StartDate"))
        if start is None:
            return None
        local = start.astimezone(UTC).replace(tzinfo=None)
    return None if is_placeholder(local) else local


def _is_group(session: Mapping[str, Any]) -> bool:
    return session.get("IsGroup") is True


def session_label(session: Mapping[str, Any]) -> str:
    """Name a session for people: its title and local start, or that it is a group."""
    title = str(session.get("Title") or session.get("Id") or "")
    if _is_group(session):
        return f"{title} (session group)"
    start = session_local_start(session)
    return f"{title} ({start:%Y-%m-%d %H:%M})" if start is not None else title


def _listing(sessions: Sequence[Mapping[str, Any]]) -> str:
    shown = "; ".join(session_label(s) for s in sessions[:SESSION_CANDIDATES])
    more = len(sessions) - SESSION_CANDIDATES
    return shown + (f"; and {more} more" if more > 0 else "")


def _match_part(part: str, sessions: Sequence[Mapping[str, Any]]) -> Match:
    guid = parse_guid(part)
    if guid is not None:
        return Match((guid,))  # whether it belongs to the course is a session rule
    wanted = fold(part)
    titled = [s for s in sessions if fold(str(s.get("Title") or "")) == wanted]
    if len(titled) == 1:
        return Match((str(titled[0].get("Id", "")).lower(),))
    if titled:
        return Match(
            error_code=AMBIGUOUS_SESSION,
            error_message=(
                f'{len(titled)} sessions are called "{part}": {_listing(titled)};'
                " name one by its start time (YYYY-MM-DD HH:MM) or id"
            ),
        )
    when = _WHEN.fullmatch(part.strip())
    if when is not None:
        dated = [s for s in sessions if not _is_group(s) and session_local_start(s) is not None]
        day = when.group("date")
        if when.group("hour") is None:
            found = [s for s in dated if f"{session_local_start(s):%Y-%m-%d}" == day]
            what = f"start on {day}"
            hint = " name one by its start time (YYYY-MM-DD HH:MM), title or id"
        else:
            moment = f"{day} {int(when.group('hour')):02d}:{when.group('minute')}"
            found = [s for s in dated if f"{session_local_start(s):%Y-%m-%d %H:%M}" == moment]
            what = f"start at {moment}"
            hint = " name one by its title or id"
        if len(found) == 1:
            return Match((str(found[0].get("Id", "")).lower(),))
        if found:
            return Match(
                error_code=AMBIGUOUS_SESSION,
                error_message=f"{len(found)} sessions {what}: {_listing(found)};{hint}",
            )
        return Match(
            error_code=SESSION_NOT_FOUND,
            error_message=(
                f"no session of this course starts at {part.strip()!r} (its own local time);"
                f" its sessions: {_listing(list(sessions)) or 'none'}"
            ),
        )
    return Match(
        error_code=SESSION_NOT_FOUND,
        error_message=(
            f'no session of this course is called "{part}";'
            f" its sessions: {_listing(list(sessions)) or 'none'}"
        ),
    )


def match_sessions(cell: str, sessions: Sequence[Mapping[str, Any]]) -> Match:
    """Match a sessions cell within one course's sessions (session groups included).

    A cell of GUIDs only is taken as it is. Otherwise each part between ``;`` or
    ``|`` is a session GUID, a title (no case), a start date ``YYYY-MM-DD`` (when
    only one session starts that day) or a start ``YYYY-MM-DD HH:MM`` in the
    session's own local time. The first part that names no session, or several,
    makes the whole cell fail.
    """
    guids = session_guids(cell)
    if guids is not None:
        return Match(tuple(guids))
    whole = fold(cell)
    titled = [x for x in sessions if fold(str(x.get("Title") or "")) == whole]
    if len(titled) == 1 and _NAME_SPLIT.search(cell):
        # A title that holds a separator itself ("Part 1; Basics") names one session.
        return Match((str(titled[0].get("Id", "")).lower(),))
    ids: list[str] = []
    for part in _NAME_SPLIT.split(cell):
        if not part.strip():
            continue
        found = _match_part(part.strip(), sessions)
        if not found.ok:
            return found
        for session_id in found.ids:
            if session_id not in ids:
                ids.append(session_id)
    return Match(tuple(ids))


# -- courses' metadata --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CourseInfo:
    """What the session rules need of a course; ``found`` is False for a 404."""

    course_id: str
    found: bool
    error: str = ""
    metadata: Mapping[str, Any] | None = None
    #: The read failed without any answer from LMS365 (no connection, no reply).
    unreachable: bool = False

    @property
    def is_ilt(self) -> bool:
        """Say whether the course is instructor-led (classroom or webinar)."""
        return (self.metadata or {}).get("CourseType") in ILT_COURSE_TYPES

    @property
    def session_mode(self) -> str:
        """Return EnrollToSingle, EnrollToMultiple or EnrollToAll."""
        mode = (self.metadata or {}).get("CourseSessionEnrollmentType")
        return str(mode) if mode else "EnrollToSingle"

    @property
    def title(self) -> str:
        """Return the course's title, or an empty string."""
        title = (self.metadata or {}).get("Title")
        return "" if title is None else str(title)

    @property
    def name(self) -> str:
        """Name the course in a message: its title in quotes, else its id."""
        return f'"{self.title}"' if self.title else self.course_id

    def session_list(self) -> list[Mapping[str, Any]]:
        """Return the course's sessions and session groups."""
        found = (self.metadata or {}).get("CourseSessions") or []
        return [session for session in found if isinstance(session, Mapping)]

    def sessions(self) -> dict[str, Mapping[str, Any]]:
        """Map each session's lower-case id to its record."""
        return {str(s.get("Id", "")).lower(): s for s in self.session_list()}


async def fetch_courses(
    client: LmsClient, course_ids: Iterable[str], *, concurrency: int = 8
) -> dict[str, CourseInfo]:
    """Read each course once (``$expand=CourseSessions``), several at a time."""

    async def read(course_id: str) -> CourseInfo:
        try:
            metadata = await client.get_course(course_id)
        except CallFailed as exc:
            no_answer = exc.outcome.http_status is None
            return CourseInfo(course_id, True, error=str(exc), unreachable=no_answer)
        return CourseInfo(course_id, metadata is not None, metadata=metadata)

    return await map_concurrently(sorted(set(course_ids)), read, concurrency=concurrency)


# -- the sheet ----------------------------------------------------------------------------------


def _apply(
    frame: pd.DataFrame,
    rows: pd.Series[bool],
    keys: pd.Series[str],
    found: Mapping[str, Match],
    *,
    column: str,
) -> None:
    """Give the ``rows`` their key's match: the ids in ``column``, or ``invalid`` with why.

    ``found`` holds one Match per distinct key; rows take theirs by a hashed
    lookup, never by running Python per row.
    """
    picked = rows & keys.isin(list(found))
    if not picked.any():
        return
    ids = {key: ";".join(m.ids) for key, m in found.items() if m.ok}
    codes = {key: m.error_code for key, m in found.items() if not m.ok}
    messages = {key: m.error_message for key, m in found.items() if not m.ok}
    row_keys = keys[picked]
    good = row_keys.isin(list(ids))
    if good.any():
        frame.loc[good[good].index, column] = row_keys[good].map(ids)
    failing = good[~good].index
    if len(failing):
        frame.loc[failing, "status"] = INVALID
        frame.loc[failing, "error_code"] = row_keys[failing].map(codes)
        frame.loc[failing, "error_message"] = row_keys[failing].map(messages)


async def resolve_frame(
    client: LmsClient, frame: pd.DataFrame, *, concurrency: int = 8
) -> dict[str, CourseInfo]:
    """Resolve the clean rows' courses and sessions to GUIDs; return each course read.

    Fills ``_course`` (the course GUID) and ``_sessions`` (session GUIDs joined by
    ``;``); a cell that names no course or session, or several, makes its row
    ``invalid``. Works per distinct cell, never per row.
    """
    clean = frame["status"] == OK
    if not clean.any():
        return {}
    keys = frame["_course_key"].astype(str)
    unresolved = frame["_course"].astype(str) == ""
    lookup = clean & unresolved
    if lookup.any():
        answers = await find_courses(
            client, keys[lookup].unique().tolist(), concurrency=concurrency
        )
        # A duplicate names what its first row names: show the same course beside it.
        repeats = (frame["status"] == DUPLICATE) & unresolved
        found = {key: match for key, match in answers.items() if match.ok}
        _apply(frame, repeats, keys, found, column="_course")
        _apply(frame, lookup, keys, answers, column="_course")
    clean = frame["status"] == OK
    courses = await fetch_courses(
        client, frame.loc[clean, "_course"].astype(str).unique().tolist(), concurrency=concurrency
    )
    named = clean & (frame["_session_cell"].astype(str) != "") & (frame["_action"] == ENROLL)
    if named.any():
        # One key per distinct course and sessions cell: a name means different sessions per course.
        pairs = frame["_course"].astype(str) + "\x1f" + frame["_session_cell"].astype(str)
        matches: dict[str, Match] = {}
        for pair in pairs[named].unique().tolist():
            course_id, cell = pair.split("\x1f", 1)
            info = courses.get(course_id)
            if info is None or not info.found or not info.is_ilt:
                continue  # the session rules say what is wrong with these rows
            if info.error:
                matches[pair] = Match(
                    error_code="CourseNotRead",
                    error_message=(
                        f"course {info.name} could not be read to find the sessions"
                        f' "{cell}" ({info.error})'
                    ),
                )
            else:
                matches[pair] = match_sessions(cell, info.session_list())
        _apply(frame, named, pairs, matches, column="_sessions")
    return courses


def describe(frame: pd.DataFrame, courses: Mapping[str, CourseInfo]) -> pd.DataFrame:
    """Add ``lms_course_id``, ``course_title`` and ``session_titles``: what each row became.

    Labels are built once per distinct course and sessions, then looked up per row.
    """
    course_ids = frame["_course"].astype(str)
    sessions = frame["_sessions"].astype(str)
    titles = {cid: info.title for cid, info in courses.items()}
    frame["lms_course_id"] = course_ids
    frame["course_title"] = course_ids.map(titles).fillna("") if titles else ""
    booked = (sessions != "") & course_ids.isin(list(courses))
    frame["session_titles"] = ""
    if booked.any():
        pairs = course_ids[booked] + "\x1f" + sessions[booked]
        labels: dict[str, str] = {}
        for pair in pairs.unique().tolist():
            cid, joined = pair.split("\x1f", 1)
            known = courses[cid].sessions()
            labels[pair] = "; ".join(
                session_label(known[s]) if s in known else s for s in joined.split(";") if s
            )
        frame.loc[booked, "session_titles"] = pairs.map(labels)
    return frame


def resolved_courses(frame: pd.DataFrame) -> dict[str, str]:
    """Return what each course cell resolved to: normalised cell -> course GUID."""
    found = frame.loc[frame["_course"].astype(str) != "", ["_course_key", "_course"]]
    return dict(zip(found["_course_key"].astype(str), found["_course"].astype(str), strict=True))


def resolution_changes(before: Mapping[str, str], now: Mapping[str, str]) -> str:
    """Say which course cells now name another course than when a run started; "" if none.

    A resumed run must send each row to the course its first run meant: a course
    renamed or recoded in between would otherwise send the rest elsewhere.
    """
    changed = sorted(key for key in before.keys() & now.keys() if before[key] != now[key])
    if not changed:
        return ""
    shown = ", ".join(f'"{key}" ({before[key]} then, {now[key]} now)' for key in changed[:3])
    return (
        f"the course cell {shown} names another course in LMS365 than when this run started;"
        " nothing was sent. Write the course's id (GUID) in the sheet and start a new run"
    )


# -- the stage ----------------------------------------------------------------------------------


class Halted(Exception):
    """Nothing more can be sent; ``reason`` says why, in the summary's words."""

    def __init__(self, end: PoolEnd, reason: str) -> None:
        super().__init__(reason)
        self.end, self.reason = end, reason


async def resolve(
    client: LmsClient, checked: pd.DataFrame, stop: StopHandle, *, grace: float
) -> dict[str, CourseInfo]:
    """Resolve the clean rows' course and session cells; read each course found once."""
    with anyio.CancelScope() as scope, stop.guarding(scope, grace=grace):
        return await resolve_frame(client, checked)
    return {}  # a stop cancelled the reads; the caller sees stop.requested


def _lookup_failed(exc: CallFailed, base_url: str) -> str:
    """Say why nothing can be sent when the course list could not be read."""
    if exc.outcome.http_status is None:
        return f"could not reach LMS365 at {base_url} ({exc}); nothing was sent"
    return (
        f"could not look courses up by code or title (HTTP {exc.outcome.http_status}:"
        f" {exc}); nothing was sent"
    )


async def check_online(
    client: LmsClient, checked: pd.DataFrame, options: RunOptions, stop: StopHandle
) -> None:
    """Resolve the sheet and apply the course and session rules; raise Halted if LMS365 won't do.

    Each row then also says what it became (``lms_course_id``, ``course_title``,
    ``session_titles``).
    """
    try:
        courses = await resolve(client, checked, stop, grace=options.grace)
    except AuthFailure as exc:
        raise Halted(PoolEnd.AUTH, exc.explain()) from None
    except CallFailed as exc:
        raise Halted(PoolEnd.FAILED, _lookup_failed(exc, options.base_url)) from None
    if courses and all(info.unreachable for info in courses.values()):
        # Every row would only fail its retries one by one; say so once instead.
        reason = next(iter(courses.values())).error
        message = f"could not reach LMS365 at {options.base_url} ({reason}); nothing was sent"
        raise Halted(PoolEnd.FAILED, message)
    check_sessions(checked, courses, require_session=options.require_session)
    describe(checked, courses)
