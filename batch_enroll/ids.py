"""Read the ids and names a sheet or LMS365 holds, the same way everywhere.

Pure functions, shared by the offline checks and by resolving against LMS365.
LMS365's dates are read by ``classifier.parse_lms_time``.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = [
    "course_key",
    "fold",
    "is_placeholder",
    "parse_guid",
    "session_guids",
]

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_BRACED_GUID = re.compile(r"\{?(" + _GUID + r")\}?")
# A whole number Excel (or a CSV written from it) shows as 101.0.
_WHOLE_FLOAT = re.compile(r"([+-]?[0-9]+)\.0+")
# How today's GUID-only sessions cells are split.
_GUID_SPLIT = re.compile(r"[;,|\s]+")


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


def fold(text: str) -> str:
    """Return the form codes and titles are compared in: no case, single inner spaces."""
    return " ".join(str(text).split()).casefold()


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
