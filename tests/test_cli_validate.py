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

FRIDAY = "51d954e5-3506-44c6-a102-91111fd2fc55"
FULL = "00576084-32b5-4891-b238-1f6f849e82b4"

ROWS = [
    ["101", "liam.patel@contoso.com", ""],
    ["103", "noah.kim@contoso.com", FULL],
    ["103", "sofia.garcia@contoso.com", ""],
    ["101", "liam.patel@contoso.com", ""],
    ["abc", "x@contoso.com", ""],
    ["999", "x@contoso.com", ""],
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
    assert stats["by_route"]["course"] == 3  # once per distinct course
    assert "MaxAttendeesReached x1 (rows 3)" in result.output
    assert "what to do" in result.output


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
    assert "Offline check only" in result.output


def test_online_validation_without_a_key_says_how(tmp_path: Path) -> None:
    result = invoke("validate", str(sheet(tmp_path)), key=None)
    assert result.exit_code == 2
    assert "--offline" in result.output


def test_sample_sheet_validates_offline_with_its_bad_rows(tmp_path: Path) -> None:
    result = invoke("validate", str(SAMPLE_DATA / "onboarding.xlsx"), "--offline", key=None)
    assert result.exit_code == 1
    assert "InvalidCourseId" in result.output
