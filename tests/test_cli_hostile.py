"""Every hostile input through the real CLI: a one-line error or row verdicts, no traceback."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from batch_enroll.cli import main

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CORPUS = sorted(
    p
    for p in (Path(__file__).parent / "hostile").iterdir()
    if p.is_file() and p.suffix != ".py" and not p.name.startswith(".")
)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_validate_never_shows_a_traceback(path: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(main, ["validate", str(path), "--offline", "--report", str(report)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1
        assert path.name in lines[0]
        assert not report.exists()  # nothing written for an unreadable input
    else:
        assert result.exit_code in (0, 1), result.output
        with report.open(newline="", encoding="utf-8") as handle:
            header, *cells = list(csv.reader(handle))
        # No cell a spreadsheet would run, the header row included.
        for line in [header, *cells]:
            assert not [c for c in line if c[:1] in FORMULA_STARTS], line
        with report.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        # Every bad row carries its reason.
        assert all(r["error_message"] for r in rows if r["status"] == "invalid")
        numbers = [int(r["row"]) for r in rows]
        assert numbers == sorted(set(numbers))
