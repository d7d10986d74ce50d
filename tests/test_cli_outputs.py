"""Outputs a scheduler can trust: refused up front when unwritable, never left half-written."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from batch_enroll.simulator import SimulatorServer, create_app
from tests.helpers import against_one_row, big_catalog, invoke, read_results, write_sheet


def blocked(tmp_path: Path) -> Path:
    """A path under a plain file: no folder can be made there, even by root."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    return blocker / "sub"


@pytest.mark.parametrize(
    ("option", "what"),
    [
        ("--out", "results"),
        ("--journal", "journal"),
        ("--summary-json", "summary JSON"),
        ("--log-file", "request log"),
    ],
)
def test_an_unwritable_output_stops_the_run_before_anything_is_sent(
    option: str, what: str, tmp_path: Path
) -> None:
    app = create_app(big_catalog(1))
    sheet = write_sheet(tmp_path / "s.csv", 1)
    paths = {
        "--out": tmp_path / "r.csv",
        "--journal": tmp_path / "r.csv.journal",
        "--summary-json": tmp_path / "s.json",
        "--log-file": tmp_path / "requests.log",
    }
    paths[option] = blocked(tmp_path) / "file"
    args = [f"{name}={path}" for name, path in paths.items()]
    with SimulatorServer(app) as server:
        result = invoke("run", str(sheet), "--base-url", server.base_url, "--no-progress", *args)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"batch-enroll: error: cannot write the {what} {paths[option]}")
    assert "nothing was sent" in line
    assert app.stats.requests_total == 0


def test_a_folder_where_the_journal_should_go_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.csv.journal").mkdir()
    result, app = against_one_row(tmp_path, "run", "--out", str(tmp_path / "r.csv"))
    assert result.exit_code == 2, result.output
    assert "cannot write the journal" in result.output
    assert "it is a folder" in result.output
    assert app.stats.requests_total == 0


@pytest.mark.parametrize("option", ["--report", "--summary-json"])
def test_validate_refuses_an_unwritable_report_before_reading_courses(
    option: str, tmp_path: Path
) -> None:
    result, app = against_one_row(tmp_path, "validate", option, str(blocked(tmp_path) / "x"))
    assert result.exit_code == 2, result.output
    assert "cannot write the" in result.output
    assert app.stats.requests_total == 0


def test_outputs_are_renamed_into_place_and_keep_their_mode(tmp_path: Path) -> None:
    out, summary = tmp_path / "r.csv", tmp_path / "s.json"
    for path in (out, summary):
        path.write_text("stale", encoding="utf-8")
        path.chmod(0o640)
    result, _ = against_one_row(
        tmp_path, "run", "--out", str(out), "--summary-json", str(summary), "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in read_results(out)} == {"enrolled"}
    assert json.loads(summary.read_text(encoding="utf-8"))["counts"]["enrolled"] == 3
    for path in (out, summary):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".probe"))]


def test_formula_headers_are_neutralised_in_the_report(tmp_path: Path) -> None:
    sheet = tmp_path / "s.csv"
    sheet.write_text(
        "course_id,user_login_name,=Notes,@Manager\n1,a@contoso.com,=1+1,x\n", encoding="utf-8"
    )
    report = tmp_path / "report.csv"
    result = invoke("validate", str(sheet), "--offline", "--report", str(report))
    assert result.exit_code == 0, result.output
    header, first = report.read_text(encoding="utf-8").splitlines()
    # The input's own columns, then what each row became (nothing, offline).
    assert header.endswith(",'=Notes,'@Manager,lms_course_id,course_title,session_titles")
    assert first.endswith(",'=1+1,x,,,")
