"""Check that the simulator follows the LMS365 API contract, in-process and over a socket."""

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
from tests.conftest import FULL_KEY, READ_ONLY_KEY

pytestmark = pytest.mark.anyio

# Fixed ids in sample_data/catalog.json.
FULL = "00576084-32b5-4891-b238-1f6f849e82b4"  # 103, AttendeesCount == MaxAttendees
LATE = "51472146-7c3b-4e97-bffc-73cc12c69150"  # 103, registration deadline passed
OPEN = "51d954e5-3506-44c6-a102-91111fd2fc55"  # 103, open, ends in 14 days
W1 = "a87d8e8b-b92e-4665-8dec-025ad37b1711"  # 104
W2 = "94e36beb-5db6-4b05-9b48-74064eccc27a"  # 104
D1 = "15ee1be4-53fd-4da7-ae00-2e749863841b"  # 105
D2 = "c4e7c2a6-d273-42e6-8bec-aa1f0bcaf818"  # 105
GROUP_LOGIN = "c:0o.c|federateddirectoryclaimprovider|ee7d702e-d833-4741-b2ff-5a15e9d6876c"
CLAIMS = "i:0#.f|membership|"

MakeApp = Callable[..., Simulator]


@asynccontextmanager
async def client(app: Simulator, *, key: str | None = FULL_KEY) -> AsyncIterator[httpx.AsyncClient]:
    """Talk to the app in-process, authenticated with ``key`` (None: no credentials)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://lms.test",
        auth=("api", key) if key is not None else None,
    ) as http:
        yield http


async def enroll(
    http: httpx.AsyncClient, course: int | str, login: str, **body: Any
) -> httpx.Response:
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


# --- auth and routing ------------------------------------------------------------------------


async def test_missing_or_wrong_key_is_401(sim_app: MakeApp) -> None:
    app = sim_app()
    for key in (None, "not-a-key"):
        async with client(app, key=key) as http:
            response = await http.get("/odata/v2/Courses(101)")
            assert response.status_code == 401
            assert error_code(response) == "Unauthorized"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://lms.test", auth=("admin", FULL_KEY)
    ) as http:
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 401


async def test_read_only_key_reads_but_cannot_post(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app, key=READ_ONLY_KEY) as http:
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 200
        for action in ("Enroll", "Unenroll"):
            response = await http.post(
                f"/odata/v2/Courses(101)/{action}", json={"userLoginName": "liam.patel@contoso.com"}
            )
            assert response.status_code == 403
            assert error_code(response) == "Forbidden"
    assert app.stats.enrollments_created == 0


async def test_basic_scheme_is_case_insensitive(sim_app: MakeApp) -> None:
    token = base64.b64encode(f"api:{FULL_KEY}".encode()).decode()
    async with client(sim_app(), key=None) as http:
        response = await http.get(
            "/odata/v2/Courses(101)", headers={"Authorization": f"basic {token}"}
        )
        assert response.status_code == 200


async def test_course_read_with_and_without_sessions(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        plain = (await http.get("/odata/v2/Courses(103)")).json()
        assert "CourseSessions" not in plain
        assert plain["CourseType"] == "ClassRoom"
        assert plain["CourseSessionEnrollmentType"] == "EnrollToSingle"
        response = await http.get("/odata/v2/Courses(103)?$expand=CourseSessions")
        assert response.status_code == 200
        sessions = {s["Id"]: s for s in response.json()["CourseSessions"]}
        assert set(sessions) == {FULL, LATE, OPEN}
        assert sessions[FULL]["AttendeesCount"] == sessions[FULL]["MaxAttendees"]
        assert set(sessions[OPEN]) == {
            "Id", "Title", "StartDate", "EndDate", "RegistrationDeadline", "MaxAttendees",
            "AttendeesCount",
        }  # fmt: skip
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sessions[OPEN]["StartDate"])
        elearning = await http.get("/odata/v2/Courses(101)", params={"$expand": "CourseSessions"})
        assert elearning.json()["CourseSessions"] == []
        assert elearning.json()["CourseSessionEnrollmentType"] is None


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/odata/v2/Courses(999)", 404, "CourseNotFound"),
        ("POST", "/odata/v2/Courses(999)/Enroll", 404, "CourseNotFound"),
        ("GET", "/odata/v2/Courses(abc)", 400, "BadRequest"),
        ("POST", "/odata/v2/Courses(1.5)/Enroll", 400, "BadRequest"),
        ("GET", "/odata/v2/Nope", 404, "NotFound"),
        ("GET", "/odata/v2/Courses(101)/Frobnicate", 404, "NotFound"),
        ("GET", "/elsewhere", 404, "NotFound"),
        ("GET", "/odata/v2/Courses(101)/Enroll", 405, "MethodNotAllowed"),
        ("POST", "/odata/v2/Enrollments", 405, "MethodNotAllowed"),
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
            "/odata/v2/Courses(101)/Enroll",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400
        assert error_code(response) == "BadRequest"
    assert app.stats.enrollments_created == 0


# --- enroll: the session-rules table ---------------------------------------------------------


@pytest.mark.parametrize(
    ("course", "sessions", "extra", "status", "expect"),
    [
        # ELearning / TrainingPlan
        (101, [], {}, 201, []),
        (102, [], {}, 201, []),
        (101, [OPEN], {}, 400, "InvalidCourseSession"),
        (102, [D1], {}, 400, "InvalidCourseSession"),
        # ILT EnrollToSingle
        (103, [], {}, 201, []),
        (103, [OPEN], {}, 201, [OPEN]),
        (103, [OPEN.upper()], {}, 201, [OPEN]),
        (103, [OPEN, FULL], {}, 400, "TooManySessions"),
        # ILT EnrollToMultiple
        (104, [], {}, 201, []),
        (104, [W1, W2], {}, 201, [W1, W2]),
        (104, [W2], {}, 201, [W2]),
        # ILT EnrollToAll
        (105, [], {}, 201, [D1, D2]),
        (105, [D2], {}, 201, [D2]),
        # any ILT
        (103, [W1], {}, 400, "InvalidCourseSession"),
        (104, ["not-a-guid"], {}, 400, "InvalidCourseSession"),
        (103, [LATE], {}, 400, "SessionClosed"),
        (103, [FULL], {}, 400, "MaxAttendeesReached"),
        (103, [FULL], {"ignoreMaxAttendees": True}, 201, [FULL]),
        # unavailable courses
        (106, [], {}, 400, "CourseNotAvailable"),
        (107, [], {}, 400, "CourseNotAvailable"),
        (108, [], {}, 400, "CourseNotAvailable"),
    ],
)
async def test_session_rules(
    sim_app: MakeApp,
    course: int,
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
            assert body["courseSessionId"] == (expect[0] if expect else None)
            assert app.stats.enrollments_created == 1
        else:
            assert error_code(response) == expect
            assert not [e for e in app.enrollments if e.user_id == 1002]
            assert app.stats.enrollments_created == 0


async def test_deprecated_single_session_field(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        response = await enroll(http, 103, "henry.hall@contoso.com", courseSessionId=OPEN)
        assert response.status_code == 201
        assert response.json()["CourseSessionIds"] == [OPEN]
        # Both fields at once: the union counts, so EnrollToSingle sees two sessions.
        both = await enroll(
            http, 103, "ella.young@contoso.com", courseSessionId=FULL, courseSessionIds=[OPEN]
        )
        assert both.status_code == 400
        assert error_code(both) == "TooManySessions"


async def test_ended_session_is_closed(sim_app: MakeApp) -> None:
    later = datetime.now(UTC) + timedelta(days=15)  # after OPEN's end (+14d3h)
    async with client(sim_app(now=lambda: later)) as http:
        response = await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
        assert response.status_code == 400
        assert error_code(response) == "SessionClosed"
        # EnrollToAll without ids skips sessions closed by then: 105's deadline was +18d.
        all_open = await enroll(http, 105, "liam.patel@contoso.com")
        assert all_open.json()["CourseSessionIds"] == [D1, D2]


async def test_unknown_user_is_404(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        for login in ("pat.unknown@contoso.com", "lily carter@contoso.com", f"{CLAIMS}nobody@x.y"):
            response = await enroll(http, 101, login)
            assert response.status_code == 404
            assert error_code(response) == "UserNotFound"


async def test_enrollment_body_matches_contract(sim_app: MakeApp) -> None:
    fixed = datetime(2026, 11, 27, 10, 15, 2, 123456, tzinfo=UTC)
    app = sim_app(now=lambda: fixed)
    async with client(app) as http:
        first = await enroll(http, 103, "Liam.Patel@CONTOSO.com", courseSessionIds=[OPEN])
        second = await enroll(http, 101, f"{CLAIMS}sofia.garcia@contoso.com")
    assert first.status_code == 201
    assert first.headers["content-type"] == "application/json"
    body = first.json()
    assert body == {
        "Id": body["Id"],
        "CourseId": 103,
        "UserId": 1002,
        "UserLoginName": f"{CLAIMS}liam.patel@contoso.com",
        "RegistrationDate": "2026-11-27T10:15:02.123Z",
        "RegistrationStatus": "Active",
        "CoursePassingStatus": "NotStarted",
        "courseSessionId": OPEN,
        "CourseSessionIds": [OPEN],
    }
    assert isinstance(body["Id"], int)
    assert second.json()["Id"] > body["Id"]


async def test_enrolling_takes_a_seat(sim_app: MakeApp) -> None:
    app = sim_app()
    before = app.attendees_count(OPEN)
    async with client(app) as http:
        await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
        course = (await http.get("/odata/v2/Courses(103)?$expand=CourseSessions")).json()
    counts = {s["Id"]: s["AttendeesCount"] for s in course["CourseSessions"]}
    assert counts[OPEN] == before + 1 == app.attendees_count(OPEN)


async def test_last_seat_then_full() -> None:
    data = _tiny_catalog()
    data["courses"][0]["CourseSessions"][0]["MaxAttendees"] = 1
    app = create_app(Catalog.from_dict(data))
    async with client(app, key="k") as http:
        assert (
            await enroll(http, 1, "a@x.com", courseSessionIds=[TINY_SESSION])
        ).status_code == 201
        full = await enroll(http, 1, "b@x.com", courseSessionIds=[TINY_SESSION])
        assert full.status_code == 400
        assert error_code(full) == "MaxAttendeesReached"


async def test_already_enrolled_is_409_whatever_the_spelling(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app) as http:
        assert (await enroll(http, 101, "liam.patel@contoso.com")).status_code == 201
        for login in (f"{CLAIMS}LIAM.PATEL@contoso.com", "Liam.Patel@contoso.com"):
            response = await enroll(http, 101, login)
            assert response.status_code == 409
            assert error_code(response) == "UserAlreadyEnrolled"
        seeded = await enroll(http, 101, "ava.thompson@contoso.com")  # in the catalog
        assert seeded.status_code == 409
        # Enrolled in the course only, asking again for a session is still a duplicate.
        assert (await enroll(http, 103, "henry.hall@contoso.com")).status_code == 201
        again = await enroll(http, 103, "henry.hall@contoso.com", courseSessionIds=[OPEN])
        assert again.status_code == 409
    assert app.creations[(101, f"{CLAIMS}liam.patel@contoso.com")] == 1


async def test_manual_approval_is_pending(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        pending = await enroll(http, 109, "layla.collins@contoso.com")
        assert pending.status_code == 201
        assert pending.json()["RegistrationStatus"] == "Pending"
        # A pending enrollment is held: asking again is a duplicate.
        assert (await enroll(http, 109, "layla.collins@contoso.com")).status_code == 409
        forced = await enroll(http, 109, "julian.stewart@contoso.com", ignoreEnrollmentFlow=True)
        assert forced.json()["RegistrationStatus"] == "Active"
        auto = await enroll(http, 101, "julian.stewart@contoso.com")
        assert auto.json()["RegistrationStatus"] == "Active"


async def test_groups_enroll_by_login_name_or_id(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        by_login = await enroll(http, 101, GROUP_LOGIN.upper())
        assert by_login.status_code == 201
        assert by_login.json()["UserId"] == 5001
        assert by_login.json()["UserLoginName"] == GROUP_LOGIN
        by_id = await enroll(http, 102, "5002")
        assert by_id.status_code == 201
        assert by_id.json()["UserId"] == 5002
        assert (await enroll(http, 101, "5001")).status_code == 409


# --- look-ups --------------------------------------------------------------------------------


async def test_enrollments_filters(sim_app: MakeApp) -> None:
    async with client(sim_app()) as http:
        await enroll(http, 101, "liam.patel@contoso.com")
        await enroll(http, 102, "liam.patel@contoso.com")
        await enroll(http, 101, "sofia.garcia@contoso.com")

        async def ids(filter_: str) -> list[tuple[int, str]]:
            response = await http.get("/odata/v2/Enrollments", params={"$filter": filter_})
            assert response.status_code == 200, response.text
            return [(e["CourseId"], e["UserLoginName"]) for e in response.json()["value"]]

        liam = f"{CLAIMS}liam.patel@contoso.com"
        assert await ids("CourseId eq 102") == [(102, liam)]
        assert await ids("UserLoginName eq 'LIAM.patel@contoso.com'") == [(101, liam), (102, liam)]
        assert await ids(f"UserLoginName eq '{liam}' and CourseId eq 101") == [(101, liam)]
        assert await ids("CourseId eq 101 AND  UserLoginName eq 'liam.patel@contoso.com'") == [
            (101, liam)
        ]
        assert await ids("CourseId eq 103 and UserLoginName eq 'liam.patel@contoso.com'") == []
        assert await ids("UserLoginName eq 'nobody@contoso.com'") == []
        assert await ids("CourseId eq 101 and CourseId eq 102") == []
        two_people = (
            "UserLoginName eq 'liam.patel@contoso.com' and "
            "UserLoginName eq 'sofia.garcia@contoso.com'"
        )
        assert await ids(two_people) == []
        everyone = await http.get("/odata/v2/Enrollments")
        assert len(everyone.json()["value"]) == 5  # two seeded in the catalog


async def test_filter_escaped_quote_and_raw_encoding(sim_app: MakeApp) -> None:
    login = "conor.o'brien@contoso.com"
    async with client(sim_app()) as http:
        assert (await enroll(http, 101, login)).status_code == 201
        escaped = login.replace("'", "''")
        response = await http.get(
            "/odata/v2/Enrollments",
            params={"$filter": f"CourseId eq 101 and UserLoginName eq '{escaped}'"},
        )
        assert [e["UserId"] for e in response.json()["value"]] == [1041]
        raw = (
            "/odata/v2/Enrollments?%24filter=UserLoginName%20eq%20"
            "%27conor.o%27%27brien%40contoso.com%27%20and%20CourseId%20eq%20101"
        )
        assert len((await http.get(raw)).json()["value"]) == 1
        users = await http.get("/odata/v2/Users", params={"$filter": f"Email eq '{escaped}'"})
        assert users.json()["value"][0]["Title"] == "Conor O'Brien"


@pytest.mark.parametrize(
    "filter_",
    [
        "CourseId gt 5",
        "Title eq 'x'",
        "CourseId eq 'x'",
        "UserLoginName eq 7",
        "UserLoginName eq 'unterminated",
        "CourseId eq 101 or CourseId eq 102",
        "CourseId eq 101 and",
        "CourseId eq 101and UserLoginName eq 'a'",
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
            assert (await enroll(http, 101, login)).status_code == 201
        url: str | None = "/odata/v2/Enrollments?$filter=CourseId eq 101"
        pages: list[list[int]] = []
        while url is not None:
            body = (await http.get(url)).json()
            pages.append([e["Id"] for e in body["value"]])
            url = body.get("@odata.nextLink")
            if url is not None:
                assert url.startswith("http://lms.test/odata/v2/Enrollments?")
                assert "%24filter" not in url  # readable option names
    assert [len(p) for p in pages] == [2, 2, 1]  # 4 new + the seeded one
    flat = [i for p in pages for i in p]
    assert flat == sorted(set(flat))
    assert len(flat) == 5

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
            "Id": 1004,
            "LoginName": f"{CLAIMS}noah.kim@contoso.com",
            "Email": "noah.kim@contoso.com",
            "Title": "Noah Kim",
        }
        by_login = await http.get(
            "/odata/v2/Users", params={"$filter": f"LoginName eq '{CLAIMS}noah.kim@contoso.com'"}
        )
        assert by_login.json()["value"] == [user]
        nobody = await http.get("/odata/v2/Users", params={"$filter": "Email eq 'x@contoso.com'"})
        assert nobody.json() == {"value": []}
        group = await http.get(
            "/odata/v2/Users", params={"$filter": f"LoginName eq '{GROUP_LOGIN}'"}
        )
        assert group.json()["value"] == []
        bad = await http.get("/odata/v2/Users", params={"$filter": "CourseId eq 1"})
        assert bad.status_code == 400


# --- unenroll --------------------------------------------------------------------------------


async def test_unenroll_frees_the_seat(sim_app: MakeApp) -> None:
    app = sim_app()
    seats = app.attendees_count(OPEN)
    async with client(app) as http:
        await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
        assert app.attendees_count(OPEN) == seats + 1
        gone = await http.post(
            "/odata/v2/Courses(103)/Unenroll",
            json={"userLoginName": f"{CLAIMS}liam.patel@contoso.com", "message": "Left"},
        )
        assert gone.status_code == 204
        assert gone.content == b""
        assert app.attendees_count(OPEN) == seats
        left = await http.get(
            "/odata/v2/Enrollments", params={"$filter": "UserLoginName eq 'liam.patel@contoso.com'"}
        )
        assert left.json()["value"] == []
        again = await http.post(
            "/odata/v2/Courses(103)/Unenroll", json={"userLoginName": "liam.patel@contoso.com"}
        )
        assert again.status_code == 400
        assert error_code(again) == "UserNotEnrolled"
        back = await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
        assert back.status_code == 201
        unknown = await http.post(
            "/odata/v2/Courses(103)/Unenroll", json={"userLoginName": "pat.unknown@contoso.com"}
        )
        assert error_code(unknown) == "UserNotFound"
        seeded = await http.post(
            "/odata/v2/Courses(101)/Unenroll", json={"userLoginName": "ava.thompson@contoso.com"}
        )
        assert seeded.status_code == 204
    assert app.stats.enrollments_removed == 2
    assert app.creations[(103, f"{CLAIMS}liam.patel@contoso.com")] == 2


# --- throttle, faults, latency, drops --------------------------------------------------------


async def test_throttle_answers_429_with_retry_after(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=0.5, burst=2)
    async with client(app) as http:
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 200
        assert (await enroll(http, 101, "liam.patel@contoso.com")).status_code == 201
        throttled = await enroll(http, 101, "sofia.garcia@contoso.com")
        assert throttled.status_code == 429
        assert error_code(throttled) == "TooManyRequests"
        assert throttled.headers["retry-after"] == "2"  # one token at 0.5/s
        assert (await http.get("/_sim/stats")).status_code == 200  # never throttled
    async with client(app, key=READ_ONLY_KEY) as http:  # another key, another bucket
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 200
    assert [e.user_id for e in app.enrollments if e.course_id == 101] == [1001, 1002]
    assert app.stats.throttled == 1
    assert app.stats.by_status[429] == 1


async def test_throttle_comes_before_auth_and_retry_after_is_at_least_1(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=2)  # burst defaults to one second's worth: 2
    async with client(app, key="wrong") as http:
        statuses = [(await http.get("/odata/v2/Courses(101)")).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]

    app = sim_app(rate_limit=100, burst=1)
    async with client(app, key="wrong") as http:
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 401
        throttled = await http.get("/odata/v2/Courses(101)")
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "1"


async def test_throttle_refills(sim_app: MakeApp) -> None:
    app = sim_app(rate_limit=50, burst=1)
    async with client(app) as http:
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 200
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 429
        await anyio.sleep(0.05)
        assert (await http.get("/odata/v2/Courses(101)")).status_code == 200


async def test_faults_have_no_effect(sim_app: MakeApp) -> None:
    app = sim_app(fault_rate=1.0, seed=7)
    seen: set[int] = set()
    async with client(app) as http:
        for _ in range(40):
            response = await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
            assert response.status_code in {500, 502, 503, 504}
            assert error_code(response)
            if "retry-after" in response.headers:
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
            seen.add(response.status_code)
        assert seen == {500, 502, 503, 504}
        assert app.stats.faults_injected == 40
        assert app.stats.enrollments_created == 0
        assert app.attendees_count(OPEN) == 8
        app.fault_rate = 0.0
        ok = await enroll(http, 103, "liam.patel@contoso.com", courseSessionIds=[OPEN])
        assert ok.status_code == 201  # not 409: the faulted attempts changed nothing


async def test_faults_are_reproducible_with_a_seed(sim_app: MakeApp) -> None:
    async def statuses(app: Simulator) -> list[int]:
        async with client(app) as http:
            return [(await http.get("/odata/v2/Courses(101)")).status_code for _ in range(30)]

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
                group.start_soon(http.get, "/odata/v2/Courses(101)")
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
            await enroll(http, 101, "liam.patel@contoso.com")
        app.drop_rate = 0.0
        assert (await enroll(http, 101, "liam.patel@contoso.com")).status_code == 409
    assert app.stats.drops_injected == 1


# --- stats and testing endpoints -------------------------------------------------------------


async def test_stats_and_reset(sim_app: MakeApp) -> None:
    app = sim_app()
    async with client(app) as http:
        await enroll(http, 101, "liam.patel@contoso.com")
        await enroll(http, 101, "liam.patel@contoso.com")
        await http.get("/odata/v2/Courses(101)")
        await http.get("/odata/v2/Users")
        await http.get("/odata/v2/Enrollments")
        await http.post("/odata/v2/Courses(101)/Unenroll", json={"userLoginName": "x@y.z"})
        stats = (await http.get("/_sim/stats")).json()
        assert stats["requests_total"] == 6
        assert stats["by_status"] == {"200": 3, "201": 1, "404": 1, "409": 1}
        assert stats["by_route"] == {
            "course": 1, "enroll": 2, "unenroll": 1, "enrollments": 1, "users": 1, "other": 0,
        }  # fmt: skip
        assert stats["enroll_by_status"] == {"201": 1, "409": 1}
        assert stats["errors_by_code"] == {"UserAlreadyEnrolled": 1, "UserNotFound": 1}
        assert stats["enrollments_created"] == 1
        for name in ("enrollments_removed", "throttled", "faults_injected", "drops_injected"):
            assert stats[name] == 0
        assert stats == app.stats.to_dict()

        report = (await http.get("/_sim/enrollments")).json()
        assert len(report["value"]) == 3
        assert report["created"] == [
            {"CourseId": 101, "UserLoginName": f"{CLAIMS}liam.patel@contoso.com", "count": 1}
        ]
        assert report["max_created"] == 1
        assert report["attendees"][FULL] == 12

        assert (await http.get("/_sim/reset")).status_code == 405
        assert (await http.post("/_sim/reset")).status_code == 204
        assert (await http.get("/_sim/stats")).json()["requests_total"] == 0
        assert len((await http.get("/_sim/enrollments")).json()["value"]) == 2
        assert (await enroll(http, 101, "liam.patel@contoso.com")).status_code == 201


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
            "/odata/v2/Courses(101)/Enroll", json={"userLoginName": "noah.kim@contoso.com"}
        )
        assert created.status_code == 201
        server.stop()
        with pytest.raises(httpx.ConnectError):
            http.get("/odata/v2/Courses(101)")
        server.start()
        assert server.base_url == base
        found = http.get(
            "/odata/v2/Enrollments",
            params={"$filter": "CourseId eq 101 and UserLoginName eq 'noah.kim@contoso.com'"},
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
                "/odata/v2/Courses(101)/Enroll", json={"userLoginName": "mia.johnson@contoso.com"}
            )
        look = http.get(
            "/odata/v2/Enrollments",
            params={"$filter": "CourseId eq 101 and UserLoginName eq 'mia.johnson@contoso.com'"},
        )
        assert look.status_code == 200
        assert len(look.json()["value"]) == 1
        stats = http.get("/_sim/stats").json()
    assert stats["drops_injected"] == 1
    assert stats["requests_total"] == sum(stats["by_status"].values()) + stats["drops_injected"]
    assert app.creations == {(101, f"{CLAIMS}mia.johnson@contoso.com"): 1}


@pytest.mark.slow
def test_abort_cuts_requests_in_flight(
    sim_app: MakeApp, sim_server: Callable[[Simulator], SimulatorServer]
) -> None:
    server = sim_server(sim_app(latency_ms=2000))
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            httpx.get(f"{server.base_url}/odata/v2/Courses(101)", auth=("api", FULL_KEY))
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


# --- catalog ---------------------------------------------------------------------------------

TINY_SESSION = "11111111-2222-3333-4444-555555555555"


def _tiny_catalog() -> dict[str, Any]:
    return {
        "api_keys": [{"key": "k", "access": "FullControl"}],
        "courses": [
            {
                "Id": 1,
                "Title": "Tiny",
                "CourseType": "ClassRoom",
                "CourseSessionEnrollmentType": "EnrollToSingle",
                "CourseSessions": [
                    {"Id": TINY_SESSION, "StartDate": "+30d", "EndDate": "+30d3h",
                     "RegistrationDeadline": "+29d12h", "MaxAttendees": 5},
                ],
            }
        ],
        "users": [
            {"Id": 1, "LoginName": f"{CLAIMS}a@x.com", "Email": "a@x.com"},
            {"Id": 2, "LoginName": f"{CLAIMS}b@x.com", "Email": "b@x.com"},
        ],
    }  # fmt: skip


def test_relative_dates_resolve_against_now() -> None:
    now = datetime(2026, 3, 1, 12, 0, 30, 999000, tzinfo=UTC)
    data = _tiny_catalog()
    catalog = Catalog.from_dict(data, now=now)
    (session,) = catalog.courses[0].sessions
    base = now.replace(microsecond=0)
    assert session.start_date == base + timedelta(days=30)
    assert session.end_date == base + timedelta(days=30, hours=3)
    assert session.registration_deadline == base + timedelta(days=29, hours=12)
    data["courses"][0]["CourseSessions"][0]["RegistrationDeadline"] = "-2d"
    (past,) = Catalog.from_dict(data, now=now).courses[0].sessions
    assert past.registration_deadline == base - timedelta(days=2)
    data["courses"][0]["CourseSessions"][0]["StartDate"] = "2026-12-01T09:00:00Z"
    data["courses"][0]["CourseSessions"][0]["EndDate"] = "2026-12-01T12:00:00+02:00"
    (absolute,) = Catalog.from_dict(data, now=now).courses[0].sessions
    assert absolute.start_date == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert absolute.end_date == datetime(2026, 12, 1, 10, tzinfo=UTC)


async def test_relative_dates_reach_the_api(catalog: Catalog) -> None:
    course = catalog.course(103)
    assert course is not None
    late = next(s for s in course.sessions if s.id == LATE)
    now = datetime.now(UTC)
    assert late.registration_deadline is not None
    assert late.start_date is not None
    assert late.registration_deadline < now < late.start_date
    async with client(create_app(catalog)) as http:
        body = (await http.get("/odata/v2/Courses(103)?$expand=CourseSessions")).json()
    deadline = next(s for s in body["CourseSessions"] if s["Id"] == LATE)["RegistrationDeadline"]
    served = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    assert abs(served - (now - timedelta(days=1))) < timedelta(hours=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["courses"][0].update(IsPublised=True), "unknown field"),
        (lambda d: d["courses"].append(dict(d["courses"][0], CourseSessions=[])), "duplicate"),
        (lambda d: d["courses"][0].update(CourseType="Video"), "CourseType"),
        (lambda d: d["courses"][0].update(CourseSessionEnrollmentType=None), "ILT"),
        (lambda d: d["courses"][0].update(CourseType="ELearning", CourseSessionEnrollmentType=None),
         "sessions"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(StartDate="+3x"), "relative"),
        (lambda d: d["courses"][0]["CourseSessions"][0].update(Id="nope"), "GUID"),
        (lambda d: d["courses"][0].update(Id="1"), "integer"),
        (lambda d: d["api_keys"][0].update(access="Admin"), "access"),
        (lambda d: d.update(api_keys=[]), "at least one"),
        (lambda d: d.update(enrollments=[{"CourseId": 1, "UserLoginName": "zz@x.com"}]),
         "no user"),
        (lambda d: d.update(enrollments=[{"CourseId": 9, "UserLoginName": "a@x.com"}]),
         "no course"),
        (lambda d: d["users"].append({"Id": 3, "LoginName": "a@x.com", "Email": "c@x.com"}),
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
