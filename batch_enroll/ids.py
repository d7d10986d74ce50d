"""Read the ids and names a sheet or LMS365 holds, the same way everywhere.

Pure functions, shared by the offline checks and by resolving against LMS365.
LMS365's dates are read by ``classifier.parse_lms_time``.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import numpy.typing as npt

__all__ = [
    "course_key",
    "course_keys",
    "fold",
    "folds",
    "fullmatches",
    "is_placeholder",
    "parse_guid",
    "session_guids",
    "session_guids_column",
]

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_BRACED_GUID = re.compile(r"\{?(" + _GUID + r")\}?")
# A whole number Excel (or a CSV written from it) shows as 101.0.
_WHOLE_FLOAT = re.compile(r"([+-]?[0-9]+)\.0+")
# How today's GUID-only sessions cells are split.
_GUID_SPLIT = re.compile(r"[;,|\s]+")
_GUID_IN_CELL = re.compile(_GUID)
# What parse_guid takes: a GUID, or one in braces, both or neither.
_GUID_ALONE = re.compile(r"\{" + _GUID + r"\}|" + _GUID)
# A whole cell that ``session_guids`` reads as GUIDs: separators, braced or bare GUIDs.
# Line breaks are left out (``fullmatches`` needs that); the column form makes them spaces.
_SESSION_SEP = r"(?:[;,|]|[^\S\n])"
_GUID_CELL = re.compile(
    _SESSION_SEP + r"*(?:(?:\{" + _GUID + r"\}|" + _GUID + r")"
    r"(?:" + _SESSION_SEP + r"+(?:\{" + _GUID + r"\}|" + _GUID + r"))*" + _SESSION_SEP + r"*)?"
)

# The str methods of the rules below, run over a whole column by numpy in C.
_LOWER = np.frompyfunc(str.lower, 1, 1)
_STRIP = np.frompyfunc(str.strip, 1, 1)
_STRIP_CHARS = np.frompyfunc(str.strip, 2, 1)
_REPLACE = np.frompyfunc(str.replace, 3, 1)


def parse_guid(text: str) -> str | None:
    """Return the GUID a cell holds (any case, braces or not) in lower case, or None."""
    match = _BRACED_GUID.fullmatch(text.strip())
    if match is None:
        return None
    braces = text.strip()
    if braces.startswith("{") != braces.endswith("}"):
        return None
    return match.group(1).lower()


def course_key(cell: str) -> str:
    """Return a course cell as the results show it: a GUID in lower case, ``101.0`` as ``101``."""
    text = cell.strip()
    guid = parse_guid(text)
    if guid is not None:
        return guid
    whole = _WHOLE_FLOAT.fullmatch(text)
    if whole is not None:
        return whole.group(1)
    return text


def course_keys(
    cells: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.object_]]:
    """Return ``course_key`` of every cell of a column, and its GUID where it is one, else "".

    The steps of ``course_key`` and ``parse_guid``, each run over the column at once.
    """
    text = np.asarray(_STRIP(cells), dtype=object)
    keys = text.copy()
    guids = np.full(len(text), "", dtype=object)
    guid = fullmatches(_GUID_ALONE, text)
    if guid.any():
        guids[guid] = keys[guid] = _LOWER(_STRIP_CHARS(text[guid], "{}"))
    whole = fullmatches(_WHOLE_FLOAT, text) & ~guid
    if whole.any():
        keys[whole] = np.frompyfunc(_WHOLE_FLOAT.sub, 2, 1)(r"\1", text[whole])
    return keys, guids


def fold(text: str) -> str:
    """Return the form codes and titles are compared in: no case, single inner spaces."""
    return " ".join(str(text).split()).casefold()


def folds(cells: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Return ``fold`` of every cell of a column of strings, the same steps run by ufuncs."""
    words = np.frompyfunc(str.split, 1, 1)(cells)
    spaced = np.frompyfunc(" ".join, 1, 1)(words)
    return np.asarray(np.frompyfunc(str.casefold, 1, 1)(spaced), dtype=object)


def fullmatches(pattern: re.Pattern[str], cells: npt.NDArray[np.object_]) -> npt.NDArray[np.bool_]:
    """Say which cells ``pattern`` matches whole, scanning the column in a few regex runs.

    ``pattern`` must never match a line break. The cells are joined one per line;
    one possessive run of ``(?>pattern\n)`` passes every line that matches, the
    next every line that does not, and so on: a call per stretch of good or bad
    cells, where a ``fullmatch`` per cell cost a Python call and a match object each.
    """
    ok = np.ones(len(cells), dtype=np.bool_)
    if not len(cells):
        return ok
    listed = cells.tolist()
    text = "\n".join(listed) + "\n"
    broken: npt.NDArray[np.intp] | None = None
    if text.count("\n") != len(listed):
        # A cell holding a line break cannot match; leave it out of the scan.
        holds = np.frompyfunc(str.__contains__, 2, 1)(cells, "\n")
        broken = np.flatnonzero(np.asarray(holds, dtype=bool))
        for position in broken.tolist():
            listed[position] = ""
        text = "\n".join(listed) + "\n"
    one = r"(?>(?:" + pattern.pattern + r")\n)"
    good = re.compile(one + r"*+", pattern.flags)
    bad = re.compile(r"(?:(?!" + one + r")[^\n]*\n)*+", pattern.flags)
    position = line = 0
    while position < len(text):
        # Both runs always match (*+), maybe empty; one of them passes the next line.
        end = good.match(text, position).end()  # type: ignore[union-attr]
        line += text.count("\n", position, end)
        position = end
        end = bad.match(text, position).end()  # type: ignore[union-attr]
        skipped = text.count("\n", position, end)
        ok[line : line + skipped] = False
        line += skipped
        position = end
    if broken is not None:
        ok[broken] = False
    return ok


def is_placeholder(when: datetime | None) -> bool:
    """Say whether a date is a session group's placeholder (1753 or 9999), not a real one."""
    return when is not None and (when.year <= 1753 or when.year >= 9999)


def session_guids(cell: str) -> list[str] | None:
    """Return a sessions cell's GUIDs, in order and once each, or None if a token is not one."""
    ids: list[str] = []
    for token in _GUID_SPLIT.split(cell.strip()):
        if not token:
            continue
        guid = parse_guid(token)
        if guid is None:
            return None
        if guid not in ids:
            ids.append(guid)
    return ids


def session_guids_column(
    cells: npt.NDArray[np.object_],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.object_]]:
    """Read a column of sessions cells as ``session_guids`` reads one, without Python per cell.

    Return which cells are GUIDs only (an empty cell is) and, for those, the GUIDs
    joined by ``;`` in order and once each; other cells get "".
    """
    # A line break separates like any white space; fullmatches wants none in a cell.
    flat = np.asarray(_REPLACE(cells, "\n", " "), dtype=object)
    guids_only = fullmatches(_GUID_CELL, flat)
    joined = np.full(len(cells), "", dtype=object)
    if guids_only.any():
        # In a cell of GUIDs and separators, each GUID the pattern finds is one token's.
        found = np.frompyfunc(_GUID_IN_CELL.findall, 1, 1)(_LOWER(flat[guids_only]))
        once = np.frompyfunc(dict.fromkeys, 1, 1)(found)
        joined[guids_only] = np.frompyfunc(";".join, 1, 1)(once)
    return guids_only, joined
