"""The one door from the page to the library: every rule lives in batch_enroll itself.

The page needs a run it can watch and stop while it goes, and a check whose result
rows it can show. The library is gaining asynchronous entry points for exactly that
(``run_sheet_async``, ``validate_sheet_async``, ``Progress``, ``StopHandle``); until
they are exported, the stand-ins below compose the same steps from the runner, so the
web package imports these names from here and nowhere else.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from batch_enroll import runner
from batch_enroll.client import AuthFailure
from batch_enroll.journal import JournalError, RunLock, journal_path_for
from batch_enroll.loader import LoadError, load_sheet
from batch_enroll.model import OK, UNENROLL, WARNING, RowResult
from batch_enroll.pool import PoolEnd, StopControl
from batch_enroll.reporter import Summary, results_frame, summarise, write_csv
from batch_enroll.runner import ConfigError, RunOptions, resolve_base_url
from batch_enroll.validator import check_offline, check_sessions

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
    "resolve_base_url",
    "run_sheet_async",
    "validate_sheet_async",
]


@dataclass(frozen=True)
class Progress:
    """How far a run is: rows with an outcome, rows in all, counts per status, rows/s."""

    done: int
    total: int
    counts: dict[str, int]
    rate: float


class StopHandle:
    """Ask a running run to stop: gracefully, or ``now`` without waiting for answers."""

    def __init__(self) -> None:
        self.control = StopControl()

    def stop(self, *, now: bool = False) -> None:
        """Stop taking rows; with ``now``, also cancel the requests in flight."""
        if now:
            self.control.cancel()
        else:
            self.control.request(grace=10.0)


@dataclass
class _Counting:
    """Journal proxy that reports each finished row as progress."""

    inner: Any
    total: int
    on_progress: Callable[[Progress], None] | None
    rows_done: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    began: float = field(default_factory=time.monotonic)

    def finished(self, result: RowResult, *, row: int) -> None:
        self.inner.finished(result, row=row)
        self.rows_done += 1
        self.counts[result.status] += 1
        self.report()

    def report(self) -> None:
        if self.on_progress is None:
            return
        elapsed = time.monotonic() - self.began
        rate = self.rows_done / elapsed if elapsed > 0 else 0.0
        self.on_progress(
            Progress(min(self.rows_done, self.total), self.total, dict(self.counts), round(rate, 1))
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def run_sheet_async(
    input_path: str | Path,
    *,
    out: str | Path,
    options: RunOptions,
    summary_json: str | Path | None = None,
    journal: str | Path | None = None,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    stop: StopHandle | None = None,
    handle_signals: bool = False,
) -> Summary:
    """Enroll a sheet's valid rows as ``run_sheet`` does, reporting progress; honour ``stop``."""
    del handle_signals  # the stand-in never listens for signals: the server owns them
    started_at, started = runner._now(), time.monotonic()
    out = Path(out)
    journal_path = Path(journal) if journal is not None else journal_path_for(out)
    sheet = load_sheet(input_path)
    checked = check_offline(runner._with_global_flags(sheet.frame, options))
    runner._guard_unenroll(checked, options.max_unenroll)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = stop or StopHandle()
    with RunLock(out):
        opened, prior = runner._open_journal(
            journal_path, sheet=sheet, options=options, resume=resume
        )
        counting = _Counting(opened, len(checked), on_progress)
        if prior is not None:
            for result in prior.final().values():
                counting.rows_done += 1
                counting.counts[result.status] += 1
        counting.report()
        run = runner._Run(
            sheet=sheet,
            checked=checked,
            options=options,
            limiter=runner._limiter(options),
            journal=counting,  # type: ignore[arg-type]
            prior=prior,
            out=out,
            summary_json=Path(summary_json) if summary_json is not None else None,
            started_at=started_at,
            started=started,
        )
        outcome = runner._Outcome({}, PoolEnd.INTERRUPTED, "interrupted")
        try:
            outcome = await runner._send(run, handle.control)
        finally:
            opened.close()
            summary = runner._report(run, outcome)
        counting.rows_done = counting.total
        counting.counts = Counter({str(k): int(v) for k, v in summary.counts.items() if v})
        counting.report()
        frame = results_frame(
            run.checked, extra_columns=sheet.extra_columns, results=outcome.results
        )
        _attach(summary, frame)
        return summary


def _attach(summary: Summary, frame: pd.DataFrame) -> None:
    summary.results = frame  # type: ignore[attr-defined]


def results_of(summary: Summary) -> pd.DataFrame:
    """Return the results (or report) frame a run or check produced."""
    frame: pd.DataFrame = summary.results  # type: ignore[attr-defined]
    return frame


async def validate_sheet_async(
    input_path: str | Path,
    *,
    report: str | Path | None,
    options: RunOptions | None,
    summary_json: str | Path | None = None,
    stop: StopHandle | None = None,
) -> Summary:
    """Check a sheet as ``validate_sheet`` does, keeping the report frame on the summary."""
    del summary_json
    started_at, started = runner._now(), time.monotonic()
    sheet = load_sheet(input_path)
    checked = check_offline(sheet.frame)
    stopped = ""
    if options is not None:
        limiter = runner._limiter(options)
        async with runner._client(options, limiter) as client:
            try:
                courses = await runner._courses_for(client, checked, (stop or StopHandle()).control)
            except AuthFailure as exc:
                stopped = runner._auth_message(exc)
                courses = {}
            unreachable = runner._unreachable(courses, options.base_url)
            if unreachable:
                stopped = unreachable
            elif not stopped:
                check_sessions(checked, courses, require_session=options.require_session)
    frame = results_frame(checked, extra_columns=sheet.extra_columns)
    if report is not None:
        write_csv(frame, Path(report))
    problems = int((frame["status"] == "invalid").sum())
    summary = summarise(
        frame,
        command="validate",
        input_path=str(sheet.path),
        input_sha256=sheet.sha256,
        output=str(report) if report is not None else "(no report written)",
        started_at=started_at,
        finished_at=runner._now(),
        elapsed=time.monotonic() - started,
        exit_code=1 if problems or stopped else 0,
    )
    summary.stopped_because = stopped
    _attach(summary, frame)
    return summary


@dataclass(frozen=True)
class Plan:
    """What pressing Enroll would send: rows, distinct courses, unenrollments."""

    rows: int
    courses: int
    unenrollments: int


def plan_for(input_path: str | Path, report: pd.DataFrame) -> Plan:
    """Count what a run of this checked sheet would send, by the validator's own reading."""
    sendable = report["status"].isin((OK, WARNING)).to_numpy()
    checked = check_offline(load_sheet(input_path).frame)
    actions = checked["_action"].to_numpy(dtype=object)
    unenroll = int(sum(1 for a, s in zip(actions, sendable, strict=True) if s and a == UNENROLL))
    # The course the cell resolved to, where the report names it, else the cell itself.
    column = "lms_course_id" if "lms_course_id" in report.columns else "course_id"
    courses = report.loc[sendable, column].astype(str).nunique()
    return Plan(rows=int(sendable.sum()), courses=int(courses), unenrollments=unenroll)
