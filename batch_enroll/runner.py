"""Run a sheet end to end: load -> check -> resolve -> settle -> send -> report.

The library's entry points; the command line is a thin layer over these. The
async functions embed in any event loop (a web server, say); the sync ones wrap
them and, like the command line, stop gracefully on Ctrl+C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pandas as pd

from batch_enroll.client import LmsClient
from batch_enroll.crash import crash_reason, unchecked_results, unfinished_results
from batch_enroll.errors import AuthFailure, CallFailed
from batch_enroll.files import check_writable
from batch_enroll.journal import Journal, RunFiles, journal_verdicts, locked_journal
from batch_enroll.loader import DEFAULT_MAX_INPUT_MB, Sheet, load_sheet
from batch_enroll.lookup import resolve_users, settle_held
from batch_enroll.model import Job, RowResult
from batch_enroll.options import RunOptions
from batch_enroll.pool import PoolEnd, StopHandle, send_jobs, stop_on_signals
from batch_enroll.progress import Progress, ProgressFeed
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.reporter import (
    Ending,
    Source,
    Summary,
    now_iso,
    report_run,
    report_validation,
    write_csv,
)
from batch_enroll.resolve import Halted, check_online, resolution_changes, resolved_courses
from batch_enroll.transport import make_limiter
from batch_enroll.validator import check_offline, guard_unenroll, jobs_from, with_global_flags

__all__ = ["run_sheet", "run_sheet_async", "validate_sheet", "validate_sheet_async"]


@dataclass
class _Run:
    """What one run carries from settling to reporting."""

    checked: pd.DataFrame
    options: RunOptions
    journal: Journal
    progress: ProgressFeed
    limiter: RateLimiter = field(init=False)
    results: dict[int, RowResult] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = make_limiter(self.options.rate)
        self.results = self.journal.prior.final() if self.journal.prior is not None else {}


# -- the stages, in order ------------------------------------------------------------------------


def _load(
    input_path: str | Path, clock: tuple[str, float], *, sheet_name: str | None, max_input_mb: float
) -> tuple[Sheet, Source]:
    """Read the sheet; its report counts the time from ``clock`` (wall, monotonic)."""
    sheet = load_sheet(input_path, sheet=sheet_name, max_input_mb=max_input_mb)
    return sheet, Source(str(sheet.path), sheet.sha256, sheet.notes, sheet.extra_columns, *clock)


def _check(sheet: Sheet, options: RunOptions, *, results: Path) -> pd.DataFrame:
    """Apply the cell rules and the rules about the whole sheet; raise if it must not run."""
    flagged = with_global_flags(
        sheet.frame,
        ignore_max_attendees=options.ignore_max_attendees,
        ignore_enrollment_flow=options.ignore_enrollment_flow,
    )
    try:
        checked = check_offline(flagged)
    except Exception:
        # A bug in a rule: nothing was sent, and the results still say so row by row.
        with contextlib.suppress(Exception):  # the crash is what must be heard
            write_csv(unchecked_results(sheet.frame, extra_columns=sheet.extra_columns), results)
        raise
    guard_unenroll(checked, options.max_unenroll)
    return checked


async def _settle(run: _Run, client: LmsClient) -> list[Job]:
    """Journal the refused rows and settle those LMS365 already shows; return what to send."""
    # A resumed run must send each row to the course its cell named when the run started.
    resolved, prior = resolved_courses(run.checked), run.journal.prior
    if prior is not None and (changed := resolution_changes(prior.resolved, resolved)):
        raise Halted(PoolEnd.FAILED, changed)
    run.journal.resolved(resolved)
    try:
        if run.options.resolve_users:
            await resolve_users(client, run.checked)
        journal_verdicts(run.journal, run.checked)
        jobs = [job for job in jobs_from(run.checked) if job.index not in run.results]
        jobs, settled = await settle_held(
            client, jobs, journal=run.journal, skip_enrolled=run.options.skip_enrolled
        )
    except AuthFailure as exc:
        raise Halted(PoolEnd.AUTH, exc.explain()) from None
    except CallFailed as exc:
        reason = f"could not read what LMS365 already holds ({exc}); nothing was sent"
        raise Halted(PoolEnd.FAILED, reason) from None
    run.results.update(settled)
    return jobs


async def _send(run: _Run, client: LmsClient, jobs: list[Job], stop: StopHandle) -> Ending:
    """Send the jobs, journalling each outcome; mark the rows a stop cut off in flight."""
    row_numbers = run.checked["row"].tolist()  # the frame's index is its row position
    run.progress.begin(len(jobs))

    def record(result: RowResult) -> None:
        run.results[result.index] = result
        run.journal.finished(result, row=row_numbers[result.index])
        run.progress.finished(result.status)

    report = await send_jobs(
        jobs,
        client=client,
        concurrency=run.options.concurrency,
        on_result=record,
        on_start=run.journal.started,
        stop=stop,
        grace=run.options.grace,
    )
    run.results.update((result.index, result) for result in report.cut_off_results())
    if report.end is PoolEnd.DONE:
        run.journal.done()
    return Ending(report.end, report.stopped_because(), report.sending_seconds)


async def _online(
    checked: pd.DataFrame, options: RunOptions, stop: StopHandle, run: _Run | None = None
) -> Ending:
    """Resolve and check the sheet; for a ``run``, settle and send too. One client for all."""
    limiter = run.limiter if run is not None else make_limiter(options.rate)
    async with LmsClient(options, limiter=limiter) as client:
        try:
            await check_online(client, checked, options, stop)
            if run is None:
                return Ending(PoolEnd.DONE)
            if stop.requested:
                return Ending(PoolEnd.INTERRUPTED, "interrupted before sending")
            jobs = await _settle(run, client)
        except Halted as halt:
            return Ending(halt.end, halt.reason)
        return await _send(run, client, jobs, stop)


# -- the entry points ----------------------------------------------------------------------------


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
    sheet_name: str | None = None,
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Summary:
    """Enroll every valid row of a sheet and write one result row per input row.

    ``resume`` finishes a stopped run from its journal (``RESULTS.journal`` unless
    ``journal`` is given) without sending a row twice; ``on_progress`` hears how sending
    goes; ``stop``, or SIGINT and SIGTERM with ``handle_signals``, stops it as Ctrl+C would.
    """
    clock = now_iso(), time.monotonic()
    files = RunFiles.checked(out, journal=journal, summary_json=summary_json)
    sheet, source = _load(input_path, clock, sheet_name=sheet_name, max_input_mb=max_input_mb)
    checked = _check(sheet, options, results=files.results)
    with locked_journal(files, sheet, options, resume=resume) as opened:
        run = _Run(checked, options, opened, ProgressFeed(on_progress))
        async with stop_on_signals(stop, enabled=handle_signals) as stop:
            ending = Ending(PoolEnd.INTERRUPTED, "interrupted")
            try:
                ending = await _online(checked, options, stop, run)
            except Exception as exc:
                # A bug. What was done is still written below, and the journal lets
                # --resume finish the run; the exception goes on to the caller.
                ending = Ending(PoolEnd.CRASHED, crash_reason(exc))
                with contextlib.suppress(Exception):  # the crash is what must be heard
                    run.results.update(unfinished_results(jobs_from(checked), run.results))
                raise
            finally:
                # Whatever stopped the run, the journal and the results are written
                # whole: this is plain blocking code, and signals that arrive meanwhile
                # wait in the receiver instead of raising KeyboardInterrupt into it.
                opened.close()
                summary = report_run(
                    checked, source, files, results=run.results, ending=ending, limiter=run.limiter
                )
                run.progress.end()  # after the results are safe: it runs the caller's code
    return summary


def run_sheet(
    input_path: str | Path,
    *,
    out: str | Path,
    options: RunOptions,
    summary_json: str | Path | None = None,
    journal: str | Path | None = None,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    stop: StopHandle | None = None,
    sheet_name: str | None = None,
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Summary:
    """Run ``run_sheet_async`` in an event loop of its own; Ctrl+C and SIGTERM stop it."""
    return anyio.run(
        functools.partial(
            run_sheet_async,
            input_path,
            out=out,
            options=options,
            summary_json=summary_json,
            journal=journal,
            resume=resume,
            on_progress=on_progress,
            stop=stop,
            handle_signals=True,
            sheet_name=sheet_name,
            max_input_mb=max_input_mb,
        )
    )


async def validate_sheet_async(
    input_path: str | Path,
    *,
    report: str | Path | None,
    options: RunOptions | None,
    summary_json: str | Path | None = None,
    stop: StopHandle | None = None,
    handle_signals: bool = False,
    sheet_name: str | None = None,
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Summary:
    """Check a sheet without sending anything; ``options`` None means offline rules only.

    ``stop`` (or, with ``handle_signals``, Ctrl+C) cuts the course reads short.
    """
    clock = now_iso(), time.monotonic()
    check_writable(replaced=[("report", report), ("summary JSON", summary_json)])
    sheet, source = _load(input_path, clock, sheet_name=sheet_name, max_input_mb=max_input_mb)
    checked = check_offline(sheet.frame)
    ending = None
    if options is not None:
        async with stop_on_signals(stop, enabled=handle_signals) as stop:
            ending = await _online(checked, options, stop)
    return report_validation(
        checked, source, ending=ending, report=report, summary_json=summary_json
    )


def validate_sheet(
    input_path: str | Path,
    *,
    report: str | Path | None,
    options: RunOptions | None,
    summary_json: str | Path | None = None,
    stop: StopHandle | None = None,
    sheet_name: str | None = None,
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Summary:
    """Run ``validate_sheet_async`` in an event loop of its own; Ctrl+C stops its reads."""
    return anyio.run(
        functools.partial(
            validate_sheet_async,
            input_path,
            report=report,
            options=options,
            summary_json=summary_json,
            stop=stop,
            handle_signals=True,
            sheet_name=sheet_name,
            max_input_mb=max_input_mb,
        )
    )
