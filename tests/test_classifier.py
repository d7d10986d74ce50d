"""The classifier: every assumption about LMS365's answers, one verdict each."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from batch_enroll.classifier import (
    Verdict,
    classify_exception,
    classify_response,
    parse_retry_after,
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
