"""`batch-enroll serve` as people start it: a real process, stopped with Ctrl+C mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from batch_enroll.simulator import Simulator, SimulatorServer
from tests.conftest import FULL_KEY
from tests.helpers import free_port
from tests.web_helpers import SAMPLE_XLSX

pytestmark = pytest.mark.slow


def start_serve(data_dir: Path, base_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LMS365_API_KEY": FULL_KEY}
    env.pop("BATCH_ENROLL_TOKEN", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_enroll",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--base-url",
            base_url,
            "--concurrency",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _out, err = process.communicate()
                raise AssertionError(f"serve did not start: {err.decode()}") from None
            time.sleep(0.05)


def test_ctrl_c_mid_run_leaves_a_journal_that_resume_finishes(
    tmp_path: Path,
    sim_app: Callable[..., Simulator],
    sim_server: Callable[[Simulator], SimulatorServer],
) -> None:
    simulator = sim_app(latency_ms=200)
    lms = sim_server(simulator)
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_serve(data, lms.base_url, port)
    try:
        with httpx.Client(base_url=url) as http:
            page = http.get("/")
            assert page.status_code == 200
            token = http.get("/api/session").json()["csrf_token"]
            assert f'content="{token}"' in page.text
            headers = {"X-CSRF-Token": token}
            with SAMPLE_XLSX.open("rb") as handle:
                checked = http.post(
                    "/api/uploads", files={"file": ("onboarding.xlsx", handle)}, headers=headers
                ).json()
            run_id = http.post(f"/api/uploads/{checked['id']}/run", headers=headers).json()["run"]
            deadline = time.monotonic() + 20
            while not simulator.creations:
                assert time.monotonic() < deadline, "the run never started sending"
                time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    logs = (out + err).decode()
    assert f"http://127.0.0.1:{port}" in logs
    assert FULL_KEY not in logs
    assert "Traceback" not in logs

    folder = data / "runs" / run_id
    record = json.loads((folder / "run.json").read_text("utf-8"))
    assert record["state"] == "stopped"
    results = folder / "results.csv"
    assert (folder / "results.csv.journal").is_file()
    with results.open(newline="", encoding="utf-8") as handle:
        first = list(csv.DictReader(handle))
    assert any(r["status"] == "not_attempted" for r in first)

    # The command line finishes what the page started, from the same journal.
    inputs = list(folder.glob("input.*"))
    finish = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_enroll",
            "run",
            str(inputs[0]),
            "--out",
            str(results),
            "--base-url",
            lms.base_url,
            "--resume",
        ],
        env={**os.environ, "LMS365_API_KEY": FULL_KEY},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert finish.returncode in (0, 1), finish.stderr.decode()
    with results.open(newline="", encoding="utf-8") as handle:
        final = list(csv.DictReader(handle))
    assert len(final) == len(first)
    assert not any(r["status"] == "not_attempted" for r in final)
    enrolled = sum(1 for r in final if r["status"] in ("enrolled", "waitlisted"))
    assert set(simulator.creations.values()) == {1}
    assert sum(simulator.creations.values()) == enrolled
    assert not any(FULL_KEY.encode() in p.read_bytes() for p in data.rglob("*") if p.is_file())
