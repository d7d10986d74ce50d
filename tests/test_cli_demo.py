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
    assert len(rows) == 50
    statuses = {row["status"] for row in rows}
    # The sample shows every outcome a run can have without a stop.
    assert statuses == {"enrolled", "already_enrolled", "duplicate", "invalid", "failed"}
    assert "Problems:" in result.output
    assert "enrolled" in result.output
    # A second demo starts afresh instead of refusing an earlier journal.
    again = CliRunner().invoke(main, ["demo"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
