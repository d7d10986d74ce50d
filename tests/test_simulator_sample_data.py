"""Check that sample_data/ shows what its README promises, against the simulator itself."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from batch_enroll.simulator import Catalog, create_app, load_catalog
from tests.conftest import FULL_KEY, READ_ONLY_KEY, SAMPLE_CATALOG, SAMPLE_DATA

HEADER = [
    "course_id",
    "user_login_name",
    "course_session_ids",
    "department",
    "start_date",
    "manager",
]


def csv_rows() -> list[list[str]]:
    with (SAMPLE_DATA / "onboarding.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_catalog_copies_are_identical() -> None:
    packaged = resources.files("batch_enroll").joinpath("data", "catalog.json").read_bytes()
    assert packaged == SAMPLE_CATALOG.read_bytes()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert load_catalog(now=now) == load_catalog(SAMPLE_CATALOG, now=now)


def test_catalog_covers_every_case(catalog: Catalog) -> None:
    assert catalog.access_of(FULL_KEY) == "FullControl"
    assert catalog.access_of(READ_ONLY_KEY) == "ReadOnly"
    kinds = {
        c.id: (c.course_type, c.session_enrollment_type, len(c.sessions)) for c in catalog.courses
    }
    assert kinds[101] == ("ELearning", None, 0)
    assert kinds[102] == ("TrainingPlan", None, 0)
    assert kinds[103] == ("ClassRoom", "EnrollToSingle", 3)
    assert kinds[104] == ("Webinar", "EnrollToMultiple", 2)
    assert kinds[105] == ("ClassRoom", "EnrollToAll", 2)
    flags = {c.id: (c.is_published, c.is_ended, c.is_deleted) for c in catalog.courses}
    assert flags[106] == (False, False, False)
    assert flags[107] == (True, True, False)
    assert flags[108] == (True, False, True)
    flows = {c.id for c in catalog.courses if c.enrollment_flow != "AutomaticApproval"}
    assert flows == {109}

    now = datetime.now(UTC)
    forklift = catalog.course(103)
    assert forklift is not None
    full, late, open_ = forklift.sessions
    assert full.attendees_count == full.max_attendees
    assert late.registration_deadline is not None
    assert late.registration_deadline < now
    for session in (open_, *catalog.courses[3].sessions, *catalog.courses[4].sessions):
        assert session.registration_deadline is not None
        assert session.registration_deadline > now
        assert session.max_attendees is not None
        assert session.attendees_count < session.max_attendees

    assert len(catalog.users) >= 40
    for user in catalog.users:
        assert user.email.endswith("@contoso.com")
        assert user.login_name == f"i:0#.f|membership|{user.email}"
    assert len(catalog.groups) == 2
    assert next((e.course_id, e.user_login_name) for e in catalog.enrollments) == (
        101,
        "i:0#.f|membership|ava.thompson@contoso.com",
    )


def test_xlsx_is_the_csv_twin() -> None:
    rows = csv_rows()
    assert rows[0] == HEADER
    sheet = load_workbook(SAMPLE_DATA / "onboarding.xlsx").worksheets[0]
    cells = [
        ["" if c.value is None else str(c.value) for c in row]
        for row in sheet.iter_rows(max_row=len(rows), max_col=len(HEADER))
    ]
    assert sheet.max_row == len(rows)
    normalised = [row if row else [""] * len(HEADER) for row in rows]
    assert cells == normalised
    injection = [c for row in sheet.iter_rows() for c in row if str(c.value).startswith("=")]
    assert injection
    assert all(c.data_type == "s" for c in injection)  # text, never a live formula
    data = [r for r in rows[1:] if any(r)]
    assert 45 <= len(data) <= 60
    assert len(data) < len(rows) - 1  # blank lines are there on purpose


# What the server answers for each data row when sent as is (sessions split on ";").
# A client may stop some rows before sending (bad course id, empty login, malformed GUID,
# too many sessions), but what reaches the server must end like this.
EXPECTED = {
    ("101", "ava.thompson@contoso.com"): "UserAlreadyEnrolled",
    ("999", "zoe.baker@contoso.com"): "CourseNotFound",
    ("ELR-101", "samuel.nelson@contoso.com"): "BadRequest",
    ("101", ""): "BadRequest",
    ("101", "lily carter@contoso.com"): "UserNotFound",
    ("103", "david.mitchell@contoso.com"): "InvalidCourseSession",
    ("103", "hannah.perez@contoso.com"): "InvalidCourseSession",
    ("103", "joseph.roberts@contoso.com"): "MaxAttendeesReached",
    ("103", "nora.turner@contoso.com"): "SessionClosed",
    ("103", "owen.phillips@contoso.com"): "TooManySessions",
    ("101", "riley.campbell@contoso.com"): "InvalidCourseSession",
    ("106", "wyatt.parker@contoso.com"): "CourseNotAvailable",
    ("107", "aria.evans@contoso.com"): "CourseNotAvailable",
    ("108", "leo.edwards@contoso.com"): "CourseNotAvailable",
    ("101", "pat.unknown@contoso.com"): "UserNotFound",
}


@pytest.mark.anyio
async def test_every_row_ends_as_the_readme_says(catalog: Catalog) -> None:
    app = create_app(catalog)
    outcomes: dict[tuple[str, str], list[str]] = {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://lms.test", auth=("api", FULL_KEY)
    ) as http:
        for course, login, sessions, *_ in (r for r in csv_rows()[1:] if any(r)):
            ids = [s.strip() for s in sessions.split(";") if s.strip()]
            response = await http.post(
                f"/odata/v2/Courses({course})/Enroll",
                json={"userLoginName": login, "courseSessionIds": ids},
            )
            code = response.json()["error"]["code"] if response.status_code >= 400 else ""
            if code == "" and response.json()["RegistrationStatus"] == "Pending":
                code = "Pending"
            outcomes.setdefault((course, login), []).append(code)

    assert set(EXPECTED) <= set(outcomes)
    for (course, login), codes in outcomes.items():
        default = "Pending" if course == "109" else ""  # 109 needs a manager's approval
        assert codes[0] == EXPECTED.get((course, login), default), (course, login)
    assert outcomes[("101", "liam.patel@contoso.com")] == ["", "UserAlreadyEnrolled"]
    assert outcomes[("103", "jack.adams@contoso.com")] == [""]  # course only, no session
    assert app.enrollments_report()["max_created"] == 1


def test_readme_lists_the_files() -> None:
    readme = (SAMPLE_DATA / "README.md").read_text(encoding="utf-8")
    for name in ("catalog.json", "onboarding.csv", "onboarding.xlsx"):
        assert name in readme
    assert Path(SAMPLE_DATA / "onboarding.xlsx").stat().st_size > 0
