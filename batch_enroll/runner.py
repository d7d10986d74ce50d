"""Run a sheet end to end: load, validate, send, report.

The library's entry points; the command line is a thin layer over these.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pandas as pd
from anyio.abc import TaskStatus
from tqdm import tqdm

from batch_enroll import __version__
from batch_enroll.client import AuthFailure, CallFailed, LmsClient, RequestEvent
from batch_enroll.journal import (
    Journal,
    JournalError,
    JournalState,
    RunLock,
    journal_path_for,
    read_journal,
)
from batch_enroll.loader import Sheet, load_sheet
from batch_enroll.lookup import read_held, resolve_users, settle
from batch_enroll.model import (
    DUPLICATE,
    INVALID,
    NOT_ATTEMPTED,
    OK,
    UNENROLL,
    WARNING,
    RowResult,
)
from batch_enroll.pool import PoolEnd, StopControl, send_jobs
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.reporter import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_ROW_PROBLEMS,
    Summary,
    exit_code_for,
    results_frame,
    summarise,
    write_csv,
    write_summary_json,
)
from batch_enroll.resolve import (
    CourseInfo,
    describe,
    resolution_changes,
    resolve_frame,
    resolved_courses,
)
from batch_enroll.validator import check_offline, check_sessions, jobs_from

__all__ = [
    "DEFAULT_BASE_URL",
    "REGIONS",
    "ConfigError",
    "RunOptions",
    "resolve_base_url",
    "run_sheet",
    "validate_sheet",
]

DEFAULT_BASE_URL = "https://api.365.systems"
REGIONS = {
    "us": "https://us-api.365.systems",
    "ne": "https://ne-api.365.systems",
    "je": "https://je-api.365.systems",
    "au": "https://au-api.365.systems",
    "ca": "https://ca-api.365.systems",
    "uk": "https://uk-api.365.systems",
    "de": "https://de-api.365.systems",
    "ch": "https://ch-api.365.systems",
    "gcc": "https://va-api.usgcc365.systems",
}
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Rate a run starts from in auto mode, before it has seen the tenant's throttle.
AUTO_START_RATE = 10.0


class ConfigError(Exception):
    """A bad invocation: nothing was sent."""


def resolve_base_url(base_url: str | None, region: str | None) -> str:
    """Pick the API host; refuse plain HTTP anywhere but this machine."""
    if base_url and region:
        raise ConfigError("give --base-url or --region, not both")
    if region:
        try:
            return REGIONS[region.lower()]
        except KeyError:
            raise ConfigError(
                f"unknown region {region!r} (choose from {', '.join(REGIONS)})"
            ) from None
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the base URL {url!r} is not an http(s) URL")
    host = parts.hostname
    if parts.scheme == "http" and host not in _LOCAL_HOSTS and not host.startswith("127."):
        raise ConfigError(
            f"refusing plain http:// to {host}: the API key would travel unencrypted;"
            " use https:// (http:// is allowed only to localhost)"
        )
    return url


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to reach LMS365 and how hard to push."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(repr=False)
    concurrency: int = 16
    #: Requests per second, or None to find the tenant's ceiling (auto).
    rate: float | None = None
    max_retries: int = 5
    timeout: float = 30.0
    require_session: bool = False
    progress: bool = False
    verify: Any = True
    grace: float = 10.0
    transport: httpx.AsyncBaseTransport | None = None
    on_event: Callable[[RequestEvent], None] | None = None
    handle_signals: bool = True

    skip_enrolled: bool = False
    resolve_users: bool = False
    ignore_max_attendees: bool = False
    ignore_enrollment_flow: bool = False
    #: Most rows a run may unenroll: a count ("25") or a share of the sheet's rows ("10%").
    max_unenroll: str = "10%"

    def fingerprint(self) -> dict[str, Any]:
        """Return the options that change what is sent; a resume must keep them."""
        return {
            "base_url": self.base_url,
            "require_session": self.require_session,
            "resolve_users": self.resolve_users,
            "ignore_max_attendees": self.ignore_max_attendees,
            "ignore_enrollment_flow": self.ignore_enrollment_flow,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _limiter(options: RunOptions) -> RateLimiter:
    if options.rate is None:
        return RateLimiter(rate=AUTO_START_RATE, adaptive=True)
    # A fixed rate is a ceiling, not a promise: pinned at R above a stricter
    # throttle, every request would meet a 429 and a Retry-After pause, and a run
    # would crawl at about one row a second. So it backs off and climbs back to R.
    return RateLimiter(rate=options.rate, adaptive=True, max_rate=options.rate)


def _client(options: RunOptions, limiter: RateLimiter) -> LmsClient:
    return LmsClient(
        base_url=options.base_url,
        api_key=options.api_key,
        limiter=limiter,
        concurrency=options.concurrency,
        timeout=options.timeout,
        max_retries=options.max_retries,
        transport=options.transport,
        verify=options.verify,
        on_event=options.on_event,
    )


async def _watch_signals(stop: StopControl, grace: float, *, task_status: TaskStatus[None]) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        signals = receiver.__enter__()
    except (RuntimeError, ValueError, NotImplementedError):
        # Not the main thread (a library caller's worker): the caller owns signals.
        task_status.started()
        await anyio.sleep_forever()
        return
    try:
        task_status.started()
        async for _ in signals:
            stop.request(grace=grace)
    finally:
        receiver.__exit__(None, None, None)


@contextlib.asynccontextmanager
async def _signals_stop(options: RunOptions) -> AsyncIterator[StopControl]:
    stop = StopControl()
    async with anyio.create_task_group() as group:
        if options.handle_signals:
            await group.start(_watch_signals, stop, options.grace)
        try:
            yield stop
        finally:
            group.cancel_scope.cancel()


async def _courses_for(
    client: LmsClient, checked: pd.DataFrame, stop: StopControl
) -> dict[str, CourseInfo]:
    """Resolve the sheet's courses and sessions to GUIDs, reading each course once."""
    with anyio.CancelScope() as scope:
        stop.scope = scope
        try:
            return await resolve_frame(client, checked)
        finally:
            stop.scope = None
    return {}  # a stop cancelled the reads; the caller sees stop.requested


def _lookup_failed(exc: CallFailed, base_url: str) -> str:
    """Say why nothing can be sent when the course list could not be read."""
    if exc.outcome.http_status is None:
        return f"could not reach LMS365 at {base_url} ({exc}); nothing was sent"
    return (
        f"could not look courses up by code or title (HTTP {exc.outcome.http_status}:"
        f" {exc}); nothing was sent"
    )


@dataclass
class _Outcome:
    results: dict[int, RowResult]
    end: PoolEnd
    stopped_because: str = ""
    sending_seconds: float = 0.0


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[tqdm[Any]]:
    bar = tqdm(
        total=total,
        disable=not enabled,
        file=sys.stderr,
        unit="row",
        dynamic_ncols=True,
        leave=False,
    )
    try:
        yield bar
    finally:
        bar.close()


@dataclass
class _Run:
    """Everything one run carries from loading to reporting."""

    sheet: Sheet
    checked: pd.DataFrame
    options: RunOptions
    limiter: RateLimiter
    journal: Journal
    prior: JournalState | None
    out: Path
    summary_json: Path | None
    started_at: str
    started: float


def _journal_verdicts(run: _Run) -> None:
    """Journal the rows the validator stopped, so input + journal rebuild the results."""
    checked = run.checked
    stopped = checked[checked["status"].isin((INVALID, DUPLICATE))]
    for index, row, status, code, message in zip(
        stopped.index,
        stopped["row"],
        stopped["status"],
        stopped["error_code"],
        stopped["error_message"],
        strict=True,
    ):
        result = RowResult(
            int(index), str(status), error_code=str(code), error_message=str(message)
        )
        run.journal.finished(result, row=int(row))


async def _send(run: _Run, stop: StopControl) -> _Outcome:
    options, checked = run.options, run.checked
    results: dict[int, RowResult] = run.prior.final() if run.prior is not None else {}
    async with _client(options, run.limiter) as client:
        try:
            courses = await _courses_for(client, checked, stop)
        except AuthFailure as exc:
            return _Outcome(results, PoolEnd.AUTH, _auth_message(exc))
        except CallFailed as exc:
            return _Outcome(results, PoolEnd.FAILED, _lookup_failed(exc, options.base_url))
        if stop.requested:
            return _Outcome(results, PoolEnd.INTERRUPTED, "interrupted before sending")
        unreachable = _unreachable(courses, options.base_url)
        if unreachable:
            # Every row would only fail its retries one by one; say so once instead.
            return _Outcome(results, PoolEnd.FAILED, unreachable)
        check_sessions(checked, courses, require_session=options.require_session)
        describe(checked, courses)
        resolved = resolved_courses(checked)
        if run.prior is not None:
            changed = resolution_changes(run.prior.resolved, resolved)
            if changed:
                return _Outcome(results, PoolEnd.FAILED, changed)
        run.journal.resolved(resolved)
        try:
            if options.resolve_users:
                await resolve_users(client, checked)
            _journal_verdicts(run)
            jobs = [job for job in jobs_from(checked) if job.index not in results]
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
                results.update(settled)
        except AuthFailure as exc:
            return _Outcome(results, PoolEnd.AUTH, _auth_message(exc))
        except CallFailed as exc:
            reason = f"could not read what LMS365 already holds ({exc}); nothing was sent"
            return _Outcome(results, PoolEnd.FAILED, reason)
        row_numbers = checked["row"].tolist()  # the frame's index is its row position
        with _progress(len(jobs), options.progress) as bar:

            def record(result: RowResult) -> None:
                results[result.index] = result
                run.journal.finished(result, row=row_numbers[result.index])
                bar.update(1)

            report = await send_jobs(
                jobs,
                client=client,
                concurrency=options.concurrency,
                on_result=record,
                on_start=run.journal.started,
                stop=stop,
            )
        sending = report.sending_seconds
        for job in report.cut_off:
            results[job.index] = RowResult(
                job.index,
                NOT_ATTEMPTED,
                error_code="Interrupted",
                error_message=(
                    "stopped while the request was in flight; it may have reached LMS365,"
                    " so a re-run with --resume asks before sending it again"
                ),
            )
        if report.end is PoolEnd.AUTH and report.auth_failure is not None:
            return _Outcome(results, report.end, _auth_message(report.auth_failure), sending)
        if report.end is PoolEnd.INTERRUPTED:
            stopped = "interrupted; rows not sent are not_attempted (finish with --resume)"
            return _Outcome(results, report.end, stopped, sending)
        run.journal.done()
        return _Outcome(results, report.end, "", sending)


async def _run_async(run: _Run) -> Summary:
    async with _signals_stop(run.options) as stop:
        outcome = _Outcome({}, PoolEnd.INTERRUPTED, "interrupted")
        try:
            outcome = await _send(run, stop)
        finally:
            # Whatever stopped the run, the journal and the results are written whole:
            # this is plain blocking code, and signals that arrive meanwhile wait in
            # the receiver instead of raising KeyboardInterrupt into it.
            run.journal.close()
            summary = _report(run, outcome)
    return summary


def _unreachable(courses: Mapping[str, CourseInfo], base_url: str) -> str:
    """Say why nothing can be sent when no course read got any answer at all."""
    if not courses or not all(info.unreachable for info in courses.values()):
        return ""
    reason = next(iter(courses.values())).error
    return f"could not reach LMS365 at {base_url} ({reason}); nothing was sent"


def _auth_message(exc: AuthFailure) -> str:
    if exc.outcome.http_status == 403:
        return "LMS365 answered 403: the API key is read-only; enrolling needs a Full Control key"
    return "LMS365 answered 401: the API key was refused; check LMS365_API_KEY"


def _open_journal(
    path: Path, *, sheet: Sheet, options: RunOptions, resume: bool
) -> tuple[Journal, JournalState | None]:
    fingerprint = options.fingerprint()
    if resume:
        if not path.exists():
            raise JournalError(f"{path}: no journal to resume; run without --resume")
        prior = read_journal(path)
        if prior.header.get("input_sha256") != sheet.sha256:
            raise JournalError(
                f"{path} was written for a different input: {sheet.path} has changed since"
                " (its content hash differs); run without --resume and a new --out"
            )
        before = prior.header.get("options", {})
        changed = sorted(
            k for k in set(before) | set(fingerprint) if before.get(k) != fingerprint.get(k)
        )
        if changed:
            raise JournalError(
                f"{path} was written with other options that change what is sent"
                f" ({', '.join(changed)}); resume with the same options"
            )
        return Journal(path, header=None, append=True), prior
    if path.exists():
        try:
            state = read_journal(path)
        except JournalError:
            state = None
        # A run that stopped before sending anything (a refused key, say) left
        # nothing to finish: starting afresh cannot send a row twice.
        sent = state is not None and bool(state.started or state.final())
        if state is None or (not state.finished and sent):
            raise JournalError(
                f"{path}: an earlier run did not finish; add --resume to finish it"
                " (nothing is sent twice), or delete the journal to start over"
            )
    header = {
        "input": str(sheet.path),
        "input_sha256": sheet.sha256,
        "options": fingerprint,
        "created": time.time(),
        "tool_version": __version__,
    }
    return Journal(path, header=header, append=False), None


def _with_global_flags(frame: pd.DataFrame, options: RunOptions) -> pd.DataFrame:
    """Apply --ignore-max-attendees / --ignore-enrollment-flow to rows that do not say."""
    for name, on in (
        ("ignore_max_attendees", options.ignore_max_attendees),
        ("ignore_enrollment_flow", options.ignore_enrollment_flow),
    ):
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


def _guard_unenroll(checked: pd.DataFrame, spec: str) -> None:
    """Refuse the whole run when the sheet would unenroll more than allowed."""
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


def run_sheet(
    input_path: str | Path,
    *,
    out: str | Path,
    options: RunOptions,
    summary_json: str | Path | None = None,
    journal: str | Path | None = None,
    resume: bool = False,
) -> Summary:
    """Enroll every valid row of a sheet and write one result row per input row.

    Every finished row goes to a journal (``RESULTS.journal`` unless ``journal``
    is given); ``resume`` finishes a stopped run from it without sending any row twice.
    """
    started_at, started = _now(), time.monotonic()
    out = Path(out)
    journal_path = Path(journal) if journal is not None else journal_path_for(out)
    sheet = load_sheet(input_path)
    checked = check_offline(_with_global_flags(sheet.frame, options))
    _guard_unenroll(checked, options.max_unenroll)
    out.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        opened, prior = _open_journal(journal_path, sheet=sheet, options=options, resume=resume)
        run = _Run(
            sheet=sheet,
            checked=checked,
            options=options,
            limiter=_limiter(options),
            journal=opened,
            prior=prior,
            out=out,
            summary_json=Path(summary_json) if summary_json is not None else None,
            started_at=started_at,
            started=started,
        )
        try:
            return anyio.run(_run_async, run)
        finally:
            opened.close()


def _report(run: _Run, outcome: _Outcome) -> Summary:
    sheet, limiter = run.sheet, run.limiter
    frame = results_frame(run.checked, extra_columns=sheet.extra_columns, results=outcome.results)
    write_csv(frame, run.out)
    elapsed = time.monotonic() - run.started
    counts = frame["status"].value_counts().to_dict()
    exit_code = exit_code_for({str(k): int(v) for k, v in counts.items()})
    if outcome.end is PoolEnd.AUTH:
        exit_code = EXIT_AUTH
    elif outcome.end is PoolEnd.INTERRUPTED:
        exit_code = EXIT_INTERRUPTED
    elif outcome.end is PoolEnd.FAILED:
        # Stopped before sending (a refused resume, say): never a clean exit.
        exit_code = max(exit_code, EXIT_ROW_PROBLEMS)
    summary = summarise(
        frame,
        command="run",
        input_path=str(sheet.path),
        input_sha256=sheet.sha256,
        output=str(run.out),
        started_at=run.started_at,
        finished_at=_now(),
        elapsed=elapsed,
        exit_code=exit_code,
    )
    summary.requests = limiter.requests
    summary.throttled = limiter.throttled
    # The ceiling found, not the rate last probed above it.
    summary.rate_found = round(limiter.found, 1) if limiter.adaptive else None
    summary.stopped_because = outcome.stopped_because
    summary.sending_seconds = round(outcome.sending_seconds, 3)
    summary.journal = str(run.journal.path)
    if run.summary_json is not None:
        write_summary_json(summary, run.summary_json)
    return summary


def validate_sheet(
    input_path: str | Path,
    *,
    report: str | Path | None,
    options: RunOptions | None,
    summary_json: str | Path | None = None,
) -> Summary:
    """Check a sheet without sending anything; ``options`` None means offline rules only."""
    started_at, started = _now(), time.monotonic()
    sheet = load_sheet(input_path)
    checked = check_offline(sheet.frame)
    stopped = ""
    exit_override: int | None = None
    if options is not None:
        limiter = _limiter(options)

        async def online() -> tuple[str, int | None]:
            async with _signals_stop(options) as stop, _client(options, limiter) as client:
                try:
                    courses = await _courses_for(client, checked, stop)
                except AuthFailure as exc:
                    return _auth_message(exc), EXIT_AUTH
                except CallFailed as exc:
                    return _lookup_failed(exc, options.base_url), EXIT_ROW_PROBLEMS
                unreachable = _unreachable(courses, options.base_url)
                if unreachable:
                    return unreachable, EXIT_ROW_PROBLEMS
                check_sessions(checked, courses, require_session=options.require_session)
                describe(checked, courses)
                return "", None

        stopped, exit_override = anyio.run(online)
    frame = results_frame(checked, extra_columns=sheet.extra_columns)
    if report is not None:
        write_csv(frame, Path(report))
    counts = frame["status"].value_counts().to_dict()
    problems = sum(int(counts.get(s, 0)) for s in (INVALID,))
    exit_code = exit_override if exit_override is not None else (1 if problems else 0)
    summary = summarise(
        frame,
        command="validate",
        input_path=str(sheet.path),
        input_sha256=sheet.sha256,
        output=str(report) if report is not None else "(no report written)",
        started_at=started_at,
        finished_at=_now(),
        elapsed=time.monotonic() - started,
        exit_code=exit_code,
    )
    summary.stopped_because = stopped
    if options is None:
        summary.notes.append(
            "Offline check only: course and session rules need --base-url and --api-key."
        )
    if summary_json is not None:
        write_summary_json(summary, Path(summary_json))
    return summary
