"""The client against scripted answers: retries, throttling, doubt, fatal keys."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import respx

from batch_enroll.client import AuthFailure, LmsClient, canonical_login, odata_quote
from batch_enroll.model import (
    ALREADY_ENROLLED,
    ENROLLED,
    FAILED,
    UNENROLL,
    UNENROLLED,
    WAITLISTED,
    Job,
)
from batch_enroll.options import ConnectionOptions
from batch_enroll.ratelimit import RateLimiter

BASE = "https://tenant.example"
COURSE = "65c61b1a-04c1-46e6-9d6e-41576a0ce14f"
OTHER_COURSE = "0f0e0d0c-0b0a-4909-8807-060504030201"
ENROLL_URL = f"{BASE}/odata/v2/Courses({COURSE})/Enroll"
ENROLLMENTS_URL = f"{BASE}/odata/v2/Enrollments"
KEY = "sekrit-test-key-123"

pytestmark = pytest.mark.anyio


class SpyLimiter(RateLimiter):
    """A fast limiter that remembers what the client told it."""

    def __init__(self) -> None:
        super().__init__(rate=10_000)
        self.throttles: list[float | None] = []

    def on_throttle(self, retry_after: float | None) -> None:
        self.throttles.append(retry_after)
        super().on_throttle(retry_after)


def enrollment(**extra: Any) -> dict[str, Any]:
    body = {
        "Id": "9b7d6f3e-1111-4222-8333-444455556666",
        "CourseId": COURSE.upper(),
        "UserLoginName": "i:0#.f|membership|kay@contoso.com",
        "RegistrationDate": "2026-11-27T10:15:02.123Z",
        "RegistrationStatus": "Active",
    }
    body.update(extra)
    return body


def error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{code} happened"}}


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)


@pytest.fixture
def limiter() -> SpyLimiter:
    return SpyLimiter()


@pytest.fixture
def make_client(router: respx.Router, limiter: SpyLimiter) -> Any:
    def make(**kwargs: Any) -> LmsClient:
        options: dict[str, Any] = {
            "base_url": BASE,
            "api_key": KEY,
            "limiter": limiter,
            "transport": httpx.MockTransport(router.async_handler),
            "backoff_base": 0.001,
            "max_retries": 3,
        }
        options.update(kwargs)
        own = {name: options.pop(name) for name in ("limiter", "backoff_base")}
        return LmsClient(ConnectionOptions(**options), **own)

    return make


JOB = Job(index=0, row=2, course_id=COURSE, login="kay@contoso.com", session_ids=("3f2b",))


async def test_429_then_500_then_201_enrolls_once(router, make_client, limiter) -> None:
    route = router.post(ENROLL_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0"}, json=error("TooManyRequests")),
            httpx.Response(500, json=error("Boom")),
            httpx.Response(201, json=enrollment()),
        ]
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ENROLLED
    assert result.attempts == 3
    assert result.http_status == 201
    assert result.registration_date == "2026-11-27T10:15:02.123Z"
    assert result.enrollment_id == "9b7d6f3e-1111-4222-8333-444455556666"
    assert route.call_count == 3
    assert limiter.throttles == [0.0]


async def test_request_body_and_basic_auth(router, make_client) -> None:
    route = router.post(ENROLL_URL).mock(return_value=httpx.Response(201, json=enrollment()))
    async with make_client() as client:
        await client.enroll(
            Job(
                index=0,
                row=2,
                course_id=COURSE,
                login="kay@contoso.com",
                session_ids=("a", "b"),
                ignore_max_attendees=True,
            )
        )
    request = route.calls.last.request
    import json

    assert json.loads(request.content) == {
        "userLoginName": "kay@contoso.com",
        "courseSessionIds": ["a", "b"],
        "ignoreMaxAttendees": True,
    }
    assert request.headers["Authorization"] == httpx.BasicAuth("api", KEY)._auth_header


async def test_sessions_are_left_out_when_empty(router, make_client) -> None:
    route = router.post(ENROLL_URL).mock(return_value=httpx.Response(201, json=enrollment()))
    async with make_client() as client:
        await client.enroll(Job(index=0, row=2, course_id=COURSE, login="kay@contoso.com"))
    import json

    assert json.loads(route.calls.last.request.content) == {"userLoginName": "kay@contoso.com"}


async def test_retry_after_pauses_the_shared_limiter(router, make_client, limiter) -> None:
    router.post(ENROLL_URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "1"}),
            httpx.Response(201, json=enrollment()),
        ]
    )
    async with make_client() as client:
        started = time.monotonic()
        result = await client.enroll(JOB)
        waited = time.monotonic() - started
    assert result.status == ENROLLED
    assert limiter.throttles == [1.0]
    assert waited >= 0.9


async def test_401_raises_auth_failure(router, make_client) -> None:
    router.post(ENROLL_URL).mock(return_value=httpx.Response(401, json=error("Unauthorized")))
    async with make_client() as client:
        with pytest.raises(AuthFailure) as caught:
            await client.enroll(JOB)
    assert caught.value.outcome.http_status == 401
    assert KEY not in str(caught.value)


async def test_403_raises_auth_failure(router, make_client) -> None:
    router.post(ENROLL_URL).mock(return_value=httpx.Response(403, json=error("Forbidden")))
    async with make_client() as client:
        with pytest.raises(AuthFailure):
            await client.enroll(JOB)


async def test_409_is_already_enrolled_with_existing_date(router, make_client) -> None:
    router.post(ENROLL_URL).mock(
        return_value=httpx.Response(409, json=error("UserAlreadyEnrolled"))
    )
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(200, json={"value": [enrollment(Id=7)]})
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ALREADY_ENROLLED
    assert result.http_status == 409
    assert result.enrollment_id == "7"
    assert result.registration_date == "2026-11-27T10:15:02.123Z"


async def test_400_is_failed_without_retry(router, make_client) -> None:
    route = router.post(ENROLL_URL).mock(
        return_value=httpx.Response(400, json=error("SessionClosed"))
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == FAILED
    assert result.error_code == "SessionClosed"
    assert route.call_count == 1


async def test_500s_give_up_after_max_retries(router, make_client) -> None:
    route = router.post(ENROLL_URL).mock(return_value=httpx.Response(503))
    async with make_client(max_retries=2) as client:
        result = await client.enroll(JOB)
    assert result.status == FAILED
    assert route.call_count == 3
    assert result.attempts == 3
    assert "gave up after 3 attempts" in result.error_message


async def test_connect_error_is_retried_without_asking(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=enrollment())]
    )
    lookup = router.get(ENROLLMENTS_URL).mock(return_value=httpx.Response(200, json={"value": []}))
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ENROLLED
    assert post.call_count == 2
    assert lookup.call_count == 0


async def test_timeout_asks_before_resending_and_finds_it_landed(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(side_effect=[httpx.ReadTimeout("slow")])
    lookup = router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(200, json={"value": [enrollment(Id=55)]})
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ENROLLED
    assert result.enrollment_id == "55"
    assert post.call_count == 1
    flt = lookup.calls.last.request.url.params["$filter"]
    # The course GUID goes unquoted; the stored claims form is asked for first.
    assert flt == f"CourseId eq {COURSE} and UserLoginName eq 'i:0#.f|membership|kay@contoso.com'"


async def test_dropped_connection_not_landed_is_sent_again(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(
        side_effect=[
            httpx.RemoteProtocolError("peer closed connection"),
            httpx.Response(201, json=enrollment()),
        ]
    )
    lookup = router.get(ENROLLMENTS_URL).mock(return_value=httpx.Response(200, json={"value": []}))
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ENROLLED
    assert post.call_count == 2
    # The plain e-mail and its claims form were both looked for before resending.
    assert lookup.call_count == 2


async def test_502_then_409_means_our_attempt_landed(router, make_client) -> None:
    router.post(ENROLL_URL).mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(409, json=error("UserAlreadyEnrolled")),
        ]
    )
    # The enrollment shows up only after the first look (eventual consistency).
    router.get(ENROLLMENTS_URL).mock(
        side_effect=[
            httpx.Response(200, json={"value": []}),
            httpx.Response(200, json={"value": []}),
            httpx.Response(200, json={"value": [enrollment(Id=9)]}),
        ]
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == ENROLLED
    assert result.enrollment_id == "9"


async def test_unanswerable_doubt_is_not_resent(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(side_effect=[httpx.ReadTimeout("slow")])
    router.get(ENROLLMENTS_URL).mock(return_value=httpx.Response(503))
    async with make_client(max_retries=1) as client:
        result = await client.enroll(JOB)
    assert result.status == FAILED
    assert result.error_code == "Unconfirmed"
    assert post.call_count == 1


async def test_enrollments_lookup_follows_next_link(router, make_client) -> None:
    router.get(ENROLLMENTS_URL, params={"$skip": "2"}).mock(
        return_value=httpx.Response(200, json={"value": [enrollment(Id=3)]})
    )
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "value": [enrollment(Id=1), enrollment(Id=2)],
                "@odata.nextLink": f"{ENROLLMENTS_URL}?$skip=2",
            },
        )
    )
    async with make_client() as client:
        found = await client.find_enrollments(COURSE)
    assert [item["Id"] for item in found] == [1, 2, 3]


async def test_unenroll_not_enrolled_is_reported(router, make_client) -> None:
    router.post(f"{BASE}/odata/v2/Courses({COURSE})/Unenroll").mock(
        return_value=httpx.Response(400, json=error("UserNotEnrolled"))
    )
    async with make_client() as client:
        result = await client.unenroll(
            Job(index=0, row=2, course_id=COURSE, login="kay@contoso.com", action=UNENROLL)
        )
    assert result.status == UNENROLLED
    assert result.error_code == "UserNotEnrolled"
    assert result.warnings


async def test_get_course_404_is_none(router, make_client) -> None:
    router.get(f"{BASE}/odata/v2/Courses({OTHER_COURSE})").mock(
        return_value=httpx.Response(404, json=error("CourseNotFound"))
    )
    async with make_client() as client:
        assert await client.get_course(OTHER_COURSE) is None


def test_odata_quote_doubles_quotes() -> None:
    assert odata_quote("o'brien@contoso.com") == "'o''brien@contoso.com'"


async def test_a_relative_next_link_is_followed_from_its_page(router, make_client) -> None:
    router.get(ENROLLMENTS_URL, params={"$skip": "1"}).mock(
        return_value=httpx.Response(200, json={"value": [enrollment(Id=2)]})
    )
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200, json={"value": [enrollment(Id=1)], "@odata.nextLink": "Enrollments?$skip=1"}
        )
    )
    async with make_client() as client:
        found = await client.find_enrollments(COURSE)
    assert [item["Id"] for item in found] == [1, 2]


async def test_a_next_link_loop_is_refused(router, make_client) -> None:
    from batch_enroll.client import CallFailed

    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200, json={"value": [enrollment()], "@odata.nextLink": f"{ENROLLMENTS_URL}?$skip=0"}
        )
    )
    async with make_client() as client:
        with pytest.raises(CallFailed):
            await client.find_enrollments(COURSE)


async def test_lookup_ignores_enrollments_a_server_should_have_filtered_out(
    router, make_client
) -> None:
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200,
            json={
                "value": [
                    enrollment(Id=1, CourseId=OTHER_COURSE),
                    enrollment(Id=2, UserLoginName="i:0#.f|membership|someone@contoso.com"),
                    enrollment(Id=3, UserLoginName="I:0#.F|Membership|KAY@contoso.com"),
                ]
            },
        )
    )
    async with make_client() as client:
        found = await client.find_enrollments(COURSE, "kay@contoso.com")
        every = await client.find_enrollments(COURSE)
    assert [item["Id"] for item in found] == [3]
    assert [item["Id"] for item in every] == [2, 3]


# ---------------------------------------------------------------------------------------------
# Tolerant reading: answers that stray from the contract, row by row
# ---------------------------------------------------------------------------------------------

V2_JOB = Job(
    index=3,
    row=5,
    course_id=COURSE,
    login="kay@contoso.com",
    session_ids=("3f2b9c1e-0000-4000-8000-000000000001",),
)
#: LMS365 writes up to 7 fractional digits (.NET ticks).
TICKS_DATE = "2026-11-27T10:15:02.1234567Z"


async def test_an_unknown_code_fails_the_row_verbatim_without_retry(router, make_client) -> None:
    body = {"error": {"code": "EnrollmentFrozen", "message": "Enrollment is frozen until Jan 1."}}
    route = router.post(ENROLL_URL).mock(return_value=httpx.Response(422, json=body))
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert route.call_count == 1
    assert result.status == FAILED
    assert (result.http_status, result.error_code, result.error_message) == (
        422,
        "EnrollmentFrozen",
        "Enrollment is frozen until Jan 1.",
    )
    assert not result.retryable  # --resume does not send it again either
    assert any("does not know" in w and "EnrollmentFrozen" in w for w in result.warnings)


async def test_a_400_saying_already_enrolled_is_already_enrolled(router, make_client) -> None:
    body = {"error": {"code": "BadRequest", "message": "User is already enrolled in the course."}}
    router.post(ENROLL_URL).mock(return_value=httpx.Response(400, json=body))
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(200, json={"value": [enrollment(RegistrationDate=TICKS_DATE)]})
    )
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert result.status == ALREADY_ENROLLED
    assert result.http_status == 400
    assert result.error_message == "User is already enrolled in the course."
    assert result.enrollment_id == "9b7d6f3e-1111-4222-8333-444455556666"
    assert result.registration_date == TICKS_DATE


async def test_already_enrolled_words_after_a_timeout_mean_our_attempt(router, make_client) -> None:
    body = {"error": {"code": "BadRequest", "message": "User is already enrolled."}}
    post = router.post(ENROLL_URL).mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(400, json=body)]
    )
    router.get(ENROLLMENTS_URL).mock(
        side_effect=[
            httpx.Response(200, json={"value": []}),
            httpx.Response(200, json={"value": []}),
            httpx.Response(200, json={"value": [enrollment()]}),
        ]
    )
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert post.call_count == 2
    assert result.status == ENROLLED
    assert result.enrollment_id == "9b7d6f3e-1111-4222-8333-444455556666"


async def test_a_waiting_list_answer_is_waitlisted(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(
        return_value=httpx.Response(201, json=enrollment(RegistrationStatus="WaitingList"))
    )
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert post.call_count == 1
    assert result.status == WAITLISTED == "waitlisted"
    assert result.http_status == 201
    assert result.enrollment_id == "9b7d6f3e-1111-4222-8333-444455556666"
    assert "waiting list" in result.warnings[0]
    assert post.calls.last.request.url.path == f"/odata/v2/Courses({COURSE})/Enroll"


async def test_a_landed_attempt_found_on_the_waiting_list_is_waitlisted(
    router, make_client
) -> None:
    router.post(ENROLL_URL).mock(side_effect=[httpx.ReadTimeout("slow")])
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200, json={"value": [enrollment(RegistrationStatus="WaitingList")]}
        )
    )
    async with make_client() as client:
        result = await client.enroll(JOB)
    assert result.status == WAITLISTED


async def test_the_5000_cap_is_a_final_failure_in_plain_words(router, make_client) -> None:
    body = {"error": {"code": "MaxEnrollmentsReached", "message": "Enrollment limit reached."}}
    post = router.post(ENROLL_URL).mock(return_value=httpx.Response(400, json=body))
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert post.call_count == 1
    assert (result.status, result.error_code, result.retryable) == (
        FAILED,
        "MaxEnrollmentsReached",
        False,
    )
    assert "5,000" in result.error_message
    assert "Enrollment limit reached." in result.error_message
    assert result.warnings == []


async def test_a_2xx_with_unknown_and_missing_fields_is_enrolled(router, make_client) -> None:
    router.post(ENROLL_URL).mock(
        return_value=httpx.Response(
            201, json={"Brand": "new", "Nested": {"deep": [1]}, "RegistrationStatus": None}
        )
    )
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert result.status == ENROLLED
    assert (result.registration_date, result.enrollment_id, result.warnings) == ("", "", [])


async def test_a_201_without_a_body_is_enrolled(router, make_client) -> None:
    router.post(ENROLL_URL).mock(return_value=httpx.Response(201))
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert result.status == ENROLLED


async def test_a_proxy_page_is_checked_before_anything_is_resent(router, make_client) -> None:
    post = router.post(ENROLL_URL).mock(
        return_value=httpx.Response(
            200, content=b"<html>Sign in</html>", headers={"Content-Type": "text/html"}
        )
    )
    # The lookup meets the same page: nothing can be confirmed, so nothing is resent.
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200, content=b"<html>Sign in</html>", headers={"Content-Type": "text/html"}
        )
    )
    async with make_client() as client:
        result = await client.enroll(V2_JOB)
    assert post.call_count == 1
    assert result.status == FAILED
    assert result.retryable


async def test_enrollments_with_missing_fields_are_read(router, make_client) -> None:
    router.get(ENROLLMENTS_URL).mock(
        return_value=httpx.Response(
            200,
            json={"value": [{"UserLoginName": "i:0#.f|membership|kay@contoso.com"}, {}, "x"]},
        )
    )
    async with make_client() as client:
        found = await client.find_enrollments(COURSE, "kay@contoso.com")
    assert found == [{"UserLoginName": "i:0#.f|membership|kay@contoso.com"}, {}]


async def test_a_read_is_never_taken_for_a_waiting_list(router, make_client) -> None:
    odd = {"Id": COURSE, "RegistrationStatus": "WaitingList"}
    router.get(f"{BASE}/odata/v2/Courses({COURSE})").mock(
        return_value=httpx.Response(200, json=odd)
    )
    async with make_client() as client:
        assert await client.get_course(COURSE) == odd


async def test_course_pages_select_count_and_filter(router, make_client) -> None:
    route = router.get(f"{BASE}/odata/v2/Courses").mock(
        return_value=httpx.Response(200, json={"value": [{"Id": COURSE}], "@odata.count": 1})
    )
    async with make_client() as client:
        found = await client.find_courses("CourseID eq 'SAF-101' or Title eq 'SAF-101'")
    params = route.calls.last.request.url.params
    assert params["$select"] == "Id,CourseID,Title"
    assert params["$filter"] == "CourseID eq 'SAF-101' or Title eq 'SAF-101'"
    assert found == [{"Id": COURSE}]


def test_canonical_login_lowers_only_the_claims_prefix() -> None:
    assert canonical_login("I:0#.F|Membership|Kay@Contoso.com") == (
        "i:0#.f|membership|Kay@Contoso.com"
    )
    assert canonical_login(" kay@contoso.com ") == "kay@contoso.com"
