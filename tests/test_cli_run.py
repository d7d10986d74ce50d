"""``batch-enroll run`` end to end: the real CLI against the simulator over a socket."""

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
from batch_enroll.model import RESOLVED_COLUMNS, RESULT_COLUMNS
from tests.conftest import FULL_KEY, READ_ONLY_KEY
from tests.helpers import read_results, run_argv

# Sessions of the sample tenant's Forklift Safety Workshop (FLT-201, one session per learner).
OPEN = "592dbabc-4fcb-4c80-8095-50b6e2a5cc99"  # Afternoon, Oslo
FULL = "c46628ad-54b4-4442-a73a-622c9dec63dc"  # Morning, Bergen
# The webinar series (CUS-300, several sessions per learner).
PART1 = "1da8e4e4-0c01-4de7-af77-17d0cd75246d"
PART2 = "d838a3e3-600e-40cf-87aa-2dfff7f9d8b4"
GROUP = "c:0o.c|federateddirectoryclaimprovider|ee7d702e-d833-4741-b2ff-5a15e9d6876c"

# (course, login, sessions, note) -> expected (status, error_code)
SHEET: list[tuple[tuple[str, str, str, str], tuple[str, str]]] = [
    (("SAF-101", "liam.patel@contoso.com", "", "=HYPERLINK()"), ("enrolled", "")),
    (("SAF-101", "ava.thompson@contoso.com", "", ""), ("already_enrolled", "UserAlreadyEnrolled")),
    (("FLT-201", "sofia.garcia@contoso.com", "afternoon, oslo", ""), ("enrolled", "")),
    (
        ("FLT-201", "noah.kim@contoso.com", "Morning, Bergen", ""),
        ("invalid", "MaxAttendeesReached"),
    ),
    (("FLT-201", "ethan.nguyen@contoso.com", "Evening, Oslo", ""), ("invalid", "SessionClosed")),
    (
        ("CUS-300", "i:0#.f|membership|noah.kim@contoso.com", f"{PART1};{PART2}", ""),
        ("enrolled", ""),
    ),
    (("First Aid Certification", GROUP, "", ""), ("enrolled", "")),
    (("saf-101", "LIAM.PATEL@contoso.com", "", ""), ("duplicate", "Duplicate")),
    (("SAF-999", "lucas.muller@contoso.com", "", ""), ("invalid", "CourseNotFound")),
    (("#N/A", "lucas.muller@contoso.com", "", ""), ("invalid", "InvalidCourseId")),
    (("SAF-101", "nobody@contoso.com", "", ""), ("failed", "UserNotFound")),
    (("XLS-200", "lucas.muller@contoso.com", "", ""), ("invalid", "CourseNotAvailable")),
    (("FLT-201", "amelia.brown@contoso.com", "", ""), ("enrolled", "")),
    (("SAF-101", "oliver.smith@contoso.com", OPEN, ""), ("invalid", "InvalidCourseSession")),
    (("FLT-201", "harper.davis@contoso.com", f"{OPEN} {FULL}", ""), ("invalid", "TooManySessions")),
    (("ONB-100", "harper.davis@contoso.com", "", ""), ("enrolled", "")),
    (("SAF-101", "kay smith@contoso.com", "", ""), ("invalid", "InvalidLogin")),
]


def write_sheet(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Course ID", "E-mail", "Sessions", "Note"])
        writer.writerows(rows)
    return path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture
def live(sim_app: Callable[..., Any], sim_server: Callable[[Any], Any]) -> Callable[..., Any]:
    """Start a simulator over a real socket: ``app, server = live(latency_ms=5)``."""

    def start(**kwargs: Any) -> tuple[Any, Any]:
        app = sim_app(**kwargs)
        return app, sim_server(app)

    return start


def stats(server: Any) -> dict[str, Any]:
    return httpx.get(f"{server.base_url}/_sim/stats").json()  # type: ignore[no-any-return]


def test_every_row_gets_the_status_the_contract_implies(live, tmp_path: Path) -> None:
    _, server = live(latency_ms=2)
    sheet = write_sheet(tmp_path / "hires.csv", [row for row, _ in SHEET])
    out = tmp_path / "results.csv"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        env={"LMS365_API_KEY": FULL_KEY},
    )
    assert result.exit_code == 1, result.output
    rows = read_results(out)
    assert list(rows[0].keys()) == [*RESULT_COLUMNS, "Note", *RESOLVED_COLUMNS]
    assert [r["row"] for r in rows] == [str(n) for n in range(2, 2 + len(SHEET))]
    assert [(r["status"], r["error_code"]) for r in rows] == [want for _, want in SHEET]
    enrolled = [r for r in rows if r["status"] == "enrolled"]
    assert all(r["registration_date"].endswith("Z") and r["enrollment_id"] for r in enrolled)
    assert rows[0]["Note"] == "'=HYPERLINK()"  # shown, never run, by a spreadsheet
    assert rows[5]["course_session_ids"] == f"{PART1};{PART2}"
    # The session named by its title went out as its GUID, and the row says what it became.
    assert rows[2]["course_session_ids"] == OPEN
    assert rows[2]["lms_course_id"] == "b885f275-273e-419c-9f53-dc399e6f2780"
    assert rows[2]["course_title"] == "Forklift Safety Workshop"
    assert rows[2]["session_titles"] == "Afternoon, Oslo (2028-03-06 13:00)"
    assert rows[7]["course_id"] == "saf-101"  # as written
    assert "pick" in rows[12]["warnings"]
    # Each valid row reached LMS365 exactly once; invalid ones never did.
    creations = httpx.get(f"{server.base_url}/_sim/enrollments").json()
    made = stats(server)["enrollments_created"]
    assert made == len(enrolled)
    assert creations["max_created"] == 1
    assert all(entry["count"] == 1 for entry in creations["created"])
    assert "enrolled" in result.output
    assert "UserNotFound" in result.output


def test_faults_and_throttling_still_enroll_each_row_once(live, tmp_path: Path) -> None:
    _, server = live(latency_ms=1, fault_rate=0.2, drop_rate=0.1, rate_limit=200, seed=11)
    users = [
        "liam.patel",
        "sofia.garcia",
        "noah.kim",
        "mia.johnson",
        "ethan.nguyen",
        "isabella.rossi",
        "grace.hill",
        "amelia.brown",
        "oliver.smith",
        "harper.davis",
        "elijah.wilson",
        "evelyn.martin",
        "james.lee",
        "abigail.clark",
        "benjamin.lewis",
    ]
    rows = [
        (course, f"{u}@contoso.com", "", "") for course in ("ONB-100", "LDR-400") for u in users
    ]
    sheet = write_sheet(tmp_path / "flaky.csv", rows)
    out = tmp_path / "flaky-results.csv"
    summary_path = tmp_path / "summary.json"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--api-key",
        FULL_KEY,
        "--no-progress",
        "--max-retries",
        "10",
        "--summary-json",
        str(summary_path),
    )
    assert result.exit_code == 0, result.output
    results = read_results(out)
    assert [r["status"] for r in results] == ["enrolled"] * len(rows)
    assert stats(server)["enrollments_created"] == len(rows)
    assert stats(server)["faults_injected"] > 0
    summary = json.loads(summary_path.read_text())
    assert summary["counts"]["enrolled"] == len(rows)
    assert summary["exit_code"] == 0
    # LDR-400 needs approval: LMS365 holds those enrollments as pending.
    assert all("approval" in r["warnings"] for r in results[len(users) :])


def test_wrong_key_stops_at_once_with_exit_3(live, tmp_path: Path) -> None:
    _, server = live()
    sheet = write_sheet(tmp_path / "s.csv", [row for row, _ in SHEET[:3]])
    out = tmp_path / "r.csv"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        env={"LMS365_API_KEY": "wrong-key-0000"},
    )
    assert result.exit_code == 3
    assert "401" in result.output
    assert "wrong-key-0000" not in result.output
    assert {r["status"] for r in read_results(out)} == {"not_attempted"}
    assert stats(server)["by_route"]["enroll"] == 0


def test_read_only_key_stops_with_exit_3(live, tmp_path: Path) -> None:
    _, server = live()
    sheet = write_sheet(tmp_path / "s.csv", [row for row, _ in SHEET[:3]])
    out = tmp_path / "r.csv"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--concurrency",
        "1",
        env={"LMS365_API_KEY": READ_ONLY_KEY},
    )
    assert result.exit_code == 3
    assert "read-only" in result.output
    statuses = [r["status"] for r in read_results(out)]
    assert statuses.count("failed") == 1
    assert set(statuses) <= {"failed", "not_attempted", "already_enrolled"}


def test_header_only_sheet_is_not_an_error(live, tmp_path: Path) -> None:
    _, server = live()
    sheet = write_sheet(tmp_path / "empty.csv", [])
    out = tmp_path / "r.csv"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--api-key",
        FULL_KEY,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines() == [
        ",".join([*RESULT_COLUMNS, "Note", *RESOLVED_COLUMNS])
    ]


def test_unreadable_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "nope.csv"
    bad.write_text("name,dept\nkay,HR\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(bad), "--base-url", "http://127.0.0.1:9", "--api-key", "k"]
    )
    assert result.exit_code == 2
    assert "nope.csv" in result.output
    assert "course_id" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(tmp_path / "missing.csv"), "--api-key", "k"])
    assert result.exit_code == 2
    assert "missing.csv" in result.output


def test_plain_http_only_to_localhost(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "s.csv", [row for row, _ in SHEET[:1]])
    result = invoke("run", str(sheet), "--base-url", "http://lms.example.com", "--api-key", "k")
    assert result.exit_code == 2
    assert "https://" in result.output


def test_missing_api_key_is_exit_2(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "s.csv", [row for row, _ in SHEET[:1]])
    result = invoke("run", str(sheet), "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "LMS365_API_KEY" in result.output


def test_region_picks_the_regional_host() -> None:
    from batch_enroll.options import resolve_base_url

    assert resolve_base_url(None, "uk") == "https://uk-api.365.systems"
    assert resolve_base_url(None, "gcc") == "https://va-api.usgcc365.systems"
    assert resolve_base_url(None, None) == "https://api.365.systems"


def test_xlsx_input_gives_the_same_results_as_csv(live, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    _, server = live()
    rows = [row for row, _ in SHEET[:4]]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["course_id", "user_login_name", "course_session_ids", "Note"])
    for course, login, sessions, note in rows:
        sheet.append([course, login, sessions, note])
    # A numeric course code Excel holds as a number: the cell reads 101.0.
    sheet.append([101.0, "james.lee@contoso.com", "", ""])
    book.save(tmp_path / "hires.xlsx")
    out = tmp_path / "x.csv"
    result = invoke(
        *run_argv(tmp_path / "hires.xlsx", out, server.base_url),
        "--api-key",
        FULL_KEY,
        "--no-progress",
    )
    assert result.exit_code == 1, result.output
    results = read_results(out)
    assert [r["status"] for r in results] == [want[0] for _, want in SHEET[:4]] + ["enrolled"]
    assert results[-1]["course_id"] == "101"
    assert results[-1]["course_title"] == "Information Security Basics"


def test_an_unreachable_host_is_said_once_and_nothing_is_sent(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sheet = write_sheet(tmp_path / "s.csv", [row for row, _ in SHEET[:3]])
    out = tmp_path / "r.csv"
    result = invoke(
        *run_argv(sheet, out, f"http://127.0.0.1:{port}"),
        "--api-key",
        FULL_KEY,
        "--no-progress",
        "--max-retries",
        "1",
    )
    assert result.exit_code == 1
    assert "could not reach LMS365" in result.output
    assert [r["status"] for r in read_results(out)] == ["not_attempted"] * 3


def test_region_outranks_the_base_url_environment_variable(tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "s.csv", [("#N/A", "x@contoso.com", "", "")])
    both = invoke(
        "run", str(sheet), "--region", "uk", "--base-url", "https://a.example", "--api-key", "k"
    )
    assert both.exit_code == 2
    assert "not both" in both.output
    # Only invalid rows: nothing is sent, so no host is contacted.
    result = CliRunner().invoke(
        main,
        ["run", str(sheet), "--region", "uk", "--out", str(tmp_path / "r.csv"), "--no-progress"],
        env={"LMS365_API_KEY": "k", "LMS365_BASE_URL": "http://127.0.0.1:9"},
    )
    assert result.exit_code == 1, result.output
    assert "not both" not in result.output
