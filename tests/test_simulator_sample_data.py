"""Check that sample_data/ shows what its README promises, against the simulator itself."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from batch_enroll.simulator import Catalog, create_app, load_catalog
from batch_enroll.simulator.catalog import Course, CourseSession, canonical_guid
from tests.conftest import FULL_KEY, READ_ONLY_KEY, SAMPLE_CATALOG, SAMPLE_DATA

HEADER = ["course", "email", "sessions", "action", "department", "first_day", "manager"]


def csv_rows() -> list[list[str]]:
    with (SAMPLE_DATA / "onboarding.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def readme_table() -> dict[int, tuple[str, str]]:
    """Read the README's row table: line -> (status, error code)."""
    readme = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    found: dict[int, tuple[str, str]] = {}
    for text in readme.splitlines():
        if not re.match(r"\| \d+ \|", text):
            continue
        # | line | course | sign-in | sessions | action | what | status | code |; "\|" is a bar
        cells = [c.strip().strip("`") for c in re.split(r"(?<!\\)\|", text)[1:-1]]
        assert len(cells) == 8, text
        found[int(cells[0])] = (cells[6], cells[7])
    assert found, "the README's row table did not parse"
    return found


def test_sample_copies_are_identical() -> None:
    for name in ("catalog.json", "onboarding.csv"):
        packaged = resources.files("batch_enroll").joinpath("data", name).read_bytes()
        assert packaged == (SAMPLE_DATA / name).read_bytes(), name
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert load_catalog(now=now) == load_catalog(SAMPLE_CATALOG, now=now)


def test_catalog_covers_every_case(catalog: Catalog) -> None:
    assert catalog.access_of(FULL_KEY) == "FullControl"
    assert catalog.access_of(READ_ONLY_KEY) == "ReadOnly"
    by_code: dict[str | None, list[Course]] = {}
    by_title: dict[str, list[Course]] = {}
    for course in catalog.courses:
        by_code.setdefault(course.code, []).append(course)
        by_title.setdefault(course.title.casefold(), []).append(course)
    assert len(by_code["DEV-100"]) == 2
    assert len(by_title["time management"]) == 2
    kinds = {(c.course_type, c.session_enrollment_type) for c in catalog.courses}
    assert {
        ("ELearning", None),
        ("TrainingPlan", None),
        ("ClassRoom", "EnrollToSingle"),
        ("Webinar", "EnrollToMultiple"),
        ("ClassRoom", "EnrollToAll"),
    } <= kinds
    assert any(c.waiting_list_enabled for c in catalog.courses)
    assert any(not c.enrollment_without_sessions_allowed for c in catalog.courses)
    assert any(c.enrollment_flow != "AutomaticApproval" for c in catalog.courses)
    assert {(c.is_published, c.is_ended, c.is_deleted) for c in catalog.courses} >= {
        (False, False, False),
        (True, True, False),
        (True, False, True),
    }
    sessions = [s for c in catalog.courses for s in c.sessions]
    assert sum(s.is_group for s in sessions) == 2
    assert all(s.time_zone for s in sessions if not s.is_group)
    now = datetime.now(UTC)
    closed = [s for s in sessions if s.enrollment_deadline and s.enrollment_deadline < now]
    assert len(closed) == 1
    assert len(catalog.users) >= 40
    for user in catalog.users:
        assert user.email.endswith("@contoso.com")
        assert user.login_name == f"i:0#.f|membership|{user.email}"
    assert len(catalog.groups) == 2


def test_xlsx_is_the_csv_twin() -> None:
    rows = csv_rows()
    assert rows[0] == HEADER
    sheet = load_workbook(SAMPLE_DATA / "onboarding.xlsx").worksheets[0]
    cells = [
        ["" if c.value is None else str(c.value) for c in row]
        for row in sheet.iter_rows(max_row=len(rows), max_col=len(HEADER))
    ]
    assert sheet.max_row == len(rows)
    normalised = [row if any(row) else [""] * len(HEADER) for row in rows]
    # Excel stores a code typed as 101 as a number; a reader may see 101.0.
    numbers = [c.value for row in sheet.iter_rows() for c in row if c.data_type == "n" and c.value]
    assert numbers == [101]
    assert [[c.replace("101.0", "101") for c in row] for row in cells] == normalised
    injection = [c for row in sheet.iter_rows() for c in row if str(c.value).startswith("=")]
    assert injection
    assert all(c.data_type == "s" for c in injection)  # text, never a live formula
    data = [r for r in rows[1:] if any(r)]
    assert 45 <= len(data) <= 60
    assert len(data) < len(rows) - 1  # blank lines are there on purpose


# --- a small resolver, as the contract describes it, to drive the simulator row by row -------


def _find_course(cell: str, catalog: Catalog) -> tuple[Course | None, str]:
    guid = canonical_guid(cell)
    if guid is not None:
        course = catalog.course(guid)
        return course, "" if course else "CourseNotFound"
    wanted = cell.strip().casefold()
    for key in (
        lambda c: (c.code or "").strip().casefold(),
        lambda c: " ".join(c.title.split()).casefold(),
    ):
        found = [c for c in catalog.courses if key(c) == " ".join(wanted.split())]
        if len(found) > 1:
            return None, "AmbiguousCourse"
        if found:
            return found[0], ""
    return None, "CourseNotFound"


def _find_session(token: str, course: Course) -> tuple[CourseSession | None, str]:
    guid = canonical_guid(token)
    if guid is not None:
        return next((s for s in course.sessions if s.id == guid), None), ""

    def matches(session: CourseSession) -> bool:
        if session.title.casefold() == token.casefold():
            return True
        local = session.start_date_local or ""
        if re.fullmatch(r"\d{4}-\d\d-\d\d", token):
            return not session.is_group and local[:10] == token
        return bool(local) and local[:16] == token.replace(" ", "T")

    found = [s for s in course.sessions if matches(s)]
    if len(found) == 1:
        return found[0], ""
    return None, "AmbiguousSession" if found else "SessionNotFound"


@pytest.mark.anyio
async def test_every_row_ends_as_the_readme_says(catalog: Catalog) -> None:
    table = readme_table()
    rows = csv_rows()
    data_lines = [n for n, row in enumerate(rows, start=1) if n > 1 and any(row)]
    assert sorted(table) == data_lines  # every row, and only rows, in the table
    app = create_app(catalog)
    seen: set[tuple[str, str]] = set()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://lms.test", auth=("api", FULL_KEY)
    ) as http:
        for line in data_lines:
            course_cell, login, sessions_cell, action, *_ = rows[line - 1]
            status, code = table[line]
            course, problem = _find_course(course_cell, catalog)
            if problem:
                assert (status, code) == ("invalid", problem), line
                continue
            assert course is not None
            if not login:
                assert (status, code) == ("invalid", "MissingLogin"), line
                continue
            key = (course.id, login.casefold())
            if key in seen:
                assert (status, code) == ("duplicate", "Duplicate"), line
                continue
            seen.add(key)
            ids: list[str] = []
            if sessions_cell and course.course_type not in ("ClassRoom", "Webinar"):
                # Sessions where none belong, whatever the cell names.
                assert (status, code) == ("invalid", "InvalidCourseSession"), line
                continue
            for token in (t.strip() for t in re.split(r"[;|]", sessions_cell) if t.strip()):
                session, problem = _find_session(token, course)
                if problem:
                    assert (status, code) == ("invalid", problem), line
                    break
                ids.append(session.id if session else token)
            else:
                path = f"/odata/v2/Courses({course.id})/{'Unenroll' if action else 'Enroll'}"
                body: dict[str, Any] = {"userLoginName": login}
                if ids:
                    body["courseSessionIds"] = ids
                response = await http.post(path, json=body)
                assert (response.status_code, code) == _expected(status, code), (
                    line,
                    response.text,
                )
                if response.status_code >= 400:
                    assert response.json()["error"]["code"] == code, line
                elif response.status_code == 201:
                    got = response.json()["RegistrationStatus"]
                    assert got == ("WaitingList" if status == "waitlisted" else got), line
                    assert got != "WaitingList" or status == "waitlisted", line
    assert app.enrollments_report()["max_created"] == 1


def _expected(status: str, code: str) -> tuple[int, str]:
    """Map the README's verdict to what the simulator answers when the row reaches it."""
    if status in ("enrolled", "waitlisted"):
        return 201, code
    if status == "unenrolled":
        return 204, code
    if status == "already_enrolled":
        return 409, code
    return (404 if code.endswith("NotFound") else 400), code


def test_readme_lists_the_files() -> None:
    readme = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    for name in ("catalog.json", "onboarding.csv", "onboarding.xlsx"):
        assert name in readme
    assert Path(SAMPLE_DATA / "onboarding.xlsx").stat().st_size > 0
