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
from batch_enroll.crash import innermost
from batch_enroll.errors import AuthFailure, CallFailed
from batch_enroll.files import check_writable
from batch_enroll.journal import (
    Journal,
    JournalState,
    RunLock,
    journal_path_for,
    journal_verdicts,
    open_journal,
)
from batch_enroll.loader import DEFAULT_MAX_INPUT_MB, Sheet, load_sheet
from batch_enroll.lookup import read_held, resolve_users, settle
from batch_enroll.model import EXIT_AUTH, EXIT_ROW_PROBLEMS, NOT_ATTEMPTED, Job, RowResult
from batch_enroll.options import RunOptions
from batch_enroll.pool import PoolEnd, StopHandle, send_jobs, stop_on_signals
from batch_enroll.progress import Progress, ProgressFeed
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.reporter import (
    Summary,
    now_iso,
    results_frame,
    run_summary,
    validate_summary,
    write_csv,
    write_summary_json,
)
from batch_enroll.resolve import Halted, check_online, resolution_changes, resolved_courses
from batch_enroll.transport import make_limiter
from batch_enroll.validator import check_offline, guard_unenroll, jobs_from, with_global_flags

__all__ = ["run_sheet", "run_sheet_async", "validate_sheet", "validate_sheet_async"]

_EXIT_FOR = {PoolEnd.AUTH: EXIT_AUTH, PoolEnd.FAILED: EXIT_ROW_PROBLEMS}


@dataclass(frozen=True)
class _Outcome:
    end: PoolEnd
    stopped_because: str = ""
    sending_seconds: float = 0.0


@dataclass
class _Run:
    """Everything one run carries from loading to reporting."""

    sheet: Sheet
    checked: pd.DataFrame
    options: RunOptions
    journal: Journal
    prior: JournalState | None
    progress: ProgressFeed
    out: Path
    summary_json: Path | None
    started_at: str
    started: float
    limiter: RateLimiter = field(init=False)
    results: dict[int, RowResult] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = make_limiter(self.options.rate)
        self.results = self.prior.final() if self.prior is not None else {}


# -- the stages, in order ------------------------------------------------------------------------


def _check(sheet: Sheet, options: RunOptions) -> pd.DataFrame:
    """Apply the cell rules and the rules about the whole sheet; raise if it must not run."""
    flagged = with_global_flags(
        sheet.frame,
        ignore_max_attendees=options.ignore_max_attendees,
        ignore_enrollment_flow=options.ignore_enrollment_flow,
    )
    checked = check_offline(flagged)
    guard_unenroll(checked, options.max_unenroll)
    return checked


async def _settle(run: _Run, client: LmsClient) -> list[Job]:
    """Journal the refused rows and settle those LMS365 already shows; return what to send.

    A resumed run first checks that every course cell still names the course it
    named when the run started.
    """
    options = run.options
    resolved = resolved_courses(run.checked)
    if run.prior is not None:
        changed = resolution_changes(run.prior.resolved, resolved)
        if changed:
            raise Halted(PoolEnd.FAILED, changed)
    run.journal.resolved(resolved)
    try:
        if options.resolve_users:
            await resolve_users(client, run.checked)
        journal_verdicts(run.journal, run.checked)
        jobs = [job for job in jobs_from(run.checked) if job.index not in run.results]
        if jobs and (run.prior is not None or options.skip_enrolled):
            # A resumed run may have sent rows it never journalled: look before resending.
            held = await read_held(client, [job.course_id for job in jobs])
            jobs, settled = settle(
                jobs,
                held,
                prior=run.prior,
                skip_enrolled=options.skip_enrolled,
                journal=run.journal,
            )
            run.results.update(settled)
    except AuthFailure as exc:
        raise Halted(PoolEnd.AUTH, exc.explain()) from None
    except CallFailed as exc:
        reason = f"could not read what LMS365 already holds ({exc}); nothing was sent"
        raise Halted(PoolEnd.FAILED, reason) from None
    return jobs


async def _send(run: _Run, client: LmsClient, jobs: list[Job], stop: StopHandle) -> _Outcome:
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
    sending = report.sending_seconds
    if report.end is PoolEnd.AUTH and report.auth_failure is not None:
        return _Outcome(report.end, report.auth_failure.explain(), sending)
    if report.end is PoolEnd.INTERRUPTED:
        stopped = "interrupted; rows not sent are not_attempted (finish with --resume)"
        return _Outcome(report.end, stopped, sending)
    run.journal.done()
    return _Outcome(report.end, "", sending)


def _report(run: _Run, outcome: _Outcome) -> Summary:
    """Write the results sheet (and the summary JSON) and return the summary."""
    frame = results_frame(run.checked, extra_columns=run.sheet.extra_columns, results=run.results)
    write_csv(frame, run.out)
    limiter = run.limiter
    summary = run_summary(
        frame,
        input_path=str(run.sheet.path),
        input_sha256=run.sheet.sha256,
        output=str(run.out),
        started_at=run.started_at,
        elapsed=time.monotonic() - run.started,
        ended=outcome.end.value,
        stopped_because=outcome.stopped_because,
        sending_seconds=outcome.sending_seconds,
        requests=limiter.requests,
        throttled=limiter.throttled,
        # The ceiling found, not the rate last probed above it.
        rate_found=round(limiter.found, 1) if limiter.adaptive else None,
        journal=str(run.journal.path),
    )
    summary.notes[:0] = run.sheet.notes
    if run.summary_json is not None:
        write_summary_json(summary, run.summary_json)
    return summary


async def _online(run: _Run, stop: StopHandle) -> _Outcome:
    """Resolve, check, settle and send, over one client's connections."""
    async with LmsClient(run.options, limiter=run.limiter) as client:
        try:
            await check_online(client, run.checked, run.options, stop)
            if stop.requested:
                return _Outcome(PoolEnd.INTERRUPTED, "interrupted before sending")
            jobs = await _settle(run, client)
        except Halted as halt:
            return _Outcome(halt.end, halt.reason)
        return await _send(run, client, jobs, stop)


INTERNAL_ERROR = "InternalError"


def _mark_unfinished(run: _Run) -> None:
    """Say on each row a crash left unfinished why it was not done (not journalled: resumable)."""
    message = (
        "the run stopped on an internal error before this row was finished; a re-run with"
        " --resume asks LMS365 before sending it again"
    )
    # Best effort on the way out: the crash itself is what the caller must hear about.
    with contextlib.suppress(Exception):
        for job in jobs_from(run.checked):
            if job.index not in run.results:
                run.results[job.index] = RowResult(
                    job.index, NOT_ATTEMPTED, error_code=INTERNAL_ERROR, error_message=message
                )


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

    Every finished row goes to a journal (``RESULTS.journal`` unless ``journal``
    is given); ``resume`` finishes a stopped run from it without sending any row
    twice. ``on_progress`` hears how sending goes (at most about ten times a
    second, and always once at the end); ``stop`` stops the run as Ctrl+C would;
    ``handle_signals`` lets SIGINT and SIGTERM do so (in the main thread only).
    """
    clock = now_iso(), time.monotonic()
    out = Path(out)
    journal_path = Path(journal) if journal is not None else journal_path_for(out)
    summary_path = Path(summary_json) if summary_json is not None else None
    # Before anything is read or sent: a results folder that cannot take the results
    # must not be found out after every row was enrolled.
    check_writable(
        replaced=[("results", out), ("summary JSON", summary_path)],
        appended=[("journal", journal_path)],
    )
    sheet = load_sheet(input_path, sheet=sheet_name, max_input_mb=max_input_mb)
    checked = _check(sheet, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    stop = stop or StopHandle()
    with RunLock(out):
        opened, prior = open_journal(
            journal_path,
            input_path=sheet.path,
            input_sha256=sheet.sha256,
            fingerprint=options.fingerprint(),
            resume=resume,
        )
        progress = ProgressFeed(on_progress)
        run = _Run(sheet, checked, options, opened, prior, progress, out, summary_path, *clock)
        try:
            async with stop_on_signals(stop, enabled=handle_signals):
                outcome = _Outcome(PoolEnd.INTERRUPTED, "interrupted")
                try:
                    outcome = await _online(run, stop)
                except Exception as exc:
                    # A bug. What was done is still written below, and the journal lets
                    # --resume finish the run; the exception goes on to the caller.
                    crash = innermost(exc)
                    reason = f"internal error ({type(crash).__name__}); finish with --resume"
                    outcome = _Outcome(PoolEnd.CRASHED, reason)
                    _mark_unfinished(run)
                    raise
                finally:
                    # Whatever stopped the run, the journal and the results are written
                    # whole: this is plain blocking code, and signals that arrive meanwhile
                    # wait in the receiver instead of raising KeyboardInterrupt into it.
                    run.journal.close()
                    summary = _report(run, outcome)
                    run.progress.end()  # after the results are safe: it runs the caller's code
        finally:
            opened.close()
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
    started_at, started = now_iso(), time.monotonic()
    report_path = Path(report) if report is not None else None
    summary_path = Path(summary_json) if summary_json is not None else None
    check_writable(replaced=[("report", report_path), ("summary JSON", summary_path)])
    sheet = load_sheet(input_path, sheet=sheet_name, max_input_mb=max_input_mb)
    checked = check_offline(sheet.frame)
    halted: _Outcome | None = None
    if options is not None:
        stop = stop or StopHandle()
        async with (
            stop_on_signals(stop, enabled=handle_signals),
            LmsClient(options, limiter=make_limiter(options.rate)) as client,
        ):
            try:
                await check_online(client, checked, options, stop)
            except Halted as halt:
                halted = _Outcome(halt.end, halt.reason)
    frame = results_frame(checked, extra_columns=sheet.extra_columns)
    if report_path is not None:
        write_csv(frame, report_path)
    summary = validate_summary(
        frame,
        input_path=str(sheet.path),
        input_sha256=sheet.sha256,
        output=str(report) if report is not None else "(no report written)",
        started_at=started_at,
        elapsed=time.monotonic() - started,
        online=options is not None,
        stopped_because=halted.stopped_because if halted else "",
        exit_code=_EXIT_FOR[halted.end] if halted else None,
    )
    summary.notes[:0] = sheet.notes
    if summary_path is not None:
        write_summary_json(summary, summary_path)
    return summary


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
    call = functools.partial(
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
    return anyio.run(call)
