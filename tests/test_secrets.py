"""The API key never appears in anything the tool prints or writes."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batch_enroll.simulator import Catalog, SimulatorServer, create_app
from tests.helpers import big_catalog, write_sheet

pytestmark = pytest.mark.slow

SECRET = "S3cret-Key-Do-Not-Leak-7f3a9c"


def catalog_with_secret(users: int) -> Catalog:
    return big_catalog(users, key=SECRET)


def forms_of(secret: str) -> list[bytes]:
    """The key as text and in the encodings a leak would take."""
    basic = base64.b64encode(f"api:{secret}".encode())
    return [secret.encode(), basic, secret.encode("utf-16-le"), secret[:12].encode()]


def run_cli(*args: str, key: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LMS365_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "batch_enroll", *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def scan(paths: list[Path], blobs: list[bytes], secret: str) -> None:
    for blob in blobs:
        for form in forms_of(secret):
            assert form not in blob
    for path in paths:
        for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
            data = file.read_bytes()
            for form in forms_of(secret):
                assert form not in data, f"the key leaked into {file.name}"


def test_key_is_never_written_with_faults_errors_and_verbose_logging(tmp_path: Path) -> None:
    users = 30
    app = create_app(
        catalog_with_secret(users),
        latency_ms=2,
        fault_rate=0.25,
        drop_rate=0.05,
        rate_limit=300,
        seed=3,
    )
    sheet = write_sheet(tmp_path / "hires.csv", users)
    with sheet.open("a", encoding="utf-8") as handle:
        handle.write("999,user1@contoso.com,E1\n201,nobody@contoso.com,E2\nabc,x@y.z,E3\n")
    out = tmp_path / "out" / "results.csv"
    with SimulatorServer(app) as server:
        done = run_cli(
            "-v",
            "run",
            str(sheet),
            "--out",
            str(out),
            "--base-url",
            server.base_url,
            "--no-progress",
            "--verbose",
            "--log-file",
            str(tmp_path / "out" / "requests.log"),
            "--summary-json",
            str(tmp_path / "out" / "summary.json"),
            "--max-retries",
            "8",
            key=SECRET,
        )
        validated = run_cli(
            "validate",
            str(sheet),
            "--report",
            str(tmp_path / "out" / "report.csv"),
            "--base-url",
            server.base_url,
            key=SECRET,
        )
    assert done.returncode == 1, done.stderr.decode()
    assert b"DEBUG" in done.stderr  # verbose logging really ran
    assert (tmp_path / "out" / "requests.log").stat().st_size > 0
    scan([tmp_path], [done.stdout, done.stderr, validated.stdout, validated.stderr], SECRET)


def test_a_refused_key_is_not_echoed(tmp_path: Path) -> None:
    app = create_app(catalog_with_secret(2))
    sheet = write_sheet(tmp_path / "hires.csv", 2)
    wrong = "Wrong-Key-Also-Secret-12345"
    with SimulatorServer(app) as server:
        done = run_cli(
            "-v",
            "run",
            str(sheet),
            "--out",
            str(tmp_path / "r.csv"),
            "--base-url",
            server.base_url,
            "--no-progress",
            "--log-file",
            str(tmp_path / "req.log"),
            key=wrong,
        )
    assert done.returncode == 3
    scan([tmp_path], [done.stdout, done.stderr], wrong)


def test_key_on_the_command_line_is_not_echoed_in_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "batch_enroll",
            "run",
            str(tmp_path / "missing.csv"),
            "--api-key",
            SECRET,
            "--base-url",
            "http://example.com",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    scan([tmp_path], [done.stdout, done.stderr], SECRET)
