"""The library as an async caller embeds it: run a sheet, watch its progress, stop it."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import httpx
import pytest

from batch_enroll import Progress, RunOptions, StopHandle, run_sheet_async, validate_sheet_async
from batch_enroll.simulator import SimulatorServer, create_app
from tests.conftest import FULL_KEY
from tests.helpers import COURSES, big_catalog, read_results, write_sheet

pytestmark = pytest.mark.anyio


def options(server: SimulatorServer, **settings: object) -> RunOptions:
    return RunOptions(base_url=server.base_url, api_key=FULL_KEY, rate=1000.0, **settings)  # type: ignore[arg-type]


async def enroll_posts(server: SimulatorServer) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{server.base_url}/_sim/stats")).json()
    return int(stats["by_route"]["enroll"])


async def test_an_async_caller_runs_a_sheet_and_hears_its_progress(tmp_path: Path) -> None:
    users = 12
    rows = users * len(COURSES)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    seen: list[Progress] = []
    with SimulatorServer(create_app(big_catalog(users), latency_ms=5)) as server:
        summary = await run_sheet_async(
            sheet, out=tmp_path / "r.csv", options=options(server), on_progress=seen.append
        )
    assert summary.exit_code == 0
    assert seen, "on_progress was never called"
    last = seen[-1]
    assert (last.done, last.total) == (rows, rows)
    assert dict(last.counts) == {"enrolled": rows}
    assert last.rate > 0
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert all(p.total == rows for p in seen)
    # The frame the CSV was written from, for a caller that wants it without re-reading.
    assert summary.results is not None
    assert summary.results["status"].tolist() == [
        r["status"] for r in read_results(tmp_path / "r.csv")
    ]
    assert "results" not in summary.to_json()
    assert "results" not in repr(summary)


async def test_a_graceful_stop_finishes_rows_in_flight_and_sends_no_more(tmp_path: Path) -> None:
    users = 20
    rows = users * len(COURSES)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    stop = StopHandle()

    def on_progress(progress: Progress) -> None:
        if progress.done >= 4:
            stop.stop()

    with SimulatorServer(create_app(big_catalog(users), latency_ms=200)) as server:
        summary = await run_sheet_async(
            sheet,
            out=tmp_path / "r.csv",
            options=options(server, concurrency=4),
            on_progress=on_progress,
            stop=stop,
        )
        sent = await enroll_posts(server)
    statuses = [r["status"] for r in read_results(tmp_path / "r.csv")]
    assert summary.exit_code == 130
    assert "interrupted" in summary.stopped_because
    assert len(statuses) == rows
    enrolled = statuses.count("enrolled")
    assert 4 <= enrolled < rows
    assert enrolled == sent  # every request that went out got its answer: none cut off
    assert statuses.count("not_attempted") == rows - enrolled


async def test_stop_now_cuts_off_requests_in_flight(tmp_path: Path) -> None:
    users = 10
    sheet = write_sheet(tmp_path / "hires.csv", users)
    stop = StopHandle()
    # Answers take 3 s: a graceful stop would wait for them; stop(now=True) must not.
    with SimulatorServer(create_app(big_catalog(users), latency_ms=3000)) as server:
        async with anyio.create_task_group() as group:

            async def run() -> None:
                summary = await run_sheet_async(
                    sheet, out=tmp_path / "r.csv", options=options(server, concurrency=4), stop=stop
                )
                assert summary.exit_code == 130

            group.start_soon(run)
            with anyio.fail_after(20):
                # The server's counter is all there is to wait on: poll it.
                while await enroll_posts(server) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            stopped_at = time.monotonic()
            stop.stop(now=True)
        assert time.monotonic() - stopped_at < 2.5
    results = read_results(tmp_path / "r.csv")
    cut_off = [r for r in results if r["error_code"] == "Interrupted"]
    assert len(cut_off) == 4
    assert {r["status"] for r in results} == {"not_attempted"}


async def test_an_async_caller_validates_a_sheet_online(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "hires.csv", 2)
    with SimulatorServer(create_app(big_catalog(2))) as server:
        summary = await validate_sheet_async(sheet, report=None, options=options(server))
    assert summary.exit_code == 0
    assert summary.results is not None
    assert summary.results["status"].tolist() == ["ok"] * 6
