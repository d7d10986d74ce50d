"""The one door from the page to the library: every rule lives in batch_enroll itself.

The web package imports the library's names from here and nowhere else, so what the page
relies on is listed in one place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from batch_enroll.errors import ConfigError, JournalError, LoadError
from batch_enroll.journal import RunLock
from batch_enroll.loader import Sheet, load_sheet
from batch_enroll.model import OK, UNENROLL, WARNING, carried_name
from batch_enroll.options import RunOptions
from batch_enroll.pool import StopHandle
from batch_enroll.progress import Progress
from batch_enroll.reporter import Summary
from batch_enroll.runner import run_sheet_async, validate_sheet_async
from batch_enroll.validator import check_offline

__all__ = [
    "ConfigError",
    "JournalError",
    "LoadError",
    "Plan",
    "Progress",
    "RunLock",
    "RunOptions",
    "StopHandle",
    "Summary",
    "plan_for",
    "results_of",
    "run_sheet_async",
    "sheet_columns",
    "short_path",
    "validate_sheet_async",
]


def short_path(path: Path) -> Path:
    """Return ``path`` relative to the working folder when that is shorter.

    The library's one-line messages start with the path as given and are cut at a
    fixed length: a short path leaves the message whole for the page to show.
    """
    try:
        relative = Path(os.path.relpath(path))
    except ValueError:  # another drive
        return path
    return relative if len(str(relative)) < len(str(path)) else path


def results_of(summary: Summary) -> pd.DataFrame:
    """Return the results (or report) frame a run or check produced, cells as they are."""
    if summary.results is None:
        raise ValueError("the summary carries no results frame")
    return summary.results


@dataclass(frozen=True)
class Plan:
    """What pressing Enroll would send, and which sheet and header row were read."""

    rows: int
    courses: int
    unenrollments: int
    #: The sheet's own columns, by the names they carry in the results.
    sheet_columns: tuple[str, ...]
    sheet_name: str
    header_row: int
    skipped_rows: tuple[int, ...]
    sheet_names: tuple[str, ...]
    hidden_sheets: tuple[str, ...]
    other_sheets: tuple[str, ...]


def plan_for(
    input_path: str | Path,
    report: pd.DataFrame,
    *,
    sheet_name: str | None = None,
    max_input_mb: float | None = None,
) -> Plan:
    """Count what a run of this checked sheet would send, by the validator's own reading."""
    sendable = report["status"].isin((OK, WARNING)).to_numpy()
    sheet = _load(input_path, sheet_name, max_input_mb)
    checked = check_offline(sheet.frame)
    actions = checked["_action"].to_numpy(dtype=object)
    unenroll = int(sum(1 for a, s in zip(actions, sendable, strict=True) if s and a == UNENROLL))
    # The course the cell resolved to, where the report names it, else the cell itself.
    column = "lms_course_id" if "lms_course_id" in report.columns else "course_id"
    courses = report.loc[sendable, column].astype(str).nunique()
    return Plan(
        rows=int(sendable.sum()),
        courses=int(courses),
        unenrollments=unenroll,
        sheet_columns=tuple(carried_name(c) for c in sheet.extra_columns),
        sheet_name=sheet.sheet_name,
        header_row=sheet.header_row,
        skipped_rows=tuple(sheet.skipped_rows),
        sheet_names=tuple(sheet.sheet_names),
        hidden_sheets=tuple(sheet.hidden_sheets),
        other_sheets=tuple(sheet.other_sheets),
    )


def _load(path: str | Path, sheet_name: str | None, max_input_mb: float | None) -> Sheet:
    if max_input_mb is None:
        return load_sheet(path, sheet=sheet_name)
    return load_sheet(path, sheet=sheet_name, max_input_mb=max_input_mb)


def sheet_columns(
    input_path: str | Path, *, sheet_name: str | None = None, max_input_mb: float | None = None
) -> list[str]:
    """Return a sheet's own columns, by the names they carry in the results."""
    return [carried_name(c) for c in _load(input_path, sheet_name, max_input_mb).extra_columns]
