"""Check that the simulator follows the LMS365 API contract v2, in-process and on a socket."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from batch_enroll.simulator import (
    Catalog,
    CatalogError,
    Simulator,
    SimulatorServer,
    create_app,
    load_catalog,
)
from batch_enroll.simulator.catalog import format_datetime
from tests.conftest import FULL_KEY, READ_ONLY_KEY

pytestmark = pytest.mark.anyio

# Fixed ids in sample_data/catalog.json (its README lists them).
SAF = "ac661ba6-a93b-4efe-ae1e-a7dec2d0bdcb"  # SAF-101 Workplace Safety Basics, ELearning
ONB = "2eeca7f8-a911-4be1-8c39-394be12ad34a"  # ONB-100, TrainingPlan
FLT = "b885f275-273e-419c-9f53-dc399e6f2780"  # FLT-201 Forklift, ClassRoom EnrollToSingle
CUS = "69d21e03-8150-46b8-8f13-c0594c57fe1f"  # CUS-300 webinar, EnrollToMultiple, a group
FA = "c5505fec-6bea-4400-8961-ed16f3b27ca6"  # FA-110 First Aid, EnrollToAll
CPR = "1157ea86-25d7-4eb8-b92f-bb97741347ff"  # CPR-150, waiting list
HSE = "79b990ae-9c32-4e90-986d-2751587700f8"  # HSE-210, a session is required, a group
XLS = "20527020-3230-4916-9db0-b95288461530"  # unpublished
CMP = "5aadf7e2-dfee-4e98-8f70-3c40f3670678"  # ended
EXP = "b965a8aa-93f3-4668-be24-63cac2f74c3f"  # deleted
LDR = "05f2d963-2061-4c8c-a66e-dab5d7f38755"  # LineManagerApproval, UnenrollDisabled
NO_COURSE = "0f5e8d7c-3b2a-4c19-8e6d-5a4b3c2d1e0f"

OSLO_AM = "e8143a66-ac86-4d07-ab61-8d29bab68b39"  # FLT, 2028-03-06 09:00 Oslo
OSLO_PM = "592dbabc-4fcb-4c80-8095-50b6e2a5cc99"  # FLT, 2028-03-06 13:00 Oslo
BERGEN = "c46628ad-54b4-4442-a73a-622c9dec63dc"  # FLT, full, no waiting list
EVENING = "f1b70656-1acc-4c8f-a8ae-bf59ce25cb07"  # FLT, enrollment deadline passed
SERIES = "ed796c71-4edc-43a4-884a-0842adc8f543"  # CUS group of PART1 and PART2
PART1 = "1da8e4e4-0c01-4de7-af77-17d0cd75246d"
PART2 = "d838a3e3-600e-40cf-87aa-2dfff7f9d8b4"
DAY1 = "052c0571-97ab-4f7d-ab90-d43428e47e7c"  # FA
DAY2 = "9eb7bb9a-60f5-4d59-8a00-0046c3ceb2f0"  # FA
LUNCH = "55f7751f-23d9-402e-975d-6333b4b8b3eb"  # CPR, full, waiting list
CPR_EVENING = "4e759ce9-a499-479d-bcc4-3dedd8988b6d"  # CPR, open
PROGRAMME = "23fc62c1-ea8c-4539-85e7-78af7f126175"  # HSE group of THEORY and DRILL
THEORY = "0a8972a8-e54b-4021-8abf-d940d127ec15"
DRILL = "dc800425-e6ce-4d49-b872-a79066411282"
TRONDHEIM = "1b9e42bc-01c3-4f75-a069-5caa668ba47c"

GROUP_LOGIN = "c:0o.c|federateddirectoryclaimprovider|ee7d702e-d833-4741-b2ff-5a15e9d6876c"
WAREHOUSE_GROUP = "bea8e523-eadb-4441-a38e-8073a99db125"
CLAIMS = "i:0#.f|membership|"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
UTC_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,7})?Z")

MakeApp = Callable[..., Simulator]


@asynccontextmanager
async def client(
    app: Simulator, *, key: str | None = FULL_KEY, user: str = "api"
) -> AsyncIterator[httpx.AsyncClient]:
    """Talk to the app in-process, authenticated with ``key`` (None: no credentials)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://lms.test",
        auth=(user, key) if key is not None else None,
    ) as http:
        yield http


async def enroll(http: httpx.AsyncClient, course: str, login: str, **body: Any) -> httpx.Response:
    return await http.post(
        f"/odata/v2/Courses({course})/Enroll", json={"userLoginName": login, **body}
    )


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    code: str = body["error"]["code"]
    return code


def parse_utc(text: str) -> datetime:
    assert UTC_DATE.fullmatch(text), text
    whole, _, fraction = text[:-1].partition(".")
    value = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return value + timedelta(microseconds=int((fraction or "0").ljust(7, "0")[:6]))


# --- auth and routing ------------------------------------------------------------------------


async def test_missing_or_wrong_key_is_401(sim_app: MakeApp) -> None:
    app = sim_app()
    for key in (None, "not-a-key", FULL_KEY.upper()):
        async with client(app, key=key) as http:
            response = await http.get(f"/odata/v2/Courses({SAF})")
            assert response.status_code == 401
            assert error_code(response) == "Unauthorized"


async def test_only_the_password_counts(sim_app: MakeApp) -> None:
    app = sim_app()
    for user in ("api", "", "anyone"):
        async with client(app, user=user) as http:
            assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200, user
    no_colon = base64.b64encode(FULL_KEY.encode()).decode()
    async with client(app, key=None) as http:
        response = await http.get(
            f"/odata/v2/Courses({SAF})", headers={"Authorization": f"Basic {no_colon}"}
        )
        assert response.status_code == 401


async def test_read_only_key_reads_but_cannot_post(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app, key=READ_ONLY_KEY) as http:
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200
        assert (await http.get("/odata/v2/Courses")).status_code == 200
        for action in ("Enroll", "Unenroll"):
            response = await http.post(
                f"/odata/v2/Courses({SAF})/{action}",
                json={"userLoginName": "liam.patel@contoso.com"},
            )
            assert response.status_code == 403
            assert error_code(response) == "Forbidden"
        # The tenant check's probe: the all-zero course answers 403 to a Read Only key...
        zero = "00000000-0000-0000-0000-000000000000"
        probe = await enroll(http, zero, "liam.patel@contoso.com")
        assert probe.status_code == 403
    async with client(app) as http:
        # ... and 404 to a Full Control key, enrolling no one.
        probe = await enroll(http, zero, "liam.patel@contoso.com")
        assert probe.status_code == 404
        assert error_code(probe) == "CourseNotFound"
    assert app.stats.enrollments_created == 0


async def test_basic_scheme_is_case_insensitive(sim_app: MakeApp) -> None:
    token = base64.b64encode(f"api:{FULL_KEY}".encode()).decode()
    async with client(sim_app(), key=None) as http:
        response = await http.get(
            f"/odata/v2/Courses({SAF})", headers={"Authorization": f"basic {token}"}
        )
        assert response.status_code == 200


COURSE_FIELDS = {
    "Id", "CourseID", "Title", "CourseCatalogId", "CourseType", "CourseSessionEnrollmentType",
    "EnrollmentFlow", "IsPublished", "IsEnded", "IsDeleted", "MaxAttendees", "EnrollmentDeadline",
    "WaitingListEnabled", "IsEnrollmentWithoutSessionsAllowed", "UnenrollDisabled",
}  # fmt: skip
SESSION_FIELDS = {
    "Id", "CourseId", "Title", "StartDate", "EndDate", "EnrollmentDeadline", "TimeZone",
    "MaxAttendees", "TakenSeatsCount", "IsGroup", "GroupId",
}  # fmt: skip


async def test_course_read_with_and_without_sessions(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        plain = (await http.get(f"/odata/v2/Courses({FLT})")).json()
        assert set(plain) == COURSE_FIELDS
        assert plain["Id"] == FLT
        assert plain["CourseID"] == "FLT-201"
        assert plain["Title"] == "Forklift Safety Workshop"
        assert GUID.fullmatch(plain["CourseCatalogId"])
        assert plain["CourseType"] == "ClassRoom"
        assert plain["CourseSessionEnrollmentType"] == "EnrollToSingle"
        assert plain["EnrollmentFlow"] == "AutomaticApproval"
        assert plain["WaitingListEnabled"] is False
        assert plain["IsEnrollmentWithoutSessionsAllowed"] is True
        assert plain["MaxAttendees"] is None
        assert plain["EnrollmentDeadline"] is None
        # The key is case-insensitive; the answer's ids are canonical lowercase.
        response = await http.get(f"/odata/v2/Courses({FLT.upper()})?$expand=CourseSessions")
        assert response.status_code == 200
        body = response.json()
        assert set(body) == COURSE_FIELDS | {"CourseSessions"}
        sessions = {s["Id"]: s for s in body["CourseSessions"]}
        assert set(sessions) == {OSLO_AM, OSLO_PM, BERGEN, EVENING}
        morning = sessions[OSLO_AM]
        assert set(morning) == SESSION_FIELDS | {"StartDateLocal"}
        assert morning["CourseId"] == FLT
        assert morning["Title"] == "Morning, Oslo"
        assert parse_utc(morning["StartDate"]) == datetime(2028, 3, 6, 8, tzinfo=UTC)
        assert morning["StartDateLocal"] == "2028-03-06T09:00:00"
        assert morning["TimeZone"] == "W. Europe Standard Time"
        assert (morning["MaxAttendees"], morning["TakenSeatsCount"]) == (25, 8)
        assert (morning["IsGroup"], morning["GroupId"]) == (False, None)
        assert sessions[BERGEN]["TakenSeatsCount"] == sessions[BERGEN]["MaxAttendees"]
        elearning = await http.get(
            f"/odata/v2/Courses({SAF})", params={"$expand": "CourseSessions"}
        )
        assert elearning.json()["CourseSessions"] == []
        assert elearning.json()["CourseSessionEnrollmentType"] is None
        assert elearning.json()["CourseID"] == "SAF-101"
        nameless = (await http.get(f"/odata/v2/Courses({EXP})")).json()
        assert nameless["CourseID"] == ""


async def test_session_groups_are_served_with_placeholder_dates(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        body = (await http.get(f"/odata/v2/Courses({HSE})?$expand=CourseSessions")).json()
    sessions = {s["Id"]: s for s in body["CourseSessions"]}
    group = sessions[PROGRAMME]
    assert group["IsGroup"] is True
    assert group["GroupId"] is None
    assert group["StartDate"] == "1753-01-01T00:00:00Z"
    assert group["EndDate"] == "9999-12-31T23:59:59.997Z"
    assert "StartDateLocal" not in group
    assert sessions[THEORY]["GroupId"] == PROGRAMME
    assert sessions[DRILL]["GroupId"] == PROGRAMME
    assert sessions[TRONDHEIM]["GroupId"] is None
    assert sessions[TRONDHEIM]["StartDateLocal"] == "2028-05-09T09:00:00"  # summer time
    assert body["IsEnrollmentWithoutSessionsAllowed"] is False


async def test_dates_have_zero_to_seven_fractional_digits(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        courses = (await http.get("/odata/v2/Courses?$expand=CourseSessions")).json()["value"]
    served = [
        s[name]
        for c in courses
        for s in c["CourseSessions"]
        for name in ("StartDate", "EndDate", "EnrollmentDeadline")
        if s[name] is not None and not s["IsGroup"]
    ]
    digits = {len(d[:-1].partition(".")[2]) for d in served}
    assert all(UTC_DATE.fullmatch(d) for d in served)
    assert len(digits) >= 4  # real tenants vary; a client must read them all
    assert digits <= set(range(8))


def test_format_datetime_never_loses_precision() -> None:
    value = datetime(2021, 9, 23, 11, 31, 7, 460000, tzinfo=UTC)
    assert format_datetime(value) == "2021-09-23T11:31:07.46Z"
    assert format_datetime(value, digits=7) == "2021-09-23T11:31:07.4600000Z"
    assert format_datetime(value, digits=0) == "2021-09-23T11:31:07.46Z"
    assert format_datetime(value.replace(microsecond=0), digits=0) == "2021-09-23T11:31:07Z"
    assert format_datetime(value.replace(microsecond=123456)) == "2021-09-23T11:31:07.123456Z"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", f"/odata/v2/Courses({NO_COURSE})", 404, "CourseNotFound"),
        ("POST", f"/odata/v2/Courses({NO_COURSE})/Enroll", 404, "CourseNotFound"),
        ("GET", "/odata/v2/Courses(101)", 400, "BadRequest"),
        ("POST", "/odata/v2/Courses(101)/Enroll", 400, "BadRequest"),
        ("GET", f"/odata/v2/Courses('{SAF}')", 400, "BadRequest"),
        ("GET", f"/odata/v2/Courses({{{SAF}}})", 400, "BadRequest"),
        ("GET", "/odata/v2/Courses(abc)", 400, "BadRequest"),
        ("POST", f"/odata/v2/Courses({SAF[:-1]})/Unenroll", 400, "BadRequest"),
        ("GET", "/odata/v2/Nope", 404, "NotFound"),
        ("GET", f"/odata/v2/Courses({SAF})/Frobnicate", 404, "NotFound"),
        ("GET", "/elsewhere", 404, "NotFound"),
        ("GET", f"/odata/v2/Courses({SAF})/Enroll", 405, "MethodNotAllowed"),
        ("POST", "/odata/v2/Enrollments", 405, "MethodNotAllowed"),
        ("POST", "/odata/v2/Courses", 405, "MethodNotAllowed"),
    ],
)
async def test_routing_errors(
    sim_app: MakeApp, method: str, path: str, status: int, code: str
) -> None:
    async with client(sim_app()) as http:
        response = await http.request(
            method, path, json={"userLoginName": "liam.patel@contoso.com"}
        )
        assert response.status_code == status
        assert error_code(response) == code


async def test_a_key_that_is_not_a_guid_says_what_belongs_there(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        response = await http.get("/odata/v2/Courses(101)")
    message = response.json()["error"]["message"]
    assert "'101'" in message
    assert "GUID" in message


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"", b'{"courseSessionIds": []}', b'{"userLoginName": 7}',
     b'{"userLoginName": "liam.patel@contoso.com", "courseSessionIds": "x"}',
     b'{"userLoginName": "liam.patel@contoso.com", "ignoreMaxAttendees": "yes"}'],
)  # fmt: skip
async def test_bad_enroll_body_is_400(sim_app: MakeApp, body: bytes) -> None:
    app = sim_app()
    async with client(app) as http:
        response = await http.post(
            f"/odata/v2/Courses({SAF})/Enroll",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        assert error_code(response) == "BadRequest"
    assert app.stats.enrollments_created == 0


# --- the course list: $filter, $select, $top, $skip, $count, next links ----------------------


async def course_titles(http: httpx.AsyncClient, filter_: str) -> list[str]:
    response = await http.get("/odata/v2/Courses", params={"$filter": filter_})
    assert response.status_code == 200, response.text
    return sorted(c["Title"] for c in response.json()["value"])


async def test_course_list_filters_on_id_code_and_title(sim_app: MakeApp) -> None:
    async with client(sim_app(), key=READ_ONLY_KEY) as http:
        assert await course_titles(http, "CourseID eq 'SAF-101'") == ["Workplace Safety Basics"]
        assert await course_titles(http, "CourseID eq 'saf-101'") == ["Workplace Safety Basics"]
        assert await course_titles(http, "CourseID eq '101'") == ["Information Security Basics"]
        assert await course_titles(http, "CourseID eq 'DEV-100'") == [
            "Git Essentials",
            "Python Essentials",
        ]
        assert await course_titles(http, "Title eq 'time management'") == ["Time Management"] * 2
        assert await course_titles(http, f"Id eq {SAF.upper()}") == ["Workplace Safety Basics"]
        assert await course_titles(http, f"Id eq {NO_COURSE}") == []
        assert await course_titles(http, "CourseID eq 'DEV-100' and Title eq 'Git Essentials'") == [
            "Git Essentials"
        ]
        either = "CourseID eq 'SAF-101' or Title eq 'CPR Refresher' or CourseID eq 'nope'"
        assert await course_titles(http, either) == ["CPR Refresher", "Workplace Safety Basics"]
        # "and" binds tighter than "or"; parentheses change that.
        loose = "CourseID eq 'SAF-101' or CourseID eq 'DEV-100' and Title eq 'Git Essentials'"
        assert await course_titles(http, loose) == ["Git Essentials", "Workplace Safety Basics"]
        grouped = "(CourseID eq 'SAF-101' or CourseID eq 'DEV-100') and Title eq 'Git Essentials'"
        assert await course_titles(http, grouped) == ["Git Essentials"]
        assert await course_titles(http, "CourseID eq null") == ["Time Management"]
        assert await course_titles(http, "CourseID eq ''") == ["Retired: Old Expense Tool"]
        assert await course_titles(http, "Title eq 'Retired: Old Expense Tool'") == [
            "Retired: Old Expense Tool"
        ]
        assert await course_titles(http, "Title eq 'Workplace  Safety Basics'") == []


async def test_course_filter_unescapes_doubled_quotes() -> None:
    data = _tiny_catalog()
    data["courses"][0]["Title"] = "Kay's 'best' course"
    async with client(create_app(Catalog.from_dict(data)), key="k") as http:
        titles = await course_titles(http, "Title eq 'Kay''s ''best'' course'")
        assert titles == ["Kay's 'best' course"]
        raw = await http.get(
            "/odata/v2/Courses?$filter=Title%20eq%20%27Kay%27%27s%20%27%27best%27%27%20course%27"
        )
        assert len(raw.json()["value"]) == 1


@pytest.mark.parametrize(
    "filter_",
    [
        f"Id eq '{SAF}'",  # a GUID literal is not quoted
        "Id eq 101",
        "CourseID eq SAF-101",
        "CourseID eq 101",
        "Title gt 'a'",
        "Title ne 'a'",
        "Nope eq 'x'",
        "Title eq 'x' and",
        "Title eq 'x' or or Title eq 'y'",
        "(Title eq 'x'",
        "Title eq 'x')",
        "Title eq 'unterminated",
        "Title eq 'x'and CourseID eq 'y'",
        "tolower(Title) eq 'x'",
    ],
)
async def test_bad_course_filter_is_400(sim_app: MakeApp, filter_: str) -> None:
    async with client(sim_app()) as http:
        response = await http.get("/odata/v2/Courses", params={"$filter": filter_})
        assert response.status_code == 400, filter_
        assert error_code(response) == "BadRequest"
        assert "$filter" in response.json()["error"]["message"]


async def test_course_list_select_count_and_paging(sim_app: MakeApp, catalog: Catalog) -> None:
    app = sim_app(page_size=4)
    total = len(catalog.courses)
    async with client(app) as http:
        url: str | None = "/odata/v2/Courses?$select=Id,CourseID,Title&$count=true"
        pages: list[list[dict[str, Any]]] = []
        while url is not None:
            response = await http.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["@odata.count"] == total
            pages.append(body["value"])
            url = body.get("@odata.nextLink")
            if url is not None:
                assert url.startswith("http://lms.test/odata/v2/Courses?")
        assert [len(p) for p in pages] == [4, 4, 4, 4]
        flat = [c for p in pages for c in p]
        assert [c["Id"] for c in flat] == [c.id for c in catalog.courses]
        assert all(set(c) == {"Id", "CourseID", "Title"} for c in flat)

        window = await http.get("/odata/v2/Courses", params={"$top": "3", "$skip": "2"})
        assert [c["Id"] for c in window.json()["value"]] == [c.id for c in catalog.courses[2:5]]
        assert "@odata.count" not in window.json()
        counted = await http.get(
            "/odata/v2/Courses", params={"$filter": "CourseID eq 'DEV-100'", "$count": "true"}
        )
        assert counted.json()["@odata.count"] == 2
        assert "@odata.nextLink" not in counted.json()
        expanded = await http.get(
            "/odata/v2/Courses",
            params={"$filter": f"Id eq {FA}", "$expand": "CourseSessions", "$select": "Id"},
        )
        (first_aid,) = expanded.json()["value"]
        assert set(first_aid) == {"Id", "CourseSessions"}
        assert {s["Id"] for s in first_aid["CourseSessions"]} == {DAY1, DAY2}
        for bad in ({"$select": "Id,Nope"}, {"$count": "yes"}, {"$top": "-1"}, {"$expand": "X"}):
            response = await http.get("/odata/v2/Courses", params=bad)
            assert response.status_code == 400, bad
            assert error_code(response) == "BadRequest"
        one = await http.get(f"/odata/v2/Courses({FLT})", params={"$select": "Id,Title"})
        assert one.json() == {"Id": FLT, "Title": "Forklift Safety Workshop"}


async def test_rename_fields_changes_every_course_and_session_object(catalog: Catalog) -> None:
    app = create_app(
        catalog, rename_fields={"TakenSeatsCount": "AttendeesCount", "CourseID": "Code"}
    )
    async with client(app) as http:
        one = (await http.get(f"/odata/v2/Courses({FLT})?$expand=CourseSessions")).json()
        listed = (await http.get("/odata/v2/Courses?$expand=CourseSessions")).json()["value"]
        enrolled = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
    assert "CourseID" not in one
    assert one["Code"] == "FLT-201"
    for course in [one, *listed]:
        assert "CourseID" not in course
        assert "Code" in course
        for session in course["CourseSessions"]:
            assert "TakenSeatsCount" not in session
            assert isinstance(session["AttendeesCount"], int)
    # Only what is served changes: the rules still work.
    assert enrolled.status_code == 201
    assert app.taken_seats(OSLO_AM) == 9
    with pytest.raises(ValueError, match="rename_fields"):
        create_app(catalog, rename_fields={"Title": ""})


# --- enroll: the session-rules table ---------------------------------------------------------


@pytest.mark.parametrize(
    ("course", "sessions", "extra", "status", "expect"),
    [
        # ELearning / TrainingPlan
        (SAF, [], {}, 201, []),
        (ONB, [], {}, 201, []),
        (SAF, [OSLO_AM], {}, 400, "InvalidCourseSession"),
        (ONB, [DAY1], {}, 400, "InvalidCourseSession"),
        # ILT EnrollToSingle
        (FLT, [], {}, 201, []),
        (FLT, [OSLO_AM], {}, 201, [OSLO_AM]),
        (FLT, [OSLO_AM.upper()], {}, 201, [OSLO_AM]),
        (FLT, [OSLO_AM, OSLO_PM], {}, 400, "TooManySessions"),
        (FLT, [OSLO_AM, OSLO_AM.upper()], {}, 201, [OSLO_AM]),  # the same session twice
        # ILT EnrollToSingle that requires a session; a group counts as one
        (HSE, [], {}, 400, "SessionRequired"),
        (HSE, [TRONDHEIM], {}, 201, [TRONDHEIM]),
        (HSE, [PROGRAMME], {}, 201, [PROGRAMME, THEORY, DRILL]),
        (HSE, [PROGRAMME, TRONDHEIM], {}, 400, "TooManySessions"),
        # ILT EnrollToMultiple
        (CUS, [], {}, 201, []),
        (CUS, [PART1, PART2], {}, 201, [PART1, PART2]),
        (CUS, [PART2], {}, 201, [PART2]),
        (CUS, [SERIES], {}, 201, [SERIES, PART1, PART2]),
        (CUS, [SERIES, PART1], {}, 201, [SERIES, PART1, PART2]),
        # ILT EnrollToAll: none enrolls into all; any session id is refused
        (FA, [], {}, 201, [DAY1, DAY2]),
        (FA, [DAY2], {}, 400, "TooManySessions"),
        (FA, [OSLO_AM], {}, 400, "TooManySessions"),
        # any ILT
        (FLT, [PART1], {}, 400, "InvalidCourseSession"),
        (CUS, ["not-a-guid"], {}, 400, "InvalidCourseSession"),
        (FLT, [EVENING], {}, 400, "SessionClosed"),
        (FLT, [BERGEN], {}, 400, "MaxAttendeesReached"),
        (FLT, [BERGEN], {"ignoreMaxAttendees": True}, 201, [BERGEN]),
        # unavailable courses
        (XLS, [], {}, 400, "CourseNotAvailable"),
        (CMP, [], {}, 400, "CourseNotAvailable"),
        (EXP, [], {}, 400, "CourseNotAvailable"),
    ],
)
async def test_session_rules(
    sim_app: MakeApp,
    course: str,
    sessions: list[str],
    extra: dict[str, Any],
    status: int,
    expect: str | list[str],
) -> None:
    app = sim_app()
    async with client(app) as http:
        response = await enroll(
            http, course, "liam.patel@contoso.com", courseSessionIds=sessions, **extra
        )
        assert response.status_code == status, response.text
        if status == 201:
            body = response.json()
            assert body["CourseSessionIds"] == expect
            assert body["CourseSessionId"] == (expect[0] if expect else None)
            assert body["RegistrationStatus"] == "Active"
            assert app.stats.enrollments_created == 1
        else:
            assert error_code(response) == expect
            assert not [e for e in app.enrollments if "liam" in e.user_login_name]
            assert app.stats.enrollments_created == 0


async def test_a_group_takes_a_seat_in_each_of_its_sessions(sim_app: MakeApp) -> None:
    app = sim_app()
    before = {s: app.taken_seats(s) for s in (SERIES, PART1, PART2)}
    async with client(app) as http:
        assert (
            await enroll(http, CUS, "liam.patel@contoso.com", courseSessionIds=[SERIES])
        ).status_code == 201
    assert {s: app.taken_seats(s) - n for s, n in before.items()} == {SERIES: 1, PART1: 1, PART2: 1}


async def test_a_group_is_open_until_its_deadline_whatever_its_dates(sim_app: MakeApp) -> None:
    # After the 1753 "start" and long before the 9999 "end": only the deadline counts.
    before_deadline = datetime(2028, 4, 27, tzinfo=UTC)
    async with client(sim_app(now=lambda: before_deadline)) as http:
        ok = await enroll(http, HSE, "liam.patel@contoso.com", courseSessionIds=[PROGRAMME])
        assert ok.status_code == 201
    after_deadline = datetime(2028, 4, 29, tzinfo=UTC)
    async with client(sim_app(now=lambda: after_deadline)) as http:
        late = await enroll(http, HSE, "liam.patel@contoso.com", courseSessionIds=[PROGRAMME])
        assert late.status_code == 400
        assert error_code(late) == "SessionClosed"


async def test_a_group_closes_when_all_its_sessions_have() -> None:
    data = _tiny_catalog()
    group = "99999999-8888-4777-8666-555555555555"
    data["courses"][0]["CourseSessions"] = [
        {"Id": group, "Title": "Both", "IsGroup": True},
        {
            "Id": TINY_SESSION,
            "Title": "Gone",
            "StartDate": "-3d",
            "EndDate": "-2d",
            "GroupId": group,
        },
    ]
    async with client(create_app(Catalog.from_dict(data)), key="k") as http:
        response = await enroll(http, TINY, "a@x.com", courseSessionIds=[group])
        assert response.status_code == 400
        assert error_code(response) == "SessionClosed"


async def test_waiting_list_takes_people_when_the_session_is_full(sim_app: MakeApp) -> None:
    app = sim_app()
    seats = app.taken_seats(LUNCH)
    async with client(app) as http:
        waiting = await enroll(http, CPR, "liam.patel@contoso.com", courseSessionIds=[LUNCH])
        assert waiting.status_code == 201
        assert waiting.json()["RegistrationStatus"] == "WaitingList"
        assert waiting.json()["CourseSessionIds"] == [LUNCH]
        assert app.taken_seats(LUNCH) == seats  # no seat taken
        again = await enroll(http, CPR, "liam.patel@contoso.com", courseSessionIds=[CPR_EVENING])
        assert again.status_code == 409  # on the waiting list is enrolled
        forced = await enroll(
            http, CPR, "sofia.garcia@contoso.com", courseSessionIds=[LUNCH], ignoreMaxAttendees=True
        )
        assert forced.json()["RegistrationStatus"] == "Active"
        assert app.taken_seats(LUNCH) == seats + 1
        open_ = await enroll(http, CPR, "noah.kim@contoso.com", courseSessionIds=[CPR_EVENING])
        assert open_.json()["RegistrationStatus"] == "Active"
        left = await http.post(
            f"/odata/v2/Courses({CPR})/Unenroll", json={"userLoginName": "liam.patel@contoso.com"}
        )
        assert left.status_code == 204
        assert app.taken_seats(LUNCH) == seats + 1  # leaving the waiting list frees no seat
        listed = await http.get("/odata/v2/Enrollments", params={"$filter": f"CourseId eq {CPR}"})
        assert {e["RegistrationStatus"] for e in listed.json()["value"]} == {"Active"}


async def test_max_attendees_zero_or_null_is_no_limit() -> None:
    for limit in (0, None):
        data = _tiny_catalog()
        data["courses"][0]["CourseSessions"][0].update(MaxAttendees=limit, TakenSeatsCount=500)
        async with client(create_app(Catalog.from_dict(data)), key="k") as http:
            response = await enroll(http, TINY, "a@x.com", courseSessionIds=[TINY_SESSION])
            assert response.status_code == 201, limit


async def test_enroll_to_all_uses_the_course_limit_and_deadline() -> None:
    data = _tiny_catalog()
    course = data["courses"][0]
    course.update(CourseSessionEnrollmentType="EnrollToAll", MaxAttendees=1)
    async with client(create_app(Catalog.from_dict(data)), key="k") as http:
        first = await enroll(http, TINY, "a@x.com")
        assert first.json()["CourseSessionIds"] == [TINY_SESSION]
        full = await enroll(http, TINY, "b@x.com")
        assert full.status_code == 400
        assert error_code(full) == "MaxAttendeesReached"
    course.update(WaitingListEnabled=True)
    async with client(create_app(Catalog.from_dict(data)), key="k") as http:
        await enroll(http, TINY, "a@x.com")
        waiting = await enroll(http, TINY, "b@x.com")
        assert waiting.json()["RegistrationStatus"] == "WaitingList"
    course.update(EnrollmentDeadline="-1h", MaxAttendees=None)
    async with client(create_app(Catalog.from_dict(data)), key="k") as http:
        late = await enroll(http, TINY, "a@x.com")
        assert late.status_code == 400
        assert error_code(late) == "SessionClosed"


async def test_the_enrollment_cap_is_per_course_and_counts_people() -> None:
    data = _tiny_catalog()
    data["max_enrollments_per_course"] = 2
    data["courses"].append(dict(data["courses"][0], Id=TINY2, CourseSessions=[]))
    data["users"].append({"LoginName": f"{CLAIMS}c@x.com", "Email": "c@x.com"})
    data["groups"] = [{"LoginName": "c:0t.c|tenant|team", "Title": "Team"}]
    app = create_app(Catalog.from_dict(data))
    async with client(app, key="k") as http:
        assert (await enroll(http, TINY, "a@x.com")).status_code == 201
        assert (await enroll(http, TINY, "b@x.com")).status_code == 201
        capped = await enroll(http, TINY, "c@x.com")
        assert capped.status_code == 400
        assert error_code(capped) == "MaxEnrollmentsReached"
        assert "2" in capped.json()["error"]["message"]
        assert (await enroll(http, TINY2, "c@x.com")).status_code == 201  # another course
        assert (await enroll(http, TINY, "c:0t.c|tenant|team")).status_code == 201  # a group
        again = await enroll(http, TINY, "a@x.com")
        assert error_code(again) == "UserAlreadyEnrolled"  # 409 comes first
        await http.post(f"/odata/v2/Courses({TINY})/Unenroll", json={"userLoginName": "b@x.com"})
        assert (await enroll(http, TINY, "c@x.com")).status_code == 201


def test_the_default_cap_is_5000(catalog: Catalog) -> None:
    assert catalog.max_enrollments_per_course == 5000
    assert Catalog.from_dict(_tiny_catalog()).max_enrollments_per_course == 5000


async def test_deprecated_single_session_field(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        response = await enroll(http, FLT, "henry.hall@contoso.com", courseSessionId=OSLO_AM)
        assert response.status_code == 201
        assert response.json()["CourseSessionIds"] == [OSLO_AM]
        # Both fields at once: the union counts, so EnrollToSingle sees two sessions.
        both = await enroll(
            http, FLT, "ella.young@contoso.com", courseSessionId=OSLO_PM, courseSessionIds=[OSLO_AM]
        )
        assert both.status_code == 400
        assert error_code(both) == "TooManySessions"


async def test_ended_session_is_closed(sim_app: MakeApp) -> None:
    later = datetime(2028, 3, 6, 12, tzinfo=UTC)  # after Morning, Oslo ended
    async with client(sim_app(now=lambda: later)) as http:
        response = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        assert response.status_code == 400
        assert error_code(response) == "SessionClosed"
        assert "ended" in response.json()["error"]["message"]
    before = datetime(2028, 3, 4, tzinfo=UTC)  # before it, but past its deadline
    async with client(sim_app(now=lambda: before)) as http:
        response = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        assert error_code(response) == "SessionClosed"
        assert "deadline" in response.json()["error"]["message"]


async def test_unknown_user_is_404(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        for login in ("pat.unknown@contoso.com", "lily carter@contoso.com", f"{CLAIMS}nobody@x.y"):
            response = await enroll(http, SAF, login)
            assert response.status_code == 404
            assert error_code(response) == "UserNotFound"


async def test_enrollment_body_matches_contract(sim_app: MakeApp) -> None:
    fixed = datetime(2026, 11, 27, 10, 15, 2, 120000, tzinfo=UTC)
    app = sim_app(now=lambda: fixed)
    async with client(app) as http:
        first = await enroll(http, FLT, "Liam.Patel@CONTOSO.com", courseSessionIds=[OSLO_AM])
        second = await enroll(http, LDR, f"{CLAIMS}sofia.garcia@contoso.com")
    assert first.status_code == 201
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    user = next(u for u in app.catalog.users if u.email == "liam.patel@contoso.com")
    assert body == {
        "Id": body["Id"],
        "CourseId": FLT,
        "UserId": user.id,
        "UserLoginName": f"{CLAIMS}liam.patel@contoso.com",
        "Roles": ["Learner"],
        "RegistrationDate": body["RegistrationDate"],
        "RegistrationStatus": "Active",
        "CoursePassingStatus": "NotStarted",
        "CourseSessionId": OSLO_AM,
        "CourseSessionIds": [OSLO_AM],
        "CanUnenroll": True,
        "IsPartOfTrainingPlan": False,
    }
    assert GUID.fullmatch(body["Id"])
    assert GUID.fullmatch(body["UserId"])
    assert parse_utc(body["RegistrationDate"]) == fixed
    assert second.json()["Id"] != body["Id"]
    assert second.json()["CanUnenroll"] is False  # the course has UnenrollDisabled


async def test_enrolling_takes_a_seat(sim_app: MakeApp) -> None:
    app = sim_app()
    before = app.taken_seats(OSLO_AM)
    async with client(app) as http:
        await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        course = (await http.get(f"/odata/v2/Courses({FLT})?$expand=CourseSessions")).json()
    counts = {s["Id"]: s["TakenSeatsCount"] for s in course["CourseSessions"]}
    assert counts[OSLO_AM] == before + 1 == app.taken_seats(OSLO_AM)


async def test_last_seat_then_full() -> None:
    data = _tiny_catalog()
    data["courses"][0]["CourseSessions"][0]["MaxAttendees"] = 1
    app = create_app(Catalog.from_dict(data))
    async with client(app, key="k") as http:
        assert (
            await enroll(http, TINY, "a@x.com", courseSessionIds=[TINY_SESSION])
        ).status_code == 201
        full = await enroll(http, TINY, "b@x.com", courseSessionIds=[TINY_SESSION])
        assert full.status_code == 400
        assert error_code(full) == "MaxAttendeesReached"


async def test_logins_are_stored_in_claims_form_whatever_was_sent(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app) as http:
        sent = {
            "liam.patel@contoso.com": "liam.patel@contoso.com",
            "I:0#.F|Membership|Sofia.Garcia@contoso.com": "sofia.garcia@contoso.com",
            f"{CLAIMS}NOAH.KIM@contoso.com": "noah.kim@contoso.com",
        }
        for login, upn in sent.items():
            response = await enroll(http, SAF, login)
            assert response.status_code == 201, login
            assert response.json()["UserLoginName"] == f"{CLAIMS}{upn}"
        listed = await http.get("/odata/v2/Enrollments", params={"$filter": f"CourseId eq {SAF}"})
    stored = {e["UserLoginName"] for e in listed.json()["value"]}
    assert stored == {f"{CLAIMS}{upn}" for upn in [*sent.values(), "ava.thompson@contoso.com"]}


async def test_already_enrolled_is_409_whatever_the_spelling(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app) as http:
        assert (await enroll(http, SAF, "liam.patel@contoso.com")).status_code == 201
        for login in (
            f"{CLAIMS}LIAM.PATEL@contoso.com",
            "Liam.Patel@contoso.com",
            "I:0#.F|MEMBERSHIP|liam.patel@contoso.com",
        ):
            response = await enroll(http, SAF, login)
            assert response.status_code == 409
            assert error_code(response) == "UserAlreadyEnrolled"
        seeded = await enroll(http, SAF, "ava.thompson@contoso.com")  # in the catalog
        assert seeded.status_code == 409
        # Enrolled in the course only, asking again for a session is still a duplicate.
        assert (await enroll(http, FLT, "henry.hall@contoso.com")).status_code == 201
        again = await enroll(http, FLT, "henry.hall@contoso.com", courseSessionIds=[OSLO_AM])
        assert again.status_code == 409
    assert app.creations[(SAF, "liam.patel@contoso.com")] == 1


async def test_line_manager_approval_is_pending(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        pending = await enroll(http, LDR, "layla.collins@contoso.com")
        assert pending.status_code == 201
        assert pending.json()["RegistrationStatus"] == "Pending"
        # A pending enrollment is held: asking again is a duplicate.
        assert (await enroll(http, LDR, "layla.collins@contoso.com")).status_code == 409
        forced = await enroll(http, LDR, "julian.stewart@contoso.com", ignoreEnrollmentFlow=True)
        assert forced.json()["RegistrationStatus"] == "Active"
        auto = await enroll(http, SAF, "julian.stewart@contoso.com")
        assert auto.json()["RegistrationStatus"] == "Active"


async def test_groups_enroll_by_login_name_or_id(sim_app: MakeApp, catalog: Catalog) -> None:
    new_hires = next(g for g in catalog.groups if g.login_name == GROUP_LOGIN)
    async with client(sim_app()) as http:
        by_login = await enroll(http, SAF, GROUP_LOGIN.upper())
        assert by_login.status_code == 201
        assert by_login.json()["UserId"] == new_hires.id
        assert by_login.json()["UserLoginName"] == GROUP_LOGIN
        by_id = await enroll(http, ONB, WAREHOUSE_GROUP.upper())
        assert by_id.status_code == 201
        assert by_id.json()["UserId"] == WAREHOUSE_GROUP
        braced = await enroll(http, ONB, "{" + WAREHOUSE_GROUP + "}")
        assert braced.status_code == 409
        assert (await enroll(http, SAF, new_hires.id)).status_code == 409
        assert (await enroll(http, SAF, "5002")).status_code == 404


# --- look-ups --------------------------------------------------------------------------------


async def test_enrollments_filters(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        await enroll(http, SAF, "liam.patel@contoso.com")
        await enroll(http, ONB, "I:0#.F|Membership|Liam.Patel@contoso.com")
        await enroll(http, SAF, "sofia.garcia@contoso.com")

        async def ids(filter_: str) -> list[tuple[str, str]]:
            response = await http.get("/odata/v2/Enrollments", params={"$filter": filter_})
            assert response.status_code == 200, response.text
            return [(e["CourseId"], e["UserLoginName"]) for e in response.json()["value"]]

        liam = f"{CLAIMS}liam.patel@contoso.com"
        assert await ids(f"CourseId eq {ONB}") == [
            (ONB, f"{CLAIMS}lucas.muller@contoso.com"),
            (ONB, liam),
        ]
        assert await ids("UserLoginName eq 'LIAM.patel@contoso.com'") == [(SAF, liam), (ONB, liam)]
        assert await ids(f"UserLoginName eq '{liam}' and CourseId eq {SAF}") == [(SAF, liam)]
        for spelled in ("liam.patel@contoso.com", "I:0#.F|MEMBERSHIP|Liam.Patel@Contoso.com"):
            found = await ids(f"CourseId eq {SAF.upper()} AND  UserLoginName eq '{spelled}'")
            assert found == [(SAF, liam)]
        assert await ids(f"CourseId eq {FLT} and UserLoginName eq 'liam.patel@contoso.com'") == []
        assert await ids("UserLoginName eq 'nobody@contoso.com'") == []
        assert await ids(f"CourseId eq {SAF} and CourseId eq {ONB}") == []
        assert await ids(f"CourseId eq {SAF} or CourseId eq {ONB}") == await ids(
            f"(CourseId eq {ONB} or CourseId eq {SAF})"
        )
        two_people = (
            "UserLoginName eq 'liam.patel@contoso.com' and "
            "UserLoginName eq 'sofia.garcia@contoso.com'"
        )
        assert await ids(two_people) == []
        everyone = await http.get("/odata/v2/Enrollments")
        assert len(everyone.json()["value"]) == 6  # three seeded in the catalog


async def test_filter_escaped_quote_and_raw_encoding(sim_app: MakeApp) -> None:
    login = "conor.o'brien@contoso.com"
    async with client(sim_app()) as http:
        created = await enroll(http, SAF, login)
        assert created.status_code == 201
        escaped = login.replace("'", "''")
        response = await http.get(
            "/odata/v2/Enrollments",
            params={"$filter": f"CourseId eq {SAF} and UserLoginName eq '{escaped}'"},
        )
        assert [e["Id"] for e in response.json()["value"]] == [created.json()["Id"]]
        raw = (
            "/odata/v2/Enrollments?%24filter=UserLoginName%20eq%20"
            f"%27conor.o%27%27brien%40contoso.com%27%20and%20CourseId%20eq%20{SAF}"
        )
        assert len((await http.get(raw)).json()["value"]) == 1
        users = await http.get("/odata/v2/Users", params={"$filter": f"Email eq '{escaped}'"})
        assert users.json()["value"][0]["Title"] == "Conor O'Brien"


@pytest.mark.parametrize(
    "filter_",
    [
        "CourseId gt 5",
        "Title eq 'x'",
        f"CourseId eq '{SAF}'",  # GUID literals are not quoted
        "CourseId eq 101",
        "UserLoginName eq 7",
        "UserLoginName eq 'unterminated",
        f"CourseId eq {SAF} and",
        f"CourseId eq {SAF}and UserLoginName eq 'a'",
    ],
)
async def test_bad_filter_is_400(sim_app: MakeApp, filter_: str) -> None:
    async with client(sim_app()) as http:
        response = await http.get("/odata/v2/Enrollments", params={"$filter": filter_})
        assert response.status_code == 400
        assert error_code(response) == "BadRequest"


async def test_paging_follows_next_link(sim_app: MakeApp) -> None:
    app = sim_app(page_size=2)
    logins = [f"{n}@contoso.com" for n in ("liam.patel", "sofia.garcia", "noah.kim", "mia.johnson")]
    async with client(app) as http:
        for login in logins:
            assert (await enroll(http, SAF, login)).status_code == 201
        url: str | None = f"/odata/v2/Enrollments?$filter=CourseId eq {SAF}&$count=true"
        pages: list[list[str]] = []
        while url is not None:
            body = (await http.get(url)).json()
            assert body["@odata.count"] == 5
            pages.append([e["Id"] for e in body["value"]])
            url = body.get("@odata.nextLink")
            if url is not None:
                assert url.startswith("http://lms.test/odata/v2/Enrollments?")
                assert "%24filter" not in url  # readable option names
    assert [len(p) for p in pages] == [2, 2, 1]  # 4 new + the seeded one
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == 5

    async with client(app) as http:
        first = (await http.get("/odata/v2/Enrollments", params={"$top": "3"})).json()
        assert len(first["value"]) == 2
        rest = (await http.get(first["@odata.nextLink"])).json()
        assert len(rest["value"]) == 1
        assert "@odata.nextLink" not in rest
        bad = await http.get("/odata/v2/Enrollments", params={"$skip": "-1"})
        assert bad.status_code == 400


async def test_users_lookup(sim_app: MakeApp) -> None:
    async with client(sim_app(), key=READ_ONLY_KEY) as http:
        by_email = await http.get(
            "/odata/v2/Users", params={"$filter": "Email eq 'Noah.Kim@contoso.com'"}
        )
        assert by_email.status_code == 200
        (user,) = by_email.json()["value"]
        assert user == {
            "Id": user["Id"],
            "LoginName": f"{CLAIMS}noah.kim@contoso.com",
            "Email": "noah.kim@contoso.com",
            "Title": "Noah Kim",
        }
        assert GUID.fullmatch(user["Id"])
        by_login = await http.get(
            "/odata/v2/Users", params={"$filter": f"LoginName eq '{CLAIMS}noah.kim@contoso.com'"}
        )
        assert by_login.json()["value"] == [user]
        by_id = await http.get("/odata/v2/Users", params={"$filter": f"Id eq {user['Id']}"})
        assert by_id.json()["value"] == [user]
        nobody = await http.get("/odata/v2/Users", params={"$filter": "Email eq 'x@contoso.com'"})
        assert nobody.json() == {"value": []}
        group = await http.get(
            "/odata/v2/Users", params={"$filter": f"LoginName eq '{GROUP_LOGIN}'"}
        )
        assert group.json()["value"] == []
        bad = await http.get("/odata/v2/Users", params={"$filter": f"CourseId eq {SAF}"})
        assert bad.status_code == 400


# --- unenroll --------------------------------------------------------------------------------


async def test_unenroll_frees_the_seat(sim_app: MakeApp) -> None:
    app = sim_app()
    seats = app.taken_seats(OSLO_AM)
    async with client(app) as http:
        await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        assert app.taken_seats(OSLO_AM) == seats + 1
        gone = await http.post(
            f"/odata/v2/Courses({FLT})/Unenroll",
            json={"userLoginName": "I:0#.F|Membership|LIAM.patel@contoso.com", "message": "Left"},
        )
        assert gone.status_code == 204
        assert gone.content == b""
        assert app.taken_seats(OSLO_AM) == seats
        left = await http.get(
            "/odata/v2/Enrollments", params={"$filter": "UserLoginName eq 'liam.patel@contoso.com'"}
        )
        assert left.json()["value"] == []
        again = await http.post(
            f"/odata/v2/Courses({FLT})/Unenroll", json={"userLoginName": "liam.patel@contoso.com"}
        )
        assert again.status_code == 400
        assert error_code(again) == "UserNotEnrolled"
        back = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        assert back.status_code == 201
        unknown = await http.post(
            f"/odata/v2/Courses({FLT})/Unenroll", json={"userLoginName": "pat.unknown@contoso.com"}
        )
        assert error_code(unknown) == "UserNotFound"
        nowhere = await http.post(
            f"/odata/v2/Courses({NO_COURSE})/Unenroll",
            json={"userLoginName": "liam.patel@contoso.com"},
        )
        assert error_code(nowhere) == "CourseNotFound"
        seeded = await http.post(
            f"/odata/v2/Courses({ONB})/Unenroll", json={"userLoginName": "lucas.muller@contoso.com"}
        )
        assert seeded.status_code == 204
        assert app.taken_seats(PART1) == 37  # the catalog's count already holds Mia
        seated = await http.post(
            f"/odata/v2/Courses({CUS})/Unenroll", json={"userLoginName": "mia.johnson@contoso.com"}
        )
        assert seated.status_code == 204
        assert app.taken_seats(PART1) == 36
    assert app.stats.enrollments_removed == 3
    assert app.creations[(FLT, "liam.patel@contoso.com")] == 2


# --- throttle, faults, latency, drops --------------------------------------------------------


async def test_throttle_answers_429_with_retry_after(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=0.5, burst=2)
    async with client(app) as http:
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200
        assert (await enroll(http, SAF, "liam.patel@contoso.com")).status_code == 201
        throttled = await enroll(http, SAF, "sofia.garcia@contoso.com")
        assert throttled.status_code == 429
        assert error_code(throttled) == "TooManyRequests"
        assert throttled.headers["retry-after"] == "2"  # one token at 0.5/s
        assert (await http.get("/_sim/stats")).status_code == 200  # never throttled
    async with client(app, key=READ_ONLY_KEY) as http:  # another key, another bucket
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200
    assert [e.user_login_name for e in app.enrollments if e.course_id == SAF] == [
        f"{CLAIMS}ava.thompson@contoso.com",
        f"{CLAIMS}liam.patel@contoso.com",
    ]
    assert app.stats.throttled == 1
    assert app.stats.by_status[429] == 1


async def test_throttle_comes_before_auth_and_retry_after_is_at_least_1(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=2)  # burst defaults to one second's worth: 2
    async with client(app, key="wrong") as http:
        statuses = [(await http.get(f"/odata/v2/Courses({SAF})")).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]

    app = sim_app(rate_limit=100, burst=1)
    async with client(app, key="wrong") as http:
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 401
        throttled = await http.get(f"/odata/v2/Courses({SAF})")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"


async def test_throttle_refills(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=50, burst=1)
    async with client(app) as http:
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 429
        await anyio.sleep(0.05)
        assert (await http.get(f"/odata/v2/Courses({SAF})")).status_code == 200


async def test_faults_have_no_effect(sim_app: MakeApp) -> None:
    app = sim_app(fault_rate=1.0, seed=7)
    seen: set[int] = set()
    async with client(app) as http:
        for _ in range(40):
            response = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
            assert response.status_code in {500, 502, 503, 504}
            assert error_code(response)
            if "retry-after" in response.headers:
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
            seen.add(response.status_code)
        assert seen == {500, 502, 503, 504}
        assert app.stats.faults_injected == 40
        assert app.stats.enrollments_created == 0
        assert app.taken_seats(OSLO_AM) == 8
        app.fault_rate = 0.0
        ok = await enroll(http, FLT, "liam.patel@contoso.com", courseSessionIds=[OSLO_AM])
        assert ok.status_code == 201  # not 409: the faulted attempts changed nothing


async def test_faults_are_reproducible_with_a_seed(sim_app: MakeApp) -> None:
    async def statuses(app: Simulator) -> list[int]:
        async with client(app) as http:
            return [(await http.get(f"/odata/v2/Courses({SAF})")).status_code for _ in range(30)]

    first = await statuses(sim_app(fault_rate=0.5, seed=3))
    assert first == await statuses(sim_app(fault_rate=0.5, seed=3))
    assert 200 in first
    assert set(first) - {200}


async def test_latency_delays_without_blocking(sim_app: MakeApp) -> None:
    app = sim_app(latency_ms=100)
    async with client(app) as http:
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(http.get, f"/odata/v2/Courses({SAF})")
        elapsed = time.perf_counter() - started
        assert 0.1 <= elapsed < 0.6  # concurrent, so about one delay in all
        assert app.stats.max_in_flight == 20
        started = time.perf_counter()
        await http.get("/_sim/stats")
        assert time.perf_counter() - started < 0.05


async def test_drop_in_process_raises_a_transport_error(sim_app: MakeApp) -> None:
    app = sim_app(drop_rate=1.0)
    async with client(app) as http:
        with pytest.raises(httpx.TransportError):
            await enroll(http, SAF, "liam.patel@contoso.com")
        app.drop_rate = 0.0
        assert (await enroll(http, SAF, "liam.patel@contoso.com")).status_code == 409
    assert app.stats.drops_injected == 1


# --- stats and testing endpoints -------------------------------------------------------------


async def test_stats_and_reset(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app) as http:
        await enroll(http, SAF, "liam.patel@contoso.com")
        await enroll(http, SAF, "liam.patel@contoso.com")
        await http.get(f"/odata/v2/Courses({SAF})")
        await http.get("/odata/v2/Users")
        await http.get("/odata/v2/Enrollments")
        await http.post(f"/odata/v2/Courses({SAF})/Unenroll", json={"userLoginName": "x@y.z"})
        stats = (await http.get("/_sim/stats")).json()
        assert stats["requests_total"] == 6
        assert stats["by_status"] == {"200": 3, "201": 1, "404": 1, "409": 1}
        assert stats["by_route"] == {
            "courses": 0, "course": 1, "enroll": 2, "unenroll": 1, "enrollments": 1, "users": 1,
            "other": 0,
        }  # fmt: skip
        assert stats["enroll_by_status"] == {"201": 1, "409": 1}
        assert stats["errors_by_code"] == {"UserAlreadyEnrolled": 1, "UserNotFound": 1}
        assert stats["enrollments_created"] == 1
        for name in ("enrollments_removed", "throttled", "faults_injected", "drops_injected"):
            assert stats[name] == 0
        assert stats == app.stats.to_dict()

        report = (await http.get("/_sim/enrollments")).json()
        assert len(report["value"]) == 4
        assert report["created"] == [
            {"CourseId": SAF, "UserLoginName": "liam.patel@contoso.com", "count": 1}
        ]
        assert report["max_created"] == 1
        assert report["taken_seats"][BERGEN] == 12

        assert (await http.get("/_sim/reset")).status_code == 405
        assert (await http.post("/_sim/reset")).status_code == 204
        assert (await http.get("/_sim/stats")).json()["requests_total"] == 0
        assert len((await http.get("/_sim/enrollments")).json()["value"]) == 3
        assert (await enroll(http, SAF, "liam.patel@contoso.com")).status_code == 201


def test_create_app_rejects_bad_options(sim_app: MakeApp) -> None:
    for options in (
        {"latency_ms": -1},
        {"rate_limit": 0},
        {"burst": 0.5},
        {"fault_rate": 1.5},
        {"drop_rate": -0.1},
        {"page_size": 0},
    ):
        with pytest.raises(ValueError, match=next(iter(options))):
            sim_app(**options)


# --- over a real socket ----------------------------------------------------------------------


@pytest.mark.slow
def test_server_restart_keeps_port_and_state(
    sim_app: MakeApp, sim_server: Callable[[Simulator], SimulatorServer]
) -> None:
    app = sim_app()
    server = sim_server(app)
    base = server.base_url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    with httpx.Client(base_url=base, auth=("api", FULL_KEY)) as http:
        created = http.post(
            f"/odata/v2/Courses({SAF})/Enroll", json={"userLoginName": "noah.kim@contoso.com"}
        )
        assert created.status_code == 201
        server.stop()
        with pytest.raises(httpx.ConnectError):
            http.get(f"/odata/v2/Courses({SAF})")
        server.start()
        assert server.base_url == base
        found = http.get(
            "/odata/v2/Enrollments",
            params={"$filter": f"CourseId eq {SAF} and UserLoginName eq 'noah.kim@contoso.com'"},
        )
        assert [e["Id"] for e in found.json()["value"]] == [created.json()["Id"]]
        next_link = http.get("/odata/v2/Users").json()
        assert "@odata.nextLink" not in next_link


@pytest.mark.slow
def test_drop_over_socket_enrolls_then_cuts_the_connection(
    sim_app: MakeApp, sim_server: Callable[[Simulator], SimulatorServer]
) -> None:
    app = sim_app(drop_rate=1.0, seed=1)
    server = sim_server(app)
    with httpx.Client(base_url=server.base_url, auth=("api", FULL_KEY)) as http:
        with pytest.raises(httpx.TransportError):
            http.post(
                f"/odata/v2/Courses({SAF})/Enroll",
                json={"userLoginName": "mia.johnson@contoso.com"},
            )
        look = http.get(
            "/odata/v2/Enrollments",
            params={"$filter": f"CourseId eq {SAF} and UserLoginName eq 'mia.johnson@contoso.com'"},
        )
        assert look.status_code == 200
        assert len(look.json()["value"]) == 1
        stats = http.get("/_sim/stats").json()
    assert stats["drops_injected"] == 1
    assert stats["requests_total"] == sum(stats["by_status"].values()) + stats["drops_injected"]
    assert app.creations == {(SAF, "mia.johnson@contoso.com"): 1}


@pytest.mark.slow
def test_abort_cuts_requests_in_flight(
    sim_app: MakeApp, sim_server: Callable[[Simulator], SimulatorServer]
) -> None:
    server = sim_server(sim_app(latency_ms=2000))
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            httpx.get(f"{server.base_url}/odata/v2/Courses({SAF})", auth=("api", FULL_KEY))
        except httpx.TransportError as exc:
            errors.append(exc)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.2)
    started = time.perf_counter()
    server.stop(abort=True)
    worker.join(timeout=5)
    assert time.perf_counter() - started < 1.5
    assert len(errors) == 1


@pytest.mark.slow
def test_course_look_ups_over_a_socket(
    sim_app: MakeApp, sim_server: Callable[[Simulator], SimulatorServer]
) -> None:
    server = sim_server(sim_app(page_size=5))
    with httpx.Client(base_url=server.base_url, auth=("", FULL_KEY)) as http:
        assert http.get("/odata/v2/Courses(101)").status_code == 400
        by_code = http.get("/odata/v2/Courses", params={"$filter": "CourseID eq 'FLT-201'"})
        (course,) = by_code.json()["value"]
        assert course["Id"] == FLT
        url: str | None = "/odata/v2/Courses?$select=Id,CourseID,Title&$count=true"
        seen: list[str] = []
        while url is not None:
            body = http.get(url).json()
            seen += [c["Id"] for c in body["value"]]
            url = body.get("@odata.nextLink")
            if url is not None:
                assert url.startswith(server.base_url)
        assert len(seen) == len(set(seen)) == body["@odata.count"] == 16
        sessions = http.get(f"/odata/v2/Courses({FLT})", params={"$expand": "CourseSessions"})
        assert {s["Title"] for s in sessions.json()["CourseSessions"]} >= {"Morning, Oslo"}
        waiting = http.post(
            f"/odata/v2/Courses({CPR})/Enroll",
            json={"userLoginName": "i:0#.f|membership|liam.patel@contoso.com",
                  "courseSessionIds": [LUNCH]},
        )  # fmt: skip
        assert waiting.status_code == 201
        assert waiting.json()["RegistrationStatus"] == "WaitingList"


# --- catalog ---------------------------------------------------------------------------------

TINY = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
TINY2 = "aaaaaaaa-bbbb-4ccc-8ddd-ffffffffffff"
TINY_SESSION = "11111111-2222-4333-8444-555555555555"


def _tiny_catalog() -> dict[str, Any]:
    return {
        "api_keys": [{"key": "k", "access": "FullControl"}],
        "courses": [
            {
                "Id": TINY,
                "CourseID": "T-1",
                "Title": "Tiny",
                "CourseType": "ClassRoom",
                "CourseSessionEnrollmentType": "EnrollToSingle",
                "CourseSessions": [
                    {"Id": TINY_SESSION, "StartDate": "+30d", "EndDate": "+30d3h",
                     "EnrollmentDeadline": "+29d12h", "MaxAttendees": 5},
                ],
            }
        ],
        "users": [
            {"LoginName": f"{CLAIMS}a@x.com", "Email": "a@x.com"},
            {"LoginName": "I:0#.F|Membership|b@x.com", "Email": "b@x.com"},
        ],
    }  # fmt: skip


def test_tiny_catalog_defaults() -> None:
    catalog = Catalog.from_dict(_tiny_catalog())
    (course,) = catalog.courses
    assert course.code == "T-1"
    assert GUID.fullmatch(course.catalog_id)
    assert (course.waiting_list_enabled, course.enrollment_without_sessions_allowed) == (
        False,
        True,
    )
    assert (course.max_attendees, course.enrollment_deadline, course.unenroll_disabled) == (
        None,
        None,
        False,
    )
    a, b = catalog.users
    assert GUID.fullmatch(a.id)
    assert a.id != b.id
    assert b.login_name == f"{CLAIMS}b@x.com"  # the claims prefix as LMS365 stores it
    assert Catalog.from_dict(_tiny_catalog()).users[0].id == a.id  # stable across loads
    assert catalog.course(TINY.upper()) is course
    assert catalog.course("{" + TINY + "}") is course
    assert catalog.course("1") is None
    assert catalog.resolve("A@X.COM") is a
    assert catalog.resolve("i:0#.f|membership|B@x.com") is b
    assert catalog.resolve(a.id.upper()) is a


def test_relative_dates_resolve_against_now() -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, 999000, tzinfo=UTC)
    data = _tiny_catalog()
    catalog = Catalog.from_dict(data, now=now)
    (session,) = catalog.courses[0].sessions
    base = now.replace(microsecond=0)
    assert session.start_date == base + timedelta(days=30)
    assert session.end_date == base + timedelta(days=30, hours=3)
    assert session.enrollment_deadline == base + timedelta(days=29, hours=12)
    data["courses"][0]["CourseSessions"][0]["EnrollmentDeadline"] = "-2d"
    (past,) = Catalog.from_dict(data, now=now).courses[0].sessions
    assert past.enrollment_deadline == base - timedelta(days=2)
    data["courses"][0]["CourseSessions"][0]["StartDate"] = "2026-12-01T09:00:00Z"
    data["courses"][0]["CourseSessions"][0]["EndDate"] = "2026-12-01T12:00:00+02:00"
    (absolute,) = Catalog.from_dict(data, now=now).courses[0].sessions
    assert absolute.start_date == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert absolute.end_date == datetime(2026, 12, 1, 10, tzinfo=UTC)
    data["courses"][0]["EnrollmentDeadline"] = "+1w"
    assert Catalog.from_dict(data, now=now).courses[0].enrollment_deadline == base + timedelta(
        weeks=1
    )


def test_local_start_follows_the_sessions_time_zone() -> None:
    data = _tiny_catalog()
    session = data["courses"][0]["CourseSessions"][0]
    session.update(StartDate="2027-01-15T14:00:00Z", TimeZone="Eastern Standard Time")
    assert Catalog.from_dict(data).courses[0].sessions[0].start_date_local == "2027-01-15T09:00:00"
    session.update(StartDate="2027-07-15T14:00:00Z")  # daylight saving time
    assert Catalog.from_dict(data).courses[0].sessions[0].start_date_local == "2027-07-15T10:00:00"
    session.update(TimeZone=None)
    assert Catalog.from_dict(data).courses[0].sessions[0].start_date_local is None


async def test_relative_dates_reach_the_api(catalog: Catalog) -> None:
    course = catalog.course(FLT)
    assert course is not None
    late = next(s for s in course.sessions if s.id == EVENING)
    now = datetime.now(UTC)
    assert late.enrollment_deadline is not None
    assert late.start_date is not None
    assert late.enrollment_deadline < now < late.start_date
    async with client(create_app(catalog)) as http:
        body = (await http.get(f"/odata/v2/Courses({FLT})?$expand=CourseSessions")).json()
    deadline = next(s for s in body["CourseSessions"] if s["Id"] == EVENING)["EnrollmentDeadline"]
    assert abs(parse_utc(deadline) - (now - timedelta(days=1))) < timedelta(hours=1)


def _group(d: dict[str, Any], **fields: Any) -> None:
    group = {"Id": "99999999-8888-4777-8666-555555555555", "Title": "G", "IsGroup": True}
    d["courses"][0]["CourseSessions"].append({**group, **fields})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["courses"][0].update(IsPublised=True), "unknown field"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(AttendeesCount=3), "unknown field"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(RegistrationDeadline="+1d"),
         "unknown field"),
        (lambda d: d["courses"].append(dict(d["courses"][0], CourseSessions=[])), "duplicate"),
        (lambda d: d["courses"][0].update(CourseType="Video"), "CourseType"),
        (lambda d: d["courses"][0].update(EnrollmentFlow="ManualApproval"), "EnrollmentFlow"),
        (lambda d: d["courses"][0].update(CourseSessionEnrollmentType=None), "ILT"),
        (lambda d: d["courses"][0].update(CourseType="ELearning", CourseSessionEnrollmentType=None),
         "sessions"),
        (lambda d: d["courses"][0].update(CourseID=101), "CourseID"),
        (lambda d: d["courses"][0].update(CourseCatalogId="main"), "GUID"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(StartDate="+3x"), "relative"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(Id="nope"), "GUID"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(TimeZone="Europe/Oslo"),
         "Windows time zone"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(TakenSeatsCount=-1), "negative"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(GroupId=TINY),
         "not a session group"),
        (lambda d: _group(d, StartDate="+1d"), "placeholders"),
        (lambda d: d["courses"][0].update(Id=101), "GUID"),
        (lambda d: d["courses"][0].update(Id="101"), "GUID"),
        (lambda d: d["users"][0].update(Id=1), "GUID"),
        (lambda d: d["users"][0].update(LoginName="a@x.com"), "claims form"),
        (lambda d: d["api_keys"][0].update(access="Admin"), "access"),
        (lambda d: d.update(api_keys=[]), "at least one"),
        (lambda d: d.update(max_enrollments_per_course=0), "at least 1"),
        (lambda d: d.update(enrollments=[{"CourseId": TINY, "UserLoginName": "zz@x.com"}]),
         "no user"),
        (lambda d: d.update(enrollments=[{"CourseId": TINY2, "UserLoginName": "a@x.com"}]),
         "no course"),
        (lambda d: d.update(enrollments=[{"CourseId": 1, "UserLoginName": "a@x.com"}]), "GUID"),
        (lambda d: d["users"].append({"LoginName": f"{CLAIMS}c@x.com", "Email": "a@x.com"}),
         "names both"),
        (lambda d: d.pop("users"), "missing"),
    ],
)  # fmt: skip
def test_invalid_catalogs_are_rejected(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    data = _tiny_catalog()
    change(data)
    with pytest.raises(CatalogError, match=message):
        Catalog.from_dict(data)
    assert issubclass(CatalogError, ValueError)


def test_load_catalog_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(broken)
    broken.write_text("[]", encoding="utf-8")
    with pytest.raises(CatalogError, match="JSON object"):
        load_catalog(broken)
