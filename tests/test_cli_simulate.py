"""``batch-enroll simulate``: a real server in its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import FULL_KEY, SAMPLE_CATALOG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_simulate_serves_the_contract_until_stopped() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_enroll",
            "simulate",
            "--port",
            str(port),
            "--latency-ms",
            "1",
            "--rate-limit",
            "1000",
            "--catalog",
            str(SAMPLE_CATALOG),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_sim/stats", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator never came up"
                time.sleep(0.1)
        auth = ("api", FULL_KEY)
        course = httpx.get(f"{base}/odata/v2/Courses(103)?$expand=CourseSessions", auth=auth)
        assert course.status_code == 200
        assert len(course.json()["CourseSessions"]) == 3
        enrolled = httpx.post(
            f"{base}/odata/v2/Courses(101)/Enroll",
            json={"userLoginName": "noah.kim@contoso.com"},
            auth=auth,
        )
        assert enrolled.status_code == 201
        assert httpx.get(f"{base}/odata/v2/Courses(101)", auth=("api", "nope")).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode in (0, -signal.SIGINT, 130)


def test_simulate_rejects_a_bad_catalog(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "batch_enroll", "simulate", "--catalog", str(bad)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"catalog.json" in done.stderr
    assert b"Traceback" not in done.stderr
