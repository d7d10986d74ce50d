"""``batch-enroll demo``: the sample sheet against the built-in simulator."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_enroll.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["catalog.json", "onboarding.csv"])
def test_packaged_sample_data_matches_sample_data(name: str) -> None:
    packaged = ROOT / "batch_enroll" / "data" / name
    assert packaged.read_bytes() == (ROOT / "sample_data" / name).read_bytes()


def expected_outcomes() -> dict[str, tuple[str, str]]:
    """Read sample_data/README.md's table: line -> (status, error code)."""
    readme = (ROOT / "sample_data" / "README.md").read_text(encoding="utf-8")
    table = readme.split("## What each row of the sheet", 1)[1]
    expected: dict[str, tuple[str, str]] = {}
    for line in table.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0].isdigit():
            expected[cells[0]] = (cells[-2], cells[-1])
    return expected


def test_demo_runs_the_sample_and_says_where_the_results_went(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no sample_data/ here: the packaged copy is used
    result = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "demo-results.csv"
    assert str(out.resolve()) in result.output
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = expected_outcomes()
    assert len(rows) == len(expected) == 55
    # Every line gets the status and code sample_data/README.md promises.
    assert {r["row"]: (r["status"], r["error_code"]) for r in rows} == expected
    statuses = {row["status"] for row in rows}
    # The sample shows every outcome a run can have without a stop.
    assert statuses == {
        "enrolled",
        "waitlisted",
        "already_enrolled",
        "unenrolled",
        "duplicate",
        "invalid",
        "failed",
    }
    assert "Problems:" in result.output
    assert "Waitlisted: 1 row is on the waiting list" in result.output
    # The terminal shows a few names resolving, codes, titles and sessions alike.
    assert '"Workplace Safety Basics" -> Workplace Safety Basics (ac661ba6-' in result.output
    assert "session Morning, Oslo (2028-03-06 09:00)" in result.output
    # Codes, titles and session names resolve, and the results say to what.
    by_row = {r["row"]: r for r in rows}
    assert by_row["4"]["course_id"] == "Workplace Safety Basics"
    assert by_row["4"]["lms_course_id"] == "ac661ba6-a93b-4efe-ae1e-a7dec2d0bdcb"
    assert by_row["13"]["course_title"] == "Information Security Basics"
    assert by_row["17"]["session_titles"] == "Morning, Oslo (2028-03-06 09:00)"
    assert by_row["18"]["course_session_ids"] == "592dbabc-4fcb-4c80-8095-50b6e2a5cc99"
    assert by_row["23"]["session_titles"] == "Full series (session group)"
    # A second demo starts afresh instead of refusing an earlier journal.
    again = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
