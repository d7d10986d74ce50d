"""The one door from the page to the library: every rule lives in batch_enroll itself.

The web package imports the library's names from here and nowhere else, so what the page
relies on is listed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from batch_enroll.errors import ConfigError, JournalError, LoadError
from batch_enroll.journal import RunLock
from batch_enroll.loader import load_sheet
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
    "validate_sheet_async",
]


def results_of(summary: Summary) -> pd.DataFrame:
    """Return the results (or report) frame a run or check produced, cells as they are."""
    if summary.results is None:
        raise ValueError("the summary carries no results frame")
    return summary.results


@dataclass(frozen=True)
class Plan:
    """What pressing Enroll would send: rows, distinct courses, unenrollments."""

    rows: int
    courses: int
    unenrollments: int
    #: The sheet's own columns, by the names they carry in the results.
    sheet_columns: tuple[str, ...]


def plan_for(input_path: str | Path, report: pd.DataFrame) -> Plan:
    """Count what a run of this checked sheet would send, by the validator's own reading."""
    sendable = report["status"].isin((OK, WARNING)).to_numpy()
    sheet = load_sheet(input_path)
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
    )


def sheet_columns(input_path: str | Path) -> list[str]:
    """Return a sheet's own columns, by the names they carry in the results."""
    return [carried_name(c) for c in load_sheet(input_path).extra_columns]
