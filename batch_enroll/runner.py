"""Run a sheet end to end: load, validate, send, report.

The library's entry points; the command line is a thin layer over these.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
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

from batch_enroll.client import AuthFailure, LmsClient, RequestEvent
from batch_enroll.loader import Sheet, load_sheet
from batch_enroll.model import INVALID, NOT_ATTEMPTED, OK, RowResult
from batch_enroll.pool import PoolEnd, StopControl, send_jobs
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.reporter import (
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    Summary,
    exit_code_for,
    results_frame,
    summarise,
    write_csv,
    write_summary_json,
)
from batch_enroll.validator import (
    CourseInfo,
    check_offline,
    check_sessions,
    fetch_courses,
    jobs_from,
)

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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _limiter(options: RunOptions) -> RateLimiter:
    if options.rate is None:
        return RateLimiter(rate=AUTO_START_RATE, adaptive=True)
    return RateLimiter(rate=options.rate)


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
) -> dict[int, CourseInfo]:
    ids = checked.loc[checked["status"] == OK, "_course"].dropna().astype(int).unique().tolist()
    with anyio.CancelScope() as scope:
        stop.scope = scope
        try:
            return await fetch_courses(client, ids)
        finally:
            stop.scope = None
    return {}  # a stop cancelled the reads; the caller sees stop.requested


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


async def _send(checked: pd.DataFrame, options: RunOptions, limiter: RateLimiter) -> _Outcome:
    results: dict[int, RowResult] = {}
    async with _signals_stop(options) as stop, _client(options, limiter) as client:
        try:
            courses = await _courses_for(client, checked, stop)
        except AuthFailure as exc:
            return _Outcome(results, PoolEnd.AUTH, _auth_message(exc))
        if stop.requested:
            return _Outcome(results, PoolEnd.INTERRUPTED, "interrupted before sending")
        check_sessions(checked, courses, require_session=options.require_session)
        jobs = jobs_from(checked)
        with _progress(len(jobs), options.progress) as bar:

            def record(result: RowResult) -> None:
                results[result.index] = result
                bar.update(1)

            report = await send_jobs(
                jobs,
                client=client,
                concurrency=options.concurrency,
                on_result=record,
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
            stopped = "interrupted; rows not sent are not_attempted"
            return _Outcome(results, report.end, stopped, sending)
        return _Outcome(results, report.end, "", sending)


def _auth_message(exc: AuthFailure) -> str:
    if exc.outcome.http_status == 403:
        return "LMS365 answered 403: the API key is read-only; enrolling needs a Full Control key"
    return "LMS365 answered 401: the API key was refused; check LMS365_API_KEY"


def run_sheet(
    input_path: str | Path,
    *,
    out: str | Path,
    options: RunOptions,
    summary_json: str | Path | None = None,
) -> Summary:
    """Enroll every valid row of a sheet and write one result row per input row."""
    started_at, started = _now(), time.monotonic()
    sheet = load_sheet(input_path)
    checked = check_offline(sheet.frame)
    limiter = _limiter(options)
    try:
        outcome = anyio.run(_send, checked, options, limiter)
    except KeyboardInterrupt:
        outcome = _Outcome({}, PoolEnd.INTERRUPTED, "interrupted")
    return _report(
        sheet,
        checked,
        outcome,
        out=Path(out),
        summary_json=summary_json,
        limiter=limiter,
        started_at=started_at,
        started=started,
    )


def _report(
    sheet: Sheet,
    checked: pd.DataFrame,
    outcome: _Outcome,
    *,
    out: Path,
    summary_json: str | Path | None,
    limiter: RateLimiter,
    started_at: str,
    started: float,
) -> Summary:
    frame = results_frame(checked, extra_columns=sheet.extra_columns, results=outcome.results)
    write_csv(frame, out)
    elapsed = time.monotonic() - started
    counts = frame["status"].value_counts().to_dict()
    exit_code = exit_code_for({str(k): int(v) for k, v in counts.items()})
    if outcome.end is PoolEnd.AUTH:
        exit_code = EXIT_AUTH
    elif outcome.end is PoolEnd.INTERRUPTED:
        exit_code = EXIT_INTERRUPTED
    summary = summarise(
        frame,
        command="run",
        input_path=str(sheet.path),
        input_sha256=sheet.sha256,
        output=str(out),
        started_at=started_at,
        finished_at=_now(),
        elapsed=elapsed,
        exit_code=exit_code,
    )
    summary.requests = limiter.requests
    summary.throttled = limiter.throttled
    summary.rate_found = round(limiter.rate, 1) if limiter.adaptive else None
    summary.stopped_because = outcome.stopped_because
    summary.sending_seconds = round(outcome.sending_seconds, 3)
    if summary_json is not None:
        write_summary_json(summary, Path(summary_json))
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

        async def online() -> str:
            async with _signals_stop(options) as stop, _client(options, limiter) as client:
                try:
                    courses = await _courses_for(client, checked, stop)
                except AuthFailure as exc:
                    return _auth_message(exc)
                check_sessions(checked, courses, require_session=options.require_session)
                return ""

        stopped = anyio.run(online)
        if stopped:
            exit_override = EXIT_AUTH
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
