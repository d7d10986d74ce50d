"""``batch-enroll simulate``: a real server in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx

from tests.conftest import FULL_KEY, SAMPLE_CATALOG
from tests.helpers import free_port, wait_for_simulator

# Workplace Safety Basics and Forklift Safety Workshop in the sample catalog.
SAFETY = "ac661ba6-a93b-4efe-ae1e-a7dec2d0bdcb"
FORKLIFT = "b885f275-273e-419c-9f53-dc399e6f2780"


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
            "--rename-field",
            "TakenSeatsCount=AttendeesCount",
            "--rename-field",
            " CourseID = Code ",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_simulator(base)
        auth = ("api", FULL_KEY)
        course = httpx.get(f"{base}/odata/v2/Courses({FORKLIFT})?$expand=CourseSessions", auth=auth)
        assert course.status_code == 200
        assert course.json()["Code"] == "FLT-201"  # renamed from CourseID
        assert "CourseID" not in course.json()
        sessions = course.json()["CourseSessions"]
        assert len(sessions) == 4
        assert all("AttendeesCount" in s and "TakenSeatsCount" not in s for s in sessions)
        enrolled = httpx.post(
            f"{base}/odata/v2/Courses({SAFETY})/Enroll",
            json={"userLoginName": "noah.kim@contoso.com"},
            auth=auth,
        )
        assert enrolled.status_code == 201
        assert (
            httpx.get(f"{base}/odata/v2/Courses({SAFETY})", auth=("api", "nope")).status_code == 401
        )
        assert httpx.get(f"{base}/odata/v2/Courses(101)", auth=auth).status_code == 400
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


def test_simulate_rejects_a_bad_rename() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batch_enroll", "simulate", "--rename-field", "Title"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"OLD=NEW" in done.stderr
    assert b"Traceback" not in done.stderr
