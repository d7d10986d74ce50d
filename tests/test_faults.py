"""Fault scenarios over real sockets: every valid row ends enrolled exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from batch_enroll import RunOptions, run_sheet
from batch_enroll.simulator import SimulatorServer, create_app
from tests.conftest import FULL_KEY
from tests.helpers import COURSES, big_catalog, read_results, write_sheet

pytestmark = pytest.mark.slow


def run(sheet: Path, out: Path, server: SimulatorServer, **options: object):  # type: ignore[no-untyped-def]
    settings = {
        "base_url": server.base_url,
        "api_key": FULL_KEY,
        "max_retries": 12,
        "timeout": 5.0,
    }
    settings.update(options)
    return run_sheet(sheet, out=out, options=RunOptions(**settings))  # type: ignore[arg-type]


def assert_each_enrolled_once(out: Path, server: SimulatorServer, rows: int) -> None:
    results = read_results(out)
    assert len(results) == rows
    assert {r["status"] for r in results} == {"enrolled"}, {
        (r["status"], r["error_code"]) for r in results
    }
    report = httpx.get(f"{server.base_url}/_sim/enrollments").json()
    assert report["max_created"] == 1
    assert len(report["value"]) == rows


def test_20_percent_5xx_and_5_percent_drops(tmp_path: Path) -> None:
    users = 60
    app = create_app(big_catalog(users), latency_ms=2, fault_rate=0.2, drop_rate=0.05, seed=5)
    sheet = write_sheet(tmp_path / "s.csv", users)
    with SimulatorServer(app) as server:
        summary = run(sheet, tmp_path / "r.csv", server, rate=500.0, concurrency=16)
        stats = httpx.get(f"{server.base_url}/_sim/stats").json()
        assert stats["faults_injected"] > 10
        assert stats["drops_injected"] > 0
        assert summary.exit_code == 0
        assert_each_enrolled_once(tmp_path / "r.csv", server, users * len(COURSES))


def test_429_storm_is_waited_out(tmp_path: Path) -> None:
    users = 30
    # A throttle far below what the client first tries, with a tiny burst.
    app = create_app(big_catalog(users), rate_limit=60, burst=2)
    sheet = write_sheet(tmp_path / "s.csv", users)
    with SimulatorServer(app) as server:
        summary = run(sheet, tmp_path / "r.csv", server, concurrency=16)
        assert summary.throttled > 0
        assert summary.exit_code == 0
        assert_each_enrolled_once(tmp_path / "r.csv", server, users * len(COURSES))


def test_429_storm_with_a_fixed_rate_above_the_throttle(tmp_path: Path) -> None:
    users = 10
    app = create_app(big_catalog(users), rate_limit=40, burst=1)
    sheet = write_sheet(tmp_path / "s.csv", users)
    with SimulatorServer(app) as server:
        summary = run(sheet, tmp_path / "r.csv", server, rate=200.0, concurrency=8)
        assert summary.throttled > 0
        assert_each_enrolled_once(tmp_path / "r.csv", server, users * len(COURSES))


def test_simulator_restarted_mid_run(tmp_path: Path) -> None:
    users = 80
    app = create_app(big_catalog(users), latency_ms=10)
    sheet = write_sheet(tmp_path / "s.csv", users)
    server = SimulatorServer(app).start()
    try:

        def restart() -> None:
            deadline = time.monotonic() + 20
            while app.stats.to_dict()["by_route"]["enroll"] < 40 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop(abort=True)  # connections cut mid-request, as in a crash
            time.sleep(0.5)
            server.start()

        restarter = threading.Thread(target=restart)
        restarter.start()
        summary = run(sheet, tmp_path / "r.csv", server, rate=300.0, concurrency=8)
        restarter.join()
        assert summary.exit_code == 0
        assert_each_enrolled_once(tmp_path / "r.csv", server, users * len(COURSES))
    finally:
        server.stop()
