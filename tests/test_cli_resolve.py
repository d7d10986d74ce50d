"""Sheets as HR writes them, through the real CLI against the simulator over a socket.

Courses by GUID (any case, braces), code and title; sessions by title, date, local start
and group; the version-2 rules (a required session, a waiting list, the enrollment cap);
logins in claims form in any case; and how few requests resolving takes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from batch_enroll.cli import main
from batch_enroll.model import RESOLVED_COLUMNS, RESULT_COLUMNS
from batch_enroll.simulator import Catalog, SimulatorServer, create_app
from tests.helpers import read_results, run_argv

KEY = "resolve-test-full-control-key"


def guid(n: int) -> str:
    """Return test object ``n``'s GUID."""
    return f"5a1e0000-0000-4000-8000-{n:012d}"


SAF, INFO, ONB_A, ONB_B, SHR_A, SHR_B, FLT, HSE, CPR, CAP = (guid(n) for n in range(1, 11))
MORNING, AFTERNOON, BERGEN = guid(101), guid(102), guid(103)
PROGRAMME, THEORY, DRILL = guid(201), guid(202), guid(203)
LUNCH = guid(301)
CAP_LIMIT = 3
PEOPLE = [
    "kay",
    "lee",
    "ann",
    "bob",
    "cat",
    "dan",
    "eve",
    "fay",
    "gus",
    "hal",
    "ivy",
    "jon",
    "kim",
    "max",
    "ned",
    "s1",
    "s2",
    "s3",
]


def course(cid: str, code: str | None, title: str, kind: str = "ELearning", **extra: Any) -> Any:
    return {"Id": cid, "CourseID": code, "Title": title, "CourseType": kind, **extra}


def session(sid: str, title: str, start: str, **extra: Any) -> dict[str, Any]:
    return {
        "Id": sid,
        "Title": title,
        "StartDate": start,
        "EndDate": start.replace("T08", "T11").replace("T12", "T15").replace("T07", "T10"),
        "EnrollmentDeadline": "2027-12-31T00:00:00Z",
        "TimeZone": "W. Europe Standard Time",  # winter: local = UTC + 1 h
        "MaxAttendees": 20,
        "TakenSeatsCount": 2,
        **extra,
    }


def catalog() -> Catalog:
    return Catalog.from_dict(
        {
            "api_keys": [{"key": KEY, "access": "FullControl"}],
            # LMS365 stops at 5,000 people a course; the test tenant at three.
            "max_enrollments_per_course": CAP_LIMIT,
            "courses": [
                course(SAF, "SAF-101", "Workplace Safety Basics"),
                course(INFO, "101", "Information Security Basics"),
                course(ONB_A, "HR-1", "Onboarding"),
                course(ONB_B, "HR-2", "onboarding"),
                course(SHR_A, "SHR", "Shared code A"),
                course(SHR_B, "shr", "Shared code B"),
                course(
                    FLT,
                    "FLT-201",
                    "Forklift Workshop",
                    "ClassRoom",
                    CourseSessionEnrollmentType="EnrollToSingle",
                    IsEnrollmentWithoutSessionsAllowed=False,
                    CourseSessions=[
                        session(MORNING, "Morning, Oslo", "2028-01-10T08:00:00Z"),
                        session(AFTERNOON, "Afternoon, Oslo", "2028-01-10T12:00:00Z"),
                        session(
                            BERGEN,
                            "Morning, Bergen",
                            "2028-01-17T08:00:00Z",
                            MaxAttendees=5,
                            TakenSeatsCount=5,
                        ),
                    ],
                ),
                course(
                    HSE,
                    "HSE-210",
                    "Fire Warden Training",
                    "ClassRoom",
                    CourseSessionEnrollmentType="EnrollToMultiple",
                    CourseSessions=[
                        {
                            "Id": PROGRAMME,
                            "Title": "Fire Warden programme",
                            "IsGroup": True,
                            "EnrollmentDeadline": "2027-12-31T00:00:00Z",
                            "TimeZone": None,
                            "MaxAttendees": None,
                            "TakenSeatsCount": 0,
                        },
                        session(THEORY, "Theory", "2028-02-07T07:00:00Z", GroupId=PROGRAMME),
                        session(DRILL, "Drill", "2028-02-08T07:00:00Z", GroupId=PROGRAMME),
                    ],
                ),
                course(
                    CPR,
                    "CPR-150",
                    "CPR Refresher",
                    "ClassRoom",
                    CourseSessionEnrollmentType="EnrollToSingle",
                    WaitingListEnabled=True,
                    CourseSessions=[
                        session(
                            LUNCH,
                            "Lunch session",
                            "2028-01-12T12:00:00Z",
                            MaxAttendees=2,
                            TakenSeatsCount=2,
                        )
                    ],
                ),
                course(CAP, "CAP-1", "Popular Course"),
            ],
            "users": [
                {
                    "LoginName": f"i:0#.f|membership|{name}@contoso.com",
                    "Email": f"{name}@contoso.com",
                    "Title": name.title(),
                }
                for name in PEOPLE
            ],
            "enrollments": [
                # The popular course is at the cap before the run.
                *(
                    {"CourseId": CAP, "UserLoginName": f"i:0#.f|membership|{name}@contoso.com"}
                    for name in ("s1", "s2", "s3")
                ),
                {"CourseId": INFO, "UserLoginName": "i:0#.f|membership|kim@contoso.com"},
                {"CourseId": INFO, "UserLoginName": "i:0#.f|membership|max@contoso.com"},
            ],
        }
    )


@pytest.fixture
def server_for() -> Iterator[Callable[..., SimulatorServer]]:
    started: list[SimulatorServer] = []

    def start(**kwargs: Any) -> SimulatorServer:
        server = SimulatorServer(create_app(catalog(), **kwargs)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def write(path: Path, rows: list[list[str]], header: tuple[str, ...] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or ("Course", "Email", "Sessions"))
        writer.writerows(rows)
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"LMS365_API_KEY": KEY}, catch_exceptions=False)


def stats(server: SimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{server.base_url}/_sim/stats").json()  # type: ignore[no-any-return]


def held(server: SimulatorServer) -> dict[str, Any]:
    return httpx.get(f"{server.base_url}/_sim/enrollments").json()  # type: ignore[no-any-return]


# (course cell, login, sessions cell) -> (status, error code, sessions sent, what the message says)
SHEET: list[tuple[tuple[str, str, str], tuple[str, str, str, str]]] = [
    (("{" + SAF.upper() + "}", "kay@contoso.com", ""), ("enrolled", "", "", "")),
    (("saf-101", "I:0#.F|Membership|LEE@contoso.com", ""), ("enrolled", "", "", "")),
    (("  workplace   SAFETY basics ", "ann@contoso.com", ""), ("enrolled", "", "", "")),
    (
        ("Workplace Safety Basics", "i:0#.f|membership|Kay@Contoso.com", ""),
        ("duplicate", "Duplicate", "", "row 2"),
    ),
    (("ONBOARDING", "bob@contoso.com", ""), ("invalid", "AmbiguousCourse", "", ONB_B)),
    (("shr", "bob@contoso.com", ""), ("invalid", "AmbiguousCourse", "", SHR_A)),
    (("Basket Weaving", "bob@contoso.com", ""), ("invalid", "CourseNotFound", "", "Basket")),
    (("FLT-201", "cat@contoso.com", "morning, oslo"), ("enrolled", "", MORNING, "")),
    (("Forklift Workshop", "dan@contoso.com", "2028-01-10 13:00"), ("enrolled", "", AFTERNOON, "")),
    (("FLT-201", "eve@contoso.com", "2028-01-10"), ("invalid", "AmbiguousSession", "", "13:00")),
    (("FLT-201", "fay@contoso.com", "2028-01-17"), ("invalid", "MaxAttendeesReached", BERGEN, "")),
    (("FLT-201", "gus@contoso.com", ""), ("invalid", "SessionRequired", "", "requires")),
    (("FLT-201", "hal@contoso.com", "Night, Oslo"), ("invalid", "SessionNotFound", "", "Bergen")),
    (("HSE-210", "ivy@contoso.com", "fire warden PROGRAMME"), ("enrolled", "", PROGRAMME, "")),
    (("HSE-210", "jon@contoso.com", "2028-02-08 08:00 | Theory"), ("enrolled", "", "", "")),
    (("CPR-150", "jon@contoso.com", "Lunch session"), ("waitlisted", "", LUNCH, "")),
    (("CAP-1", "kay@contoso.com", ""), ("failed", "MaxEnrollmentsReached", "", "")),
]


def test_every_kind_of_cell_resolves_and_gets_its_outcome(server_for, tmp_path: Path) -> None:
    server = server_for()
    sheet = write(tmp_path / "hires.csv", [list(cells) for cells, _ in SHEET])
    out = tmp_path / "results.csv"
    summary_path = tmp_path / "summary.json"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--no-progress",
        "--summary-json",
        str(summary_path),
    )
    assert result.exit_code == 1, result.output
    rows = read_results(out)
    assert list(rows[0]) == [*RESULT_COLUMNS, *RESOLVED_COLUMNS]
    assert [(r["status"], r["error_code"]) for r in rows] == [(w[0], w[1]) for _, w in SHEET]
    for row, (_, (_, _, sent, said)) in zip(rows, SHEET, strict=True):
        if sent:
            assert row["course_session_ids"] == sent, row
        assert said in row["error_message"], row
    # The course cell stays as written (normalised); what it became comes last.
    assert rows[0]["course_id"] == SAF
    assert rows[1]["course_id"] == "saf-101"
    assert [rows[i]["lms_course_id"] for i in range(3)] == [SAF] * 3
    assert rows[2]["course_title"] == "Workplace Safety Basics"
    assert rows[7]["session_titles"] == "Morning, Oslo (2028-01-10 09:00)"
    assert rows[8]["session_titles"] == "Afternoon, Oslo (2028-01-10 13:00)"
    assert rows[13]["session_titles"] == "Fire Warden programme (session group)"
    assert rows[14]["course_session_ids"] == f"{DRILL};{THEORY}"
    assert "waiting list" in rows[15]["warnings"]
    assert "5,000" in result.output  # the cap, in plain words
    assert "Waitlisted: 1 row" in result.output
    # Nobody was enrolled twice; invalid rows never reached LMS365.
    report = held(server)
    assert report["max_created"] == 1
    sent = stats(server)["by_route"]["enroll"]
    assert sent == sum(r["status"] in ("enrolled", "waitlisted", "failed") for r in rows)
    waiting = [e for e in report["value"] if e["CourseId"] == CPR]
    assert [e["RegistrationStatus"] for e in waiting] == ["WaitingList"]
    summary = json.loads(summary_path.read_text())
    assert summary["counts"]["waitlisted"] == 1
    assert summary["exit_code"] == 1
    assert summary["by_course"][SAF]["counts"] == {"enrolled": 3, "duplicate": 1}
    assert summary["by_course"][SAF]["title"] == "Workplace Safety Basics"
    assert "Basket Weaving" in summary["by_course"]


def test_a_waitlisted_row_is_a_success_for_the_exit_code(server_for, tmp_path: Path) -> None:
    server = server_for()
    sheet = write(tmp_path / "s.csv", [["CPR-150", "ann@contoso.com", "Lunch session"]])
    result = invoke(
        "run", str(sheet), "--out", str(tmp_path / "r.csv"), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    assert read_results(tmp_path / "r.csv")[0]["status"] == "waitlisted"


def test_at_most_one_course_request_per_distinct_cell(server_for, tmp_path: Path) -> None:
    server = server_for()
    names = [f"{p}@contoso.com" for p in PEOPLE[:10]]
    cells = ["SAF-101", "Workplace Safety Basics", "101", "HR-1", SAF.upper()]
    rows = [[cell, name, ""] for cell in cells for name in names] * 3  # 150 rows
    sheet = write(tmp_path / "many.csv", rows)
    result = invoke(
        "validate", str(sheet), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    by_route = stats(server)["by_route"]
    # Four cells to look up: the course list once, not a request per row or per cell.
    assert by_route["courses"] == 1
    # Then each course found, once: SAF (three ways), INFO and ONB_A.
    assert by_route["course"] == 3
    assert by_route["enroll"] == 0
    report = read_results(tmp_path / "r.csv")
    assert {r["lms_course_id"] for r in report} == {SAF, INFO, ONB_A}


def test_a_single_cell_is_looked_up_by_one_filtered_read(server_for, tmp_path: Path) -> None:
    server = server_for(page_size=2)  # a catalogue of many pages
    sheet = write(
        tmp_path / "one.csv", [["HSE-210", f"{p}@contoso.com", "Theory"] for p in PEOPLE[:5]]
    )
    result = invoke(
        "validate", str(sheet), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    assert stats(server)["by_route"]["courses"] == 1
    assert {r["course_session_ids"] for r in read_results(tmp_path / "r.csv")} == {THEORY}


def test_two_cells_in_a_long_catalogue_ask_per_cell(server_for, tmp_path: Path) -> None:
    server = server_for(page_size=2)  # 10 courses: 5 pages
    sheet = write(
        tmp_path / "two.csv",
        [["HSE-210", "ann@contoso.com", ""], ["Popular Course", "bob@x.io", ""]],
    )
    result = invoke(
        "validate", str(sheet), "--report", str(tmp_path / "r.csv"), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    # The first page showed four more to go: two filtered reads cost less than the rest.
    assert stats(server)["by_route"]["courses"] == 3
    assert [r["lms_course_id"] for r in read_results(tmp_path / "r.csv")] == [HSE, CAP]


def test_excel_numeric_codes_and_date_cells_resolve(server_for, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    server = server_for()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["course_id", "user_login_name", "sessions"])
    sheet.append([101.0, "ann@contoso.com"])
    sheet.append([101, "kim@contoso.com"])  # enrolled before the run
    # A start typed into Excel is a date-time cell, and a day a date cell.
    sheet.append(["FLT-201", "bob@contoso.com", datetime(2028, 1, 10, 13, 0)])
    sheet.append(["HSE-210", "cat@contoso.com", date(2028, 2, 8)])
    book.save(tmp_path / "hires.xlsx")
    out = tmp_path / "r.csv"
    result = invoke(
        "run", str(tmp_path / "hires.xlsx"), "--out", str(out), "--base-url", server.base_url
    )
    assert result.exit_code == 0, result.output
    rows = read_results(out)
    assert [(r["course_id"], r["status"], r["lms_course_id"]) for r in rows] == [
        ("101", "enrolled", INFO),
        ("101", "already_enrolled", INFO),
        ("FLT-201", "enrolled", FLT),
        ("HSE-210", "enrolled", HSE),
    ]
    assert [r["course_session_ids"] for r in rows[2:]] == [AFTERNOON, DRILL]


def test_claims_logins_in_any_case_match_what_lms365_stores(server_for, tmp_path: Path) -> None:
    server = server_for()
    # kim and max were enrolled in INFO before the run, stored in claims form.
    sheet = write(
        tmp_path / "s.csv",
        [
            ["101", "KIM@CONTOSO.COM", "", "enroll"],
            ["101", "I:0#.F|MEMBERSHIP|Max@Contoso.com", "", "unenroll"],
            ["101", "ned@contoso.com", "", ""],
        ],
        header=("Course", "Email", "Sessions", "Action"),
    )
    out = tmp_path / "r.csv"
    result = invoke(
        *run_argv(sheet, out, server.base_url),
        "--skip-enrolled",
        "--max-unenroll",
        "1",
    )
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in read_results(out)] == [
        "skipped_enrolled",
        "unenrolled",
        "enrolled",
    ]
    assert stats(server)["by_route"]["enroll"] == 1


def test_an_unanswered_enroll_in_claims_form_is_found_not_resent(
    server_for, tmp_path: Path
) -> None:
    server = server_for(drop_rate=1.0, seed=1)  # every Enroll lands, then the answer is lost
    sheet = write(
        tmp_path / "s.csv",
        [
            ["SAF-101", "I:0#.F|Membership|Ann@Contoso.com", ""],
            ["FLT-201", "bob@contoso.com", "Theory"],
        ],
    )
    out = tmp_path / "r.csv"
    result = invoke("run", str(sheet), "--out", str(out), "--base-url", server.base_url)
    rows = read_results(out)
    assert rows[0]["status"] == "enrolled", result.output
    assert held(server)["max_created"] == 1
    assert stats(server)["by_route"]["enroll"] == 1
    assert rows[1]["error_code"] == "SessionNotFound"
