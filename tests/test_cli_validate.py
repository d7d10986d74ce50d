"""``batch-enroll validate``: verdicts before anything is sent."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from tests.conftest import FULL_KEY, SAMPLE_DATA

ROWS = [
    ["SAF-101", "liam.patel@contoso.com", ""],
    ["FLT-201", "noah.kim@contoso.com", "Morning, Bergen"],
    ["Forklift Safety Workshop", "sofia.garcia@contoso.com", ""],
    ["SAF-101", "liam.patel@contoso.com", ""],
    ["#N/A", "x@contoso.com", ""],
    ["SAF-999", "x@contoso.com", ""],
]


def sheet(tmp_path: Path) -> Path:
    path = tmp_path / "s.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["course_id", "user_login_name", "course_session_ids"])
        writer.writerows(ROWS)
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def invoke(*args: str, key: str | None = FULL_KEY) -> Result:
    env = {"LMS365_API_KEY": key} if key else {}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_online_validation_applies_session_rules_and_sends_nothing(
    sim_app: Any, sim_server: Any, tmp_path: Path
) -> None:
    server = sim_server(sim_app())
    report = tmp_path / "report.csv"
    result = invoke(
        "validate", str(sheet(tmp_path)), "--report", str(report), "--base-url", server.base_url
    )
    assert result.exit_code == 1
    got = read(report)
    assert [(r["status"], r["error_code"]) for r in got] == [
        ("ok", ""),
        ("invalid", "MaxAttendeesReached"),
        ("warning", ""),
        ("duplicate", "Duplicate"),
        ("invalid", "InvalidCourseId"),
        ("invalid", "CourseNotFound"),
    ]
    stats = httpx.get(f"{server.base_url}/_sim/stats").json()
    assert stats["by_route"]["enroll"] == 0
    # Three distinct cells to look up: the course list once; then each course found, once.
    assert stats["by_route"]["courses"] == 1
    assert stats["by_route"]["course"] == 2
    assert "MaxAttendeesReached x1 (rows 3)" in result.output
    assert "what to do" in result.output
    # The report ends with what each row became in LMS365.
    assert got[1]["lms_course_id"] == "b885f275-273e-419c-9f53-dc399e6f2780"
    assert got[1]["session_titles"] == "Morning, Bergen (2028-03-13 09:00)"
    assert got[2]["course_title"] == "Forklift Safety Workshop"


def test_offline_validation_needs_no_key(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    summary = tmp_path / "summary.json"
    result = invoke(
        "validate",
        str(sheet(tmp_path)),
        "--offline",
        "--report",
        str(report),
        "--summary-json",
        str(summary),
        key=None,
    )
    assert result.exit_code == 1
    assert [r["status"] for r in read(report)] == ["ok", "ok", "ok", "duplicate", "invalid", "ok"]
    assert json.loads(summary.read_text())["counts"] == {
        "ok": 4,
        "warning": 0,
        "invalid": 1,
        "duplicate": 1,
    }
    assert "Offline check only: finding the courses and sessions" in result.output


def test_online_validation_without_a_key_says_how(tmp_path: Path) -> None:
    result = invoke("validate", str(sheet(tmp_path)), key=None)
    assert result.exit_code == 2
    assert "--offline" in result.output


def test_sample_sheet_validates_offline_with_its_bad_rows(tmp_path: Path) -> None:
    result = invoke("validate", str(SAMPLE_DATA / "onboarding.xlsx"), "--offline", key=None)
    assert result.exit_code == 1
    assert "MissingLogin" in result.output
    assert "Duplicate" not in result.output  # a duplicate needs no action
    assert "duplicate  1" in result.output
