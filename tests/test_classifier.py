"""The classifier: every assumption about LMS365's answers, one verdict each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import pytest

from batch_enroll.advice import advice, explain
from batch_enroll.classifier import (
    ASSUMPTIONS,
    COURSE_FIELDS,
    ENROLLMENT_FIELDS,
    MAX_ENROLLMENTS_WORDS,
    SESSION_FIELDS,
    USER_FIELDS,
    Verdict,
    classify_exception,
    classify_response,
    is_full,
    keeps_waiting_list,
    parse_lms_time,
    parse_retry_after,
    seat_limit,
    seats_taken,
    value_problem,
)


def answer(status: int, code: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} text"}} if code else None
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        (201, "", Verdict.SUCCESS),
        (200, "", Verdict.SUCCESS),
        (204, "", Verdict.SUCCESS),
        (401, "Unauthorized", Verdict.FATAL_AUTH),
        (403, "", Verdict.FATAL_AUTH),
        (429, "TooManyRequests", Verdict.THROTTLED),
        (409, "UserAlreadyEnrolled", Verdict.ALREADY_ENROLLED),
        (409, "", Verdict.ALREADY_ENROLLED),
        (400, "UserAlreadyEnrolled", Verdict.ALREADY_ENROLLED),
        (400, "UserNotEnrolled", Verdict.NOT_ENROLLED),
        (400, "SessionClosed", Verdict.REJECTED),
        (404, "CourseNotFound", Verdict.REJECTED),
        (500, "", Verdict.RETRY),
        (503, "", Verdict.RETRY),
        (502, "", Verdict.IN_DOUBT),
        (504, "", Verdict.IN_DOUBT),
    ],
)
def test_status_and_code_make_the_verdict(status: int, code: str, verdict: Verdict) -> None:
    assert classify_response(answer(status, code)).verdict is verdict


def test_409_after_a_doubt_means_our_attempt_landed() -> None:
    outcome = classify_response(answer(409, "UserAlreadyEnrolled"), doubt=True)
    assert outcome.verdict is Verdict.SUCCESS


def test_error_code_and_message_are_read_from_the_odata_body() -> None:
    outcome = classify_response(answer(400, "MaxAttendeesReached"))
    assert (outcome.error_code, outcome.error_message) == (
        "MaxAttendeesReached",
        "MaxAttendeesReached text",
    )


def test_a_non_json_error_body_still_classifies() -> None:
    outcome = classify_response(httpx.Response(502, content=b"<html>Bad gateway</html>"))
    assert outcome.verdict is Verdict.IN_DOUBT
    assert outcome.error_code == "HTTP502"


def test_retry_after_seconds_and_dates() -> None:
    assert classify_response(answer(429, headers={"Retry-After": "3"})).retry_after == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("999999") == 300.0


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (httpx.ConnectError("refused"), Verdict.RETRY),
        (httpx.PoolTimeout("busy"), Verdict.RETRY),
        (httpx.ReadTimeout("slow"), Verdict.IN_DOUBT),
        (httpx.RemoteProtocolError("closed"), Verdict.IN_DOUBT),
        (httpx.ReadError("reset"), Verdict.IN_DOUBT),
    ],
)
def test_transport_failures(exc: Exception, verdict: Verdict) -> None:
    assert classify_exception(exc).verdict is verdict


def test_aiohttp_disconnect_mapped_to_connect_timeout_is_a_doubt() -> None:
    # httpx-aiohttp maps a server hang-up after the request to ConnectTimeout.
    exc = httpx.ConnectTimeout("Server disconnected")
    exc.__cause__ = aiohttp.ServerDisconnectedError()
    assert classify_exception(exc).verdict is Verdict.IN_DOUBT


def test_aiohttp_connector_error_was_never_sent() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    exc = httpx.ConnectError("refused")
    exc.__cause__ = aiohttp.ClientConnectorError(key, OSError(111, "refused"))
    assert classify_exception(exc).verdict is Verdict.RETRY


# ---------------------------------------------------------------------------------------------
# Tolerant reading: answers that stray from the contract
# ---------------------------------------------------------------------------------------------


def test_every_verdict_names_an_assumption_that_exists() -> None:
    assert classify_response(answer(201)).assumption == ""  # the documented success
    answers = [
        answer(401),
        answer(429),
        answer(409, "UserAlreadyEnrolled"),
        answer(400, "UserNotEnrolled"),
        answer(400, "SomethingNew"),
        answer(400, "MaxEnrollmentsReached"),
        answer(502),
        answer(500),
        httpx.Response(201, json={"RegistrationStatus": "WaitingList"}),
    ]
    for response in answers:
        outcome = classify_response(response)
        assert outcome.assumption in ASSUMPTIONS, response
    for assumption in ASSUMPTIONS.values():
        assert assumption.source in ("doc", "seen", "assumed")
        assert assumption.belief
        assert assumption.if_wrong


def test_field_rules_refer_to_named_assumptions() -> None:
    for rule in (*COURSE_FIELDS, *SESSION_FIELDS, *ENROLLMENT_FIELDS, *USER_FIELDS):
        assert rule.assumption in ASSUMPTIONS, rule.name
        assert rule.used_for, rule.name


def test_unknown_fields_in_a_success_are_ignored() -> None:
    outcome = classify_response(
        httpx.Response(201, json={"Id": "9b7d", "Brand": {"new": [1, 2]}, "Extra": None})
    )
    assert outcome.verdict is Verdict.SUCCESS
    assert outcome.body is not None
    assert outcome.body["Id"] == "9b7d"


def test_a_2xx_without_any_body_is_a_success() -> None:
    assert classify_response(httpx.Response(204)).verdict is Verdict.SUCCESS
    assert classify_response(httpx.Response(200, json=[1, 2])).verdict is Verdict.SUCCESS


def test_a_2xx_html_page_is_not_taken_for_an_answer() -> None:
    page = httpx.Response(
        200, content=b"<!DOCTYPE html><title>Sign in to the proxy</title>", headers={}
    )
    outcome = classify_response(page)
    assert outcome.verdict is Verdict.IN_DOUBT
    assert outcome.error_code == "NotLms365"
    assert outcome.assumption == "json-answers"


@pytest.mark.parametrize("status_text", ["WaitingList", "waitinglist", "Waiting List", "WaitList"])
def test_a_2xx_on_the_waiting_list_is_waitlisted(status_text: str) -> None:
    body = {"Id": "9b7d", "RegistrationStatus": status_text}
    outcome = classify_response(httpx.Response(201, json=body))
    assert outcome.verdict is Verdict.WAITLISTED
    assert outcome.verdict.value == "waitlisted"
    assert outcome.body == body


def test_an_active_or_pending_2xx_is_a_plain_success() -> None:
    for status_text in ("Active", "Pending", None):
        body = {"RegistrationStatus": status_text}
        assert classify_response(httpx.Response(201, json=body)).verdict is Verdict.SUCCESS


def test_an_unknown_code_is_final_and_kept_verbatim() -> None:
    body = {"error": {"code": "EnrollmentFrozen", "message": "Enrollment is frozen until 1 Jan."}}
    outcome = classify_response(httpx.Response(422, json=body))
    assert outcome.verdict is Verdict.REJECTED
    assert (outcome.http_status, outcome.error_code, outcome.error_message) == (
        422,
        "EnrollmentFrozen",
        "Enrollment is frozen until 1 Jan.",
    )
    assert outcome.unknown_code
    assert outcome.assumption == "unknown-code-final"


def test_a_known_code_is_not_flagged_unknown() -> None:
    outcome = classify_response(answer(400, "SessionClosed"))
    assert outcome.verdict is Verdict.REJECTED
    assert not outcome.unknown_code


@pytest.mark.parametrize(
    "body",
    [
        {"odata.error": {"code": "Frozen", "message": {"lang": "en-US", "value": "It is frozen."}}},
        {"error": {"code": "Frozen", "message": {"value": "It is frozen."}}},
        {"Message": "It is frozen.", "Code": "Frozen"},
        {"error": "Frozen", "error_description": "It is frozen."},
    ],
)
def test_other_error_shapes_are_read(body: dict[str, object]) -> None:
    outcome = classify_response(httpx.Response(400, json=body))
    assert (outcome.verdict, outcome.error_code, outcome.error_message) == (
        Verdict.REJECTED,
        "Frozen",
        "It is frozen.",
    )


def test_a_plain_text_refusal_keeps_its_words() -> None:
    response = httpx.Response(
        400,
        content=b"Course is locked by an administrator.",
        headers={"Content-Type": "text/plain"},
    )
    outcome = classify_response(response)
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.error_code == "HTTP400"
    assert outcome.error_message == "Course is locked by an administrator."


def test_a_numeric_code_is_read_as_text() -> None:
    outcome = classify_response(httpx.Response(400, json={"error": {"code": 4711, "message": "x"}}))
    assert outcome.error_code == "4711"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "User kay@contoso.com is already enrolled in this course."),
        (400, "The user has already been enrolled."),
        (422, "An enrollment already exists for this user"),
        (400, "User already has an active enrollment in the course"),
        (409, "Conflict"),
    ],
)
def test_a_4xx_saying_already_enrolled_is_already_enrolled(status: int, message: str) -> None:
    body = {"error": {"code": "Conflict" if status == 409 else "BadRequest", "message": message}}
    if status == 409:
        body = {"error": {"code": "", "message": message}}
    outcome = classify_response(httpx.Response(status, json=body))
    assert outcome.verdict is Verdict.ALREADY_ENROLLED
    assert outcome.error_message == message
    # After an unanswered attempt, the same words mean that attempt landed.
    assert classify_response(httpx.Response(status, json=body), doubt=True).verdict is (
        Verdict.SUCCESS
    )


@pytest.mark.parametrize(
    "message",
    [
        "The user is not enrolled in this course.",
        "User is not yet enrolled",
        "Session is full.",
    ],
)
def test_other_4xx_words_are_not_taken_for_already_enrolled(message: str) -> None:
    body = {"error": {"code": "Whatever", "message": message}}
    assert classify_response(httpx.Response(400, json=body)).verdict is Verdict.REJECTED


def test_the_5000_cap_is_a_final_failure_in_plain_words() -> None:
    body = {"error": {"code": "MaxEnrollmentsReached", "message": "Limit reached."}}
    outcome = classify_response(httpx.Response(400, json=body))
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.error_code == "MaxEnrollmentsReached"
    assert "5,000" in outcome.error_message
    assert "Limit reached." in outcome.error_message
    assert outcome.assumption == "max-enrollments"
    assert not outcome.unknown_code


def test_the_5000_cap_is_recognised_by_its_words_under_another_code() -> None:
    body = {"error": {"code": "LimitExceeded", "message": "A course can have max 5000 users."}}
    outcome = classify_response(httpx.Response(400, json=body))
    assert outcome.verdict is Verdict.REJECTED
    assert outcome.error_code == "LimitExceeded"  # LMS365's code stays as it came
    assert outcome.error_message.startswith(MAX_ENROLLMENTS_WORDS)
    assert "A course can have max 5000 users." in outcome.error_message


def test_the_5000_cap_has_plain_words_in_the_summary() -> None:
    assert "5,000" in explain("MaxEnrollmentsReached")
    assert advice("MaxEnrollmentsReached")


def test_a_5xx_with_an_unknown_code_is_still_transient() -> None:
    outcome = classify_response(answer(503, "BackendBusy"))
    assert outcome.verdict is Verdict.RETRY
    assert outcome.error_code == "BackendBusy"


# ---------------------------------------------------------------------------------------------
# Dates, seats and other optional fields
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-09-23T11:31:07Z", datetime(2021, 9, 23, 11, 31, 7, tzinfo=UTC)),
        ("2021-09-23T11:31:07.4Z", datetime(2021, 9, 23, 11, 31, 7, 400000, tzinfo=UTC)),
        ("2021-09-23T11:31:07.46Z", datetime(2021, 9, 23, 11, 31, 7, 460000, tzinfo=UTC)),
        ("2021-09-23T11:31:07.123Z", datetime(2021, 9, 23, 11, 31, 7, 123000, tzinfo=UTC)),
        ("2021-09-23T11:31:07.1234Z", datetime(2021, 9, 23, 11, 31, 7, 123400, tzinfo=UTC)),
        ("2021-09-23T11:31:07.12345Z", datetime(2021, 9, 23, 11, 31, 7, 123450, tzinfo=UTC)),
        ("2021-09-23T11:31:07.123456Z", datetime(2021, 9, 23, 11, 31, 7, 123456, tzinfo=UTC)),
        ("2021-09-23T11:31:07.1234567Z", datetime(2021, 9, 23, 11, 31, 7, 123456, tzinfo=UTC)),
        ("2021-09-23T11:31:07.1234567z", datetime(2021, 9, 23, 11, 31, 7, 123456, tzinfo=UTC)),
        ("2021-09-23T11:31:07", datetime(2021, 9, 23, 11, 31, 7, tzinfo=UTC)),
        ("2021-09-23T11:31", datetime(2021, 9, 23, 11, 31, tzinfo=UTC)),
        ("2021-09-23T13:31:07.5+02:00", datetime(2021, 9, 23, 11, 31, 7, 500000, tzinfo=UTC)),
        ("1753-01-01T00:00:00Z", datetime(1753, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.997Z", datetime(9999, 12, 31, 23, 59, 59, 997000, tzinfo=UTC)),
    ],
)
def test_dates_with_0_to_7_fractional_digits(text: str, expected: datetime) -> None:
    assert parse_lms_time(text) == expected


def test_a_date_keeps_the_offset_it_was_written_with() -> None:
    when = parse_lms_time("2026-12-01T09:00:00.1234567+01:00")
    assert when is not None
    assert when.utcoffset() == timedelta(hours=1)
    assert (when.hour, when.minute) == (9, 0)  # a session's local start stays its wall clock
    assert when == datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "2021-13-01T00:00:00Z", "2021-09-23T11:31:07.12345678Z", 17]
)
def test_what_is_not_a_date_is_unknown_not_a_crash(value: object) -> None:
    assert parse_lms_time(value) is None


@pytest.mark.parametrize(
    ("session", "limit", "taken", "full"),
    [
        ({"MaxAttendees": 20, "TakenSeatsCount": 20}, 20, 20, True),
        ({"MaxAttendees": 20, "TakenSeatsCount": 7}, 20, 7, False),
        ({"MaxAttendees": None, "TakenSeatsCount": 70}, None, 70, False),
        ({"MaxAttendees": 0, "TakenSeatsCount": 70}, None, 70, False),
        ({"TakenSeatsCount": 70}, None, 70, False),
        ({"MaxAttendees": 20}, 20, None, False),
        ({"MaxAttendees": 20, "AttendeesCount": 20}, 20, None, False),
        ({"MaxAttendees": "20", "TakenSeatsCount": True}, None, None, False),
        ({}, None, None, False),
    ],
)
def test_missing_seat_fields_mean_unknown_or_no_limit(
    session: dict[str, object], limit: int | None, taken: int | None, full: bool
) -> None:
    assert seat_limit(session) == limit
    assert seats_taken(session) == taken
    assert is_full(session) is full


@pytest.mark.parametrize(
    ("course", "keeps"),
    [
        ({"WaitingListEnabled": True}, True),
        ({"WaitingListEnabled": False}, False),
        ({"WaitingListEnabled": None}, False),
        ({"WaitingListEnabled": "true"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_only_a_course_that_says_so_keeps_a_waiting_list(
    course: dict[str, object] | None, keeps: bool
) -> None:
    assert keeps_waiting_list(course) is keeps


def test_seats_the_sheet_adds_can_fill_a_session() -> None:
    assert is_full({"MaxAttendees": 20, "TakenSeatsCount": 19}, adding=1)


@pytest.mark.parametrize(
    ("rule_name", "value", "fits"),
    [
        ("Id", "65c61b1a-04c1-46e6-9d6e-41576a0ce14f", True),
        ("Id", "{65C61B1A-04C1-46E6-9D6E-41576A0CE14F}", True),
        ("Id", 101, False),
        ("Id", None, False),
        ("CourseType", "ClassRoom", True),
        ("CourseType", "VirtualClassroom", False),
        ("IsPublished", True, True),
        ("IsPublished", "true", False),
        ("MaxAttendees", None, True),
        ("MaxAttendees", 20, True),
        ("MaxAttendees", True, False),
        ("EnrollmentDeadline", "2026-11-30T00:00:00.1234567Z", True),
        ("EnrollmentDeadline", "next week", False),
    ],
)
def test_value_problem_names_what_differs(rule_name: str, value: object, fits: bool) -> None:
    rule = next(r for r in COURSE_FIELDS if r.name == rule_name)
    problem = value_problem(rule, value)
    assert (problem == "") is fits
    if not fits:
        assert repr(value) in problem or (value is None and problem == "is null")
