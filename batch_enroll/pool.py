"""Send jobs concurrently: a bounded queue feeding a fixed set of workers, and stop them."""

from __future__ import annotations

import contextlib
import enum
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from batch_enroll.client import AuthFailure, LmsClient, current_row
from batch_enroll.model import FAILED, NOT_ATTEMPTED, UNENROLL, Job, RowResult
from batch_enroll.options import DEFAULT_GRACE

__all__ = [
    "PoolEnd",
    "PoolReport",
    "StopHandle",
    "map_concurrently",
    "send_jobs",
    "stop_on_signals",
    "watch_signals",
]

K = TypeVar("K")
V = TypeVar("V")


class PoolEnd(enum.Enum):
    """Why the pool stopped."""

    DONE = "done"
    AUTH = "auth"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    #: An unexpected exception (a bug) stopped the run.
    CRASHED = "crashed"


class StopHandle:
    """Stop a run from outside, as Ctrl+C does.

    ``stop()`` takes no new rows and lets requests in flight finish for a grace
    period; ``stop(now=True)`` cuts them off at once. Either may come before the
    run starts sending. Call it from the event loop that runs the sheet (from
    another thread, through ``anyio.from_thread.run_sync``). A handle serves one
    run: once stopped, it stays stopped.
    """

    def __init__(self) -> None:
        self.requested = False
        self.now = False
        self._scope: anyio.CancelScope | None = None
        self._grace = 0.0

    def stop(self, *, now: bool = False) -> None:
        """Take no new rows; with ``now``, cancel the requests in flight too."""
        self.requested = True
        self.now = self.now or now
        self._apply()

    def _apply(self) -> None:
        if self._scope is None or not self.requested:
            return
        if self.now:
            self._scope.cancel()
        else:
            deadline = anyio.current_time() + self._grace
            self._scope.deadline = min(self._scope.deadline, deadline)

    @contextlib.contextmanager
    def guarding(self, scope: anyio.CancelScope, *, grace: float) -> Iterator[None]:
        """Let a stop reach ``scope`` while inside this block; apply one asked for already."""
        self._scope, self._grace = scope, grace
        self._apply()
        try:
            yield
        finally:
            self._scope = None


async def watch_signals(stop: StopHandle, *, task_status: TaskStatus[None]) -> None:
    """Turn the first SIGINT/SIGTERM into a graceful stop and the second into an immediate one."""
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
            stop.stop(now=stop.requested)
    finally:
        receiver.__exit__(None, None, None)


@contextlib.asynccontextmanager
async def stop_on_signals(stop: StopHandle | None, *, enabled: bool) -> AsyncIterator[StopHandle]:
    """Yield ``stop`` (or a new handle) that, within this block, SIGINT and SIGTERM trigger.

    Only when ``enabled``: otherwise the handle stops the run only when told to.
    """
    stop = stop or StopHandle()
    async with anyio.create_task_group() as group:
        if enabled:
            await group.start(watch_signals, stop)
        try:
            yield stop
        finally:
            group.cancel_scope.cancel()


@dataclass
class PoolReport:
    """What the pool did: how it ended and which jobs were cut off in flight."""

    end: PoolEnd = PoolEnd.DONE
    auth_failure: AuthFailure | None = None
    #: Jobs whose request had started when the run was cancelled; they may have landed.
    cut_off: list[Job] = field(default_factory=list)
    #: Seconds from the first request to the last answer.
    sending_seconds: float = 0.0

    def stopped_because(self) -> str:
        """Say why sending stopped short, in the summary's words; "" if it did not."""
        if self.end is PoolEnd.AUTH and self.auth_failure is not None:
            return self.auth_failure.explain()
        if self.end is PoolEnd.INTERRUPTED:
            return "interrupted; rows not sent are not_attempted (finish with --resume)"
        return ""

    def cut_off_results(self) -> list[RowResult]:
        """Return a not_attempted outcome for each job a stop cut off in flight."""
        return [
            RowResult(
                job.index,
                NOT_ATTEMPTED,
                error_code="Interrupted",
                error_message=(
                    "stopped while the request was in flight; it may have reached LMS365,"
                    " so a re-run with --resume asks before sending it again"
                ),
            )
            for job in self.cut_off
        ]


async def send_jobs(
    jobs: Iterable[Job],
    *,
    client: LmsClient,
    concurrency: int,
    on_result: Callable[[RowResult], None],
    on_start: Callable[[Job], None] | None = None,
    stop: StopHandle | None = None,
    grace: float = DEFAULT_GRACE,
) -> PoolReport:
    """Send every job, calling ``on_result`` once per finished job, in completion order.

    ``on_start`` hears of each job just before its first request goes out, so a
    journal can tell a resumed run which rows may have reached LMS365.
    """
    stop = stop or StopHandle()
    report = PoolReport()
    in_flight: dict[int, Job] = {}
    # A queue no deeper than the pool: rows wait here, not in httpx's connection pool.
    send, receive = anyio.create_memory_object_stream[Job](max(1, concurrency))

    async def worker(group: TaskGroup, queue: MemoryObjectReceiveStream[Job]) -> None:
        async with queue as stream:
            async for job in stream:
                if stop.requested:
                    return
                in_flight[job.index] = job
                current_row.set(job.row)
                if on_start is not None:
                    on_start(job)
                try:
                    if job.action == UNENROLL:
                        result = await client.unenroll(job)
                    else:
                        result = await client.enroll(job)
                except AuthFailure as exc:
                    del in_flight[job.index]
                    outcome = exc.outcome
                    on_result(
                        RowResult(
                            job.index,
                            FAILED,
                            http_status=outcome.http_status,
                            attempts=1,
                            error_code=outcome.error_code,
                            error_message=outcome.error_message,
                        )
                    )
                    if report.auth_failure is None:
                        report.auth_failure = exc
                    group.cancel_scope.cancel()
                    return
                del in_flight[job.index]
                on_result(result)

    async def producer() -> None:
        async with send:
            for job in jobs:
                if stop.requested:
                    return
                await send.send(job)

    started = anyio.current_time()
    with anyio.CancelScope() as scope, stop.guarding(scope, grace=grace):
        async with anyio.create_task_group() as group:
            for _ in range(max(1, concurrency)):
                group.start_soon(worker, group, receive.clone())
            group.start_soon(producer)
            receive.close()
    report.sending_seconds = anyio.current_time() - started
    report.cut_off = sorted(in_flight.values(), key=lambda job: job.index)
    if report.auth_failure is not None:
        report.end = PoolEnd.AUTH
    elif stop.requested or scope.cancel_called:
        report.end = PoolEnd.INTERRUPTED
    return report


async def map_concurrently(
    keys: Sequence[K], read: Callable[[K], Awaitable[V]], *, concurrency: int
) -> dict[K, V]:
    """Call ``read`` once per key, ``concurrency`` at a time; return the answers by key.

    An AuthFailure stops every read and is raised as itself, not wrapped in the
    task group's ExceptionGroup, so callers can handle it like any other call's.
    """
    found: dict[K, V] = {}
    refused: list[AuthFailure] = []
    send, receive = anyio.create_memory_object_stream[K](max(1, concurrency))

    async def worker(group: TaskGroup, queue: MemoryObjectReceiveStream[K]) -> None:
        async with queue as stream:
            async for key in stream:
                try:
                    found[key] = await read(key)
                except AuthFailure as exc:
                    refused.append(exc)
                    group.cancel_scope.cancel()
                    return

    async with anyio.create_task_group() as group:
        for _ in range(min(max(1, concurrency), max(1, len(keys)))):
            group.start_soon(worker, group, receive.clone())
        async with send:
            for key in keys:
                await send.send(key)
        receive.close()
    if refused:
        raise refused[0]
    return found
