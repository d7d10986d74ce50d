"""No traceback, ever: an unexpected exception is one line, a traceback file and exit 70."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import Result

from batch_enroll import runner
from batch_enroll.client import LmsClient
from batch_enroll.journal import read_journal
from batch_enroll.model import Job, RowResult
from batch_enroll.reporter import Summary
from batch_enroll.simulator import SimulatorServer, create_app
from tests.conftest import FULL_KEY
from tests.helpers import big_catalog, invoke, read_results, run_argv, write_sheet
from tests.test_cli_resume import assert_complete, creations

EXIT_SOFTWARE = 70
PREFIX = "batch-enroll: internal error: "


def one_line_and_report(result: Result, kind: str, message: str) -> Path:
    """Assert the one-line shape and return the traceback file it names."""
    assert result.exit_code == EXIT_SOFTWARE, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith(f"{PREFIX}{kind}: {message}")
    assert "Traceback" not in result.output
    assert FULL_KEY not in result.output
    report = Path(line.rsplit("the traceback is in ", 1)[1])
    text = report.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert message in text
    assert FULL_KEY not in text
    return report


def test_a_crash_while_sending_keeps_the_results_and_journal_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users, rows = 4, 12
    sheet = write_sheet(tmp_path / "hires.csv", users)
    out = tmp_path / "out" / "results.csv"
    real_enroll = LmsClient.enroll
    calls: list[int] = []

    async def enroll_then_break(self: LmsClient, job: Job) -> RowResult:
        calls.append(job.index)
        if len(calls) == 5:
            raise RuntimeError(f"simulated bug on row {job.row}")
        return await real_enroll(self, job)

    with SimulatorServer(create_app(big_catalog(users))) as server:
        monkeypatch.setattr(LmsClient, "enroll", enroll_then_break)
        args = ["run", str(sheet), "--out", str(out), "--base-url", server.base_url]
        args += ["--no-progress", "--concurrency", "1", "--rate", "1000"]
        summary = tmp_path / "summary.json"
        result = invoke(*args, "--summary-json", str(summary))
        report = one_line_and_report(result, "RuntimeError", "simulated bug on row 6")
        assert report.parent == out.parent  # beside the results

        # The results say what happened to each row; the journal holds what was done.
        got = read_results(out)
        assert [r["row"] for r in got] == [str(n) for n in range(2, rows + 2)]
        statuses = [r["status"] for r in got]
        assert statuses[:4] == ["enrolled"] * 4
        assert set(statuses[4:]) == {"not_attempted"}
        assert {r["error_code"] for r in got[4:]} == {"InternalError"}
        journal = read_journal(out.with_name(out.name + ".journal"))
        assert sorted(journal.final()) == [0, 1, 2, 3]
        assert len(creations(server)["value"]) == 4
        written = json.loads(summary.read_text(encoding="utf-8"))
        assert written["exit_code"] == EXIT_SOFTWARE
        assert written["stopped_because"].startswith("internal error (RuntimeError)")

        monkeypatch.setattr(LmsClient, "enroll", real_enroll)
        resumed = invoke(*args, "--resume")
        assert resumed.exit_code == 0, resumed.output
        assert_complete(out, rows, server)


def test_a_crash_in_the_reporter_still_leaves_the_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = write_sheet(tmp_path / "hires.csv", 1)

    def broken(self: Summary) -> dict[str, Any]:
        raise KeyError("schema_version")

    monkeypatch.setattr(Summary, "to_json", broken)
    out = tmp_path / "results.csv"
    with SimulatorServer(create_app(big_catalog(1))) as server:
        result = invoke(
            *run_argv(sheet, out, server.base_url),
            "--no-progress",
            "--summary-json",
            str(tmp_path / "summary.json"),
        )
    one_line_and_report(result, "KeyError", "'schema_version'")
    assert [r["status"] for r in read_results(out)] == ["enrolled"] * 3
    assert read_journal(out.with_name(out.name + ".journal")).final()
    assert not (tmp_path / "summary.json").exists()


def test_a_crash_in_the_checks_still_leaves_a_results_row_per_input_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sheet = write_sheet(tmp_path / "hires.csv", 2)

    def broken(frame: pd.DataFrame) -> pd.DataFrame:
        raise IndexError("rule out of range")

    monkeypatch.setattr(runner, "check_offline", broken)
    out = tmp_path / "results.csv"
    with SimulatorServer(create_app(big_catalog(2))) as server:
        result = invoke(*run_argv(sheet, out, server.base_url), "--no-progress")
        assert server.app.stats.requests_total == 0
    report = one_line_and_report(result, "IndexError", "rule out of range")
    assert report.parent == tmp_path
    rows = read_results(out)
    assert [r["row"] for r in rows] == [str(n) for n in range(2, 8)]
    assert {(r["status"], r["error_code"]) for r in rows} == {("not_attempted", "InternalError")}


def test_with_nothing_known_yet_the_traceback_goes_to_the_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    sheet = write_sheet(tmp_path / "hires.csv", 1)

    async def broken(self: LmsClient, course_id: int) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(LmsClient, "get_course", broken)
    with SimulatorServer(create_app(big_catalog(1))) as server:
        result = invoke("validate", str(sheet), "--base-url", server.base_url)
    report = one_line_and_report(result, "ZeroDivisionError", "division by zero")
    assert report.parent == tmp_path / "tmp"
