"""Nothing lost, nothing sent twice: journal, resume, kill -9, Ctrl+C, one run at a time."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from batch_enroll.cli import main
from batch_enroll.journal import RunLock, read_journal
from batch_enroll.simulator import SimulatorServer, create_app
from tests.conftest import FULL_KEY
from tests.helpers import (
    COURSES,
    big_catalog,
    course_guid,
    invoke,
    read_results,
    run_argv,
    write_sheet,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def server_for() -> Iterator[Callable[..., SimulatorServer]]:
    started: list[SimulatorServer] = []

    def start(users: int, **kwargs: Any) -> SimulatorServer:
        server = SimulatorServer(create_app(big_catalog(users), **kwargs)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def creations(server: SimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{server.base_url}/_sim/enrollments").json()  # type: ignore[no-any-return]


def cli_subprocess(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LMS365_API_KEY": FULL_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "batch_enroll", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_enroll_posts(server: SimulatorServer, count: int) -> None:
    """Wait until the run under test has sent ``count`` Enroll requests."""
    deadline = time.monotonic() + 20
    while httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"] < count:
        assert time.monotonic() < deadline, "the run never started sending"
        time.sleep(0.02)


def assert_complete(results: Path, rows: int, server: SimulatorServer) -> None:
    got = read_results(results)
    assert [r["row"] for r in got] == [str(n) for n in range(2, rows + 2)]
    assert {r["status"] for r in got} == {"enrolled"}
    assert all(r["registration_date"] for r in got)
    report = creations(server)
    assert report["max_created"] == 1  # nobody enrolled twice
    assert len(report["value"]) == rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_then_resume_enrolls_everyone_exactly_once(
    server_for, tmp_path: Path, seed: int
) -> None:
    users = 80
    server = server_for(users, latency_ms=15, drop_rate=0.05, seed=seed)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    out = tmp_path / "results.csv"
    args = [
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--rate",
        "200",
        "--concurrency",
        "8",
    ]
    process = cli_subprocess(*args)
    # Kill at a random moment once requests are flowing.
    wait_for_enroll_posts(server, 5)
    time.sleep(random.Random(seed).uniform(0.0, 0.6))
    process.kill()
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    made_before = len(creations(server)["value"])
    assert made_before < users * len(COURSES), "the run finished before the kill"

    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert_complete(out, users * len(COURSES), server)


def test_sigint_stops_gracefully_and_resume_finishes(server_for, tmp_path: Path) -> None:
    users = 60
    server = server_for(users, latency_ms=20)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    out = tmp_path / "results.csv"
    args = [
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--rate",
        "150",
        "--concurrency",
        "4",
    ]
    process = cli_subprocess(*args)
    wait_for_enroll_posts(server, 10)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    assert b"Traceback" not in stderr
    partial = read_results(out)
    assert len(partial) == users * len(COURSES)
    statuses = {r["status"] for r in partial}
    assert "not_attempted" in statuses
    assert statuses <= {"enrolled", "not_attempted"}
    journal = read_journal(out.with_name(out.name + ".journal"))
    assert not journal.finished
    done = sum(1 for r in partial if r["status"] == "enrolled")
    assert len(journal.final()) == done

    # A plain re-run refuses to start over an unfinished journal...
    refused = invoke(*args)
    assert refused.exit_code == 2
    assert "--resume" in refused.output
    # ...and --resume finishes the job.
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert_complete(out, users * len(COURSES), server)


def test_sigterm_is_a_graceful_stop_too(server_for, tmp_path: Path) -> None:
    users = 40
    server = server_for(users, latency_ms=20)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    out = tmp_path / "results.csv"
    process = cli_subprocess(
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--rate",
        "100",
        "--concurrency",
        "4",
    )
    wait_for_enroll_posts(server, 5)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 130
    assert len(read_results(out)) == users * len(COURSES)


def test_resume_refuses_a_changed_input(server_for, tmp_path: Path) -> None:
    server = server_for(5)
    sheet = write_sheet(tmp_path / "hires.csv", 5)
    out = tmp_path / "results.csv"
    args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"]
    assert invoke(*args).exit_code == 0
    with sheet.open("a", encoding="utf-8") as handle:
        handle.write("201,user4@contoso.com,E99999\n")
    result = invoke(*args, "--resume")
    assert result.exit_code == 2
    assert "different input" in result.output


def test_resume_refuses_other_sending_options(server_for, tmp_path: Path) -> None:
    server = server_for(5)
    sheet = write_sheet(tmp_path / "hires.csv", 5)
    out = tmp_path / "results.csv"
    args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"]
    assert invoke(*args).exit_code == 0
    result = invoke(*args, "--resume", "--ignore-max-attendees")
    assert result.exit_code == 2
    assert "ignore_max_attendees" in result.output


def test_resume_of_a_finished_run_sends_nothing_and_rebuilds_results(
    server_for, tmp_path: Path
) -> None:
    server = server_for(5)
    sheet = write_sheet(tmp_path / "hires.csv", 5)
    out = tmp_path / "results.csv"
    args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"]
    assert invoke(*args).exit_code == 0
    first = read_results(out)
    out.unlink()
    sent = httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"]
    assert invoke(*args, "--resume").exit_code == 0
    assert httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"] == sent
    assert read_results(out) == first


def test_torn_last_journal_line_is_tolerated(server_for, tmp_path: Path) -> None:
    server = server_for(5)
    sheet = write_sheet(tmp_path / "hires.csv", 5)
    out = tmp_path / "results.csv"
    args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"]
    assert invoke(*args).exit_code == 0
    journal = out.with_name(out.name + ".journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    # Drop the "done" line and cut the last result in half, as a power cut would.
    kept = [line for line in lines if b'"type":"done"' not in line]
    journal.write_bytes(b"".join(kept[:-1]) + kept[-1][: len(kept[-1]) // 2])
    state = read_journal(journal)
    assert state.torn_lines == 1
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert_complete(out, 15, server)


def test_a_second_run_on_the_same_results_is_refused(server_for, tmp_path: Path) -> None:
    server = server_for(3)
    sheet = write_sheet(tmp_path / "hires.csv", 3)
    out = tmp_path / "results.csv"
    with RunLock(out):
        result = invoke(
            "run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"
        )
    assert result.exit_code == 2
    assert "another batch-enroll run" in result.output
    assert httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"] == 0


def test_a_dead_runs_lock_does_not_block(server_for, tmp_path: Path) -> None:
    server = server_for(3)
    sheet = write_sheet(tmp_path / "hires.csv", 3)
    out = tmp_path / "results.csv"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from batch_enroll.journal import RunLock;"
            " lock = RunLock(Path(sys.argv[1])).__enter__(); print('locked', flush=True);"
            " time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"locked"
    holder.kill()
    holder.wait()
    result = invoke(
        "run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"
    )
    assert result.exit_code == 0, result.output


def test_journal_records_are_json_lines_with_a_header(server_for, tmp_path: Path) -> None:
    server = server_for(2)
    sheet = write_sheet(tmp_path / "hires.csv", 2)
    out = tmp_path / "results.csv"
    journal = tmp_path / "elsewhere" / "run.journal"
    journal.parent.mkdir()
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(out),
        "--journal",
        str(journal),
        "--base-url",
        server.base_url,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert records[0]["type"] == "header"
    assert records[0]["input_sha256"]
    assert records[-1]["type"] == "done"
    results = [r for r in records if r["type"] == "result"]
    assert sorted(r["row"] for r in results) == list(range(2, 8))


def test_second_ctrl_c_stops_at_once_and_the_journal_stays_consistent(
    server_for, tmp_path: Path
) -> None:
    users = 20
    # Answers take 3 s: a graceful stop would wait for them; a second Ctrl+C must not.
    server = server_for(users, latency_ms=3000)
    sheet = write_sheet(tmp_path / "hires.csv", users)
    out = tmp_path / "results.csv"
    args = [
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--rate",
        "1000",
        "--concurrency",
        "8",
    ]
    process = cli_subprocess(*args)
    wait_for_enroll_posts(server, 8)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()
    assert time.monotonic() - stopped_at < 2.5  # did not wait for the 3 s answers
    rows = read_results(out)
    assert len(rows) == users * len(COURSES)
    journal = read_journal(out.with_name(out.name + ".journal"))
    assert journal.torn_lines == 0
    assert len(journal.started) >= 8  # the cut-off requests, for --resume to check

    server.app.latency_ms = 0  # the tenant is quick again
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert_complete(out, users * len(COURSES), server)


def test_a_run_refused_by_its_key_can_simply_be_run_again(server_for, tmp_path: Path) -> None:
    server = server_for(3)
    sheet = write_sheet(tmp_path / "hires.csv", 3)
    out = tmp_path / "results.csv"
    args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--no-progress"]
    refused = CliRunner().invoke(main, args, env={"LMS365_API_KEY": "not-the-key"})
    assert refused.exit_code == 3
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert_complete(out, 9, server)


def test_resume_tries_again_the_rows_that_ran_out_of_retries(server_for, tmp_path: Path) -> None:
    server = server_for(4, fault_rate=1.0, seed=2)  # every answer a 5xx
    # By GUID: nothing to look up, so the rows are sent and run out of retries.
    sheet = write_sheet(tmp_path / "hires.csv", 4, by_guid=True)
    out = tmp_path / "results.csv"
    args = [
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--max-retries",
        "0",
    ]
    first = invoke(*args)
    assert first.exit_code == 1, first.output
    assert {r["status"] for r in read_results(out)} == {"failed"}
    assert len(creations(server)["value"]) == 0

    server.app.fault_rate = 0.0  # the outage is over
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert_complete(out, 12, server)


def test_an_unreadable_course_list_sends_nothing(server_for, tmp_path: Path) -> None:
    server = server_for(2, fault_rate=1.0, seed=2)  # every answer a 5xx
    sheet = write_sheet(tmp_path / "hires.csv", 2)  # by code: the list must be read first
    out = tmp_path / "results.csv"
    result = invoke(
        "run", str(sheet), "--out", str(out), "--base-url", server.base_url, "--max-retries", "0"
    )
    assert result.exit_code == 1, result.output
    assert "could not look courses up by code or title" in result.output
    assert {r["status"] for r in read_results(out)} == {"not_attempted"}
    assert httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"] == 0


def test_resume_refuses_when_a_course_code_now_names_another_course(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "hires.csv", 2)
    out = tmp_path / "results.csv"

    def moved(code: int) -> str:
        return course_guid(code).replace("0000-4000", "0000-4001")  # recreated: a new GUID

    with SimulatorServer(create_app(big_catalog(2))) as server:
        args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url]
        first = invoke(*args)
        assert first.exit_code == 0, first.output
        assert read_journal(Path(f"{out}.journal")).resolved["201"] == course_guid(201)
        # The courses are recreated in LMS365 between the run and its resume.
        server.app.catalog = big_catalog(2, guid_of=moved)
        server.app.reset()
        again = invoke(*args, "--resume")
        assert again.exit_code == 1, again.output
        assert '"201"' in again.output
        assert "names another course" in again.output
        assert httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"] == 0
