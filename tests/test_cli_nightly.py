"""Nightly operations: --skip-enrolled, offboarding and its guard, --resolve-users, flags, logs."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from tests.conftest import FULL_KEY

FULL = "c46628ad-54b4-4442-a73a-622c9dec63dc"  # FLT-201 Morning, Bergen: full
SAF = "ac661ba6-a93b-4efe-ae1e-a7dec2d0bdcb"  # SAF-101 Workplace Safety Basics


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"LMS365_API_KEY": FULL_KEY}, catch_exceptions=False
    )


@pytest.fixture
def server(sim_app: Callable[..., Any], sim_server: Callable[[Any], Any]) -> Any:
    return sim_server(sim_app(page_size=3))


def enroll_posts(server: Any) -> int:
    return int(httpx.get(f"{server.base_url}/_sim/stats").json()["by_route"]["enroll"])


HIRES = [
    ["SAF-101", "liam.patel@contoso.com"],
    ["SAF-101", "sofia.garcia@contoso.com"],
    ["SAF-101", "ava.thompson@contoso.com"],
    ["ONB-100", "liam.patel@contoso.com"],
    ["ONB-100", "noah.kim@contoso.com"],
]


def test_second_skip_enrolled_run_sends_no_enroll_request(server, tmp_path: Path) -> None:
    sheet = write(tmp_path / "hires.csv", ["course", "email"], HIRES)
    base = ["run", str(sheet), "--base-url", server.base_url, "--no-progress"]
    first = invoke(*base, "--out", str(tmp_path / "r1.csv"), "--skip-enrolled")
    assert first.exit_code == 0, first.output
    # Ava was enrolled before the sheet existed: skipped, not sent.
    assert [r["status"] for r in read(tmp_path / "r1.csv")] == [
        "enrolled",
        "enrolled",
        "skipped_enrolled",
        "enrolled",
        "enrolled",
    ]
    sent = enroll_posts(server)
    assert sent == 4

    second = invoke(*base, "--out", str(tmp_path / "r2.csv"), "--skip-enrolled")
    assert second.exit_code == 0, second.output
    assert enroll_posts(server) == sent  # not one Enroll request
    rows = read(tmp_path / "r2.csv")
    assert {r["status"] for r in rows} == {"skipped_enrolled"}
    assert all(r["registration_date"] for r in rows)


def test_offboarding_unenrolls_and_reports_those_not_enrolled(server, tmp_path: Path) -> None:
    rows = [[*row, "enroll", ""] for row in HIRES[:2] * 1]
    rows += [["SAF-101", "ava.thompson@contoso.com", "unenroll", "Left the company"]]
    rows += [["ONB-100", "mia.johnson@contoso.com", "Unenroll", ""]]
    rows += [[c, f"x{n}@contoso.com", "enroll", ""] for n, c in enumerate(["999"] * 16)]
    sheet = write(tmp_path / "leavers.csv", ["course_id", "login", "action", "message"], rows)
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
    )
    got = read(tmp_path / "r.csv")
    assert [r["status"] for r in got[:4]] == ["enrolled", "enrolled", "unenrolled", "unenrolled"]
    assert got[2]["error_code"] == ""
    assert got[3]["error_code"] == "UserNotEnrolled"  # reported, not an error of the run
    held = httpx.get(f"{server.base_url}/_sim/enrollments").json()["value"]
    assert not any(
        e["CourseId"] == 101 and e["UserLoginName"].endswith("ava.thompson@contoso.com")
        for e in held
    )
    assert result.exit_code == 1  # the sixteen unknown-course rows


def test_unenroll_guard_refuses_before_sending_anything(server, tmp_path: Path) -> None:
    rows = [
        ["SAF-101", f"{name}@contoso.com", "unenroll"] for name in ("ava.thompson", "liam.patel")
    ]
    rows += [["ONB-100", "noah.kim@contoso.com", "enroll"]] * 1
    sheet = write(tmp_path / "wrong.csv", ["course_id", "email", "action"], rows)
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
    )
    assert result.exit_code == 2
    assert "would unenroll 2 users" in result.output
    assert "--max-unenroll 2" in result.output
    stats = httpx.get(f"{server.base_url}/_sim/stats").json()
    assert stats["requests_total"] == 0
    allowed = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--max-unenroll",
        "2",
    )
    assert allowed.exit_code == 0, allowed.output
    also = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r2.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--max-unenroll",
        "70%",
    )
    assert also.exit_code == 0, also.output


def test_resolve_users_sends_lms365_login_names(server, tmp_path: Path) -> None:
    rows = [
        ["SAF-101", "Liam.Patel@contoso.com"],
        ["SAF-101", "ghost@contoso.com"],
        ["SAF-101", "conor.o'brien@contoso.com"],
    ]
    sheet = write(tmp_path / "s.csv", ["course_id", "email"], rows)
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--resolve-users",
    )
    got = read(tmp_path / "r.csv")
    assert [r["status"] for r in got] == ["enrolled", "invalid", "enrolled"]
    assert got[1]["error_code"] == "UserNotFound"
    assert got[0]["resolved_login_name"] == "i:0#.f|membership|liam.patel@contoso.com"
    stats = httpx.get(f"{server.base_url}/_sim/stats").json()
    assert stats["by_route"]["users"] == 3
    assert stats["by_route"]["enroll"] == 2  # the unknown user was never sent
    assert result.exit_code == 1


def test_ignore_max_attendees_flag_and_column(server, tmp_path: Path) -> None:
    rows = [
        ["FLT-201", "noah.kim@contoso.com", FULL, ""],
        ["FLT-201", "ethan.nguyen@contoso.com", FULL, "no"],
    ]
    sheet = write(
        tmp_path / "s.csv", ["course_id", "email", "session", "ignore_max_attendees"], rows
    )
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--ignore-max-attendees",
    )
    got = read(tmp_path / "r.csv")
    # The flag fills empty cells; a row that says "no" keeps its word.
    assert [(r["status"], r["error_code"]) for r in got] == [
        ("enrolled", ""),
        ("invalid", "MaxAttendeesReached"),
    ]
    assert result.exit_code == 1


def test_ignore_enrollment_flow_makes_enrollments_active(server, tmp_path: Path) -> None:
    sheet = write(tmp_path / "s.csv", ["course_id", "email"], [["LDR-400", "noah.kim@contoso.com"]])
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--ignore-enrollment-flow",
    )
    assert result.exit_code == 0, result.output
    assert read(tmp_path / "r.csv")[0]["warnings"] == ""  # not pending approval
    held = httpx.get(f"{server.base_url}/_sim/enrollments").json()["value"]
    mine = [e for e in held if e["CourseId"] == "05f2d963-2061-4c8c-a66e-dab5d7f38755"]  # LDR-400
    assert [e["RegistrationStatus"] for e in mine] == ["Active"]


def test_log_file_and_summary_json(server, tmp_path: Path) -> None:
    sheet = write(
        tmp_path / "s.csv", ["course_id", "email"], [*HIRES, ["SAF-999", "a@contoso.com"]]
    )
    log = tmp_path / "logs" / "requests.jsonl"
    summary_path = tmp_path / "summary.json"
    result = invoke(
        "run",
        str(sheet),
        "--out",
        str(tmp_path / "r.csv"),
        "--base-url",
        server.base_url,
        "--no-progress",
        "--log-file",
        str(log),
        "--summary-json",
        str(summary_path),
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    enrolls = [line for line in lines if line["path"].endswith("/Enroll")]
    assert sorted(line["row"] for line in enrolls) == [2, 3, 4, 5, 6]
    assert {"ts", "method", "http_status", "verdict", "elapsed_ms"} <= set(enrolls[0])
    summary = json.loads(summary_path.read_text())
    assert summary["counts"]["enrolled"] == 4
    assert summary["counts"]["already_enrolled"] == 1
    assert summary["by_error_code"]["CourseNotFound"] == 1
    assert summary["errors"]["CourseNotFound"]["rows"] == [7]
    assert summary["by_course"][SAF]["counts"]["enrolled"] == 2
    assert summary["by_course"][SAF]["title"] == "Workplace Safety Basics"
    assert summary["schema_version"] == 2
    assert summary["exit_code"] == 1
    assert len(summary["input_sha256"]) == 64
    assert summary["started_at"] <= summary["finished_at"]
    assert summary["enrollments_per_second"] > 0
