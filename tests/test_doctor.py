"""batch-enroll doctor: each check against scripted answers, then against sockets."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner

from batch_enroll.cli import main
from batch_enroll.doctor import (
    DIFFERS,
    FAILED,
    OK,
    SKIPPED,
    TITLES,
    ZERO_GUID,
    Check,
    check_api,
    check_host,
    check_tls,
    exit_code,
    render_json,
    render_text,
)
from batch_enroll.options import ConnectionOptions
from tests.conftest import FULL_KEY, READ_ONLY_KEY
from tests.helpers import free_port, wait_for_simulator
from tests.tls_server import make_certificate

BASE = "https://tenant.example"
KEY = "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c"
COURSE = "65c61b1a-04c1-46e6-9d6e-41576a0ce14f"
ELEARNING = "b1670146-674a-4730-9e9d-d7d29ba52385"
GROUP = "3f2b9c1e-0000-4000-8000-0000000000aa"


def session(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": "3f2b9c1e-0000-4000-8000-000000000001",
        "CourseId": COURSE,
        "Title": "Morning, Oslo",
        "StartDate": "2026-12-01T09:00:00Z",
        "EndDate": "2026-12-01T12:00:00.1234567Z",
        "EnrollmentDeadline": "2026-11-30T00:00:00Z",
        "TimeZone": "W. Europe Standard Time",
        "MaxAttendees": 20,
        "TakenSeatsCount": 7,
        "IsGroup": False,
        "GroupId": None,
    }
    body.update(extra)
    return body


def course(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": COURSE,
        "CourseID": "SAF-101",
        "Title": "Workplace Safety Basics",
        "CourseCatalogId": "b1670146-674a-4730-9e9d-d7d29ba52385",
        "CourseType": "ClassRoom",
        "CourseSessionEnrollmentType": "EnrollToSingle",
        "EnrollmentFlow": "AutomaticApproval",
        "IsPublished": True,
        "IsEnded": False,
        "IsDeleted": False,
        "MaxAttendees": None,
        "EnrollmentDeadline": None,
        "WaitingListEnabled": False,
        "IsEnrollmentWithoutSessionsAllowed": True,
        "UnenrollDisabled": False,
        "CourseSessions": [
            session(),
            session(
                Id=GROUP,
                Title="Autumn series",
                IsGroup=True,
                StartDate="1753-01-01T00:00:00Z",
                EndDate="9999-12-31T23:59:59.997Z",
            ),
            session(Id="3f2b9c1e-0000-4000-8000-000000000002", GroupId=GROUP),
        ],
    }
    body.update(extra)
    return body


def elearning(**extra: Any) -> dict[str, Any]:
    body = course(
        Id=ELEARNING,
        CourseID="",
        Title="Code of Conduct",
        CourseType="ELearning",
        CourseSessionEnrollmentType=None,
        CourseSessions=[],
    )
    body.update(extra)
    return body


def enrollment(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": "9b7d6f3e-1111-4222-8333-444455556666",
        "CourseId": COURSE,
        "UserId": "d41c0f7a-0000-4000-8000-000000000001",
        "UserLoginName": "i:0#.f|membership|kay@contoso.com",
        "RegistrationDate": "2026-11-27T10:15:02.12Z",
        "RegistrationStatus": "Active",
    }
    body.update(extra)
    return body


class Tenant:
    """A scripted tenant that follows the contract unless a test changes it."""

    def __init__(self, base: str = BASE) -> None:
        self.router = respx.Router(assert_all_called=False)
        self.courses: list[dict[str, Any]] = [course(), elearning()]
        self.enrollments: list[dict[str, Any]] = [enrollment()]
        self.users: list[dict[str, Any]] = []
        self.probe = httpx.Response(
            404, json={"error": {"code": "CourseNotFound", "message": "Course was not found."}}
        )
        self.key_answer: httpx.Response | None = None
        self.page_answer: httpx.Response | None = None
        self.headers: dict[str, str] = {}
        self.router.get(f"{base}/odata/v2/Courses").mock(side_effect=self._courses)
        self.router.post(f"{base}/odata/v2/Courses({ZERO_GUID})/Enroll").mock(
            side_effect=lambda request: self.probe
        )
        self.router.get(f"{base}/odata/v2/Enrollments").mock(
            side_effect=lambda request: httpx.Response(200, json={"value": self.enrollments})
        )
        self.router.get(f"{base}/odata/v2/Users").mock(
            side_effect=lambda request: httpx.Response(200, json={"value": self.users})
        )

    def _courses(self, request: httpx.Request) -> httpx.Response:
        if self.key_answer is not None:
            return self.key_answer
        if self.page_answer is not None and request.url.params.get("$top") != "1":
            return self.page_answer
        top = int(request.url.params.get("$top", "100"))
        return httpx.Response(200, json={"value": self.courses[:top]}, headers=self.headers)

    def check(self, *, email: str | None = None, **kwargs: Any) -> dict[str, Check]:
        return check_through(self.router, email=email, **kwargs)


def check_through(
    router: respx.Router, *, email: str | None = None, **kwargs: Any
) -> dict[str, Check]:
    """Run every API check with requests answered by ``router``; key the checks by name."""
    options: dict[str, Any] = {
        "base_url": BASE,
        "api_key": KEY,
        "transport": httpx.MockTransport(router.handler),
    }
    options.update(kwargs)
    return {c.name: c for c in check_api(ConnectionOptions(**options), email=email)}


@pytest.fixture
def tenant() -> Tenant:
    return Tenant()


def test_a_tenant_that_follows_the_contract_is_ok(tenant: Tenant) -> None:
    checks = tenant.check()
    assert list(checks) == [
        "region",
        "key",
        "access",
        "courses",
        "enrollments",
        "users",
        "round_trip",
    ]
    assert {c.name: c.status for c in checks.values()} == dict.fromkeys(checks, OK)
    assert "Full Control" in checks["access"].detail
    assert "2 courses (1 instructor-led), 3 sessions (1 session groups)" in (
        checks["courses"].detail
    )
    assert exit_code(list(checks.values())) == 0


def test_the_probe_enrolls_no_real_person_into_the_zero_course(tenant: Tenant) -> None:
    tenant.check()
    posts = [call.request for call in tenant.router.calls if call.request.method == "POST"]
    assert len(posts) == 1
    assert posts[0].url.path == f"/odata/v2/Courses({ZERO_GUID})/Enroll"
    assert json.loads(posts[0].content) == {
        "userLoginName": "i:0#.f|membership|batch-enroll-doctor@example.invalid"
    }


def test_the_key_travels_as_basic_auth(tenant: Tenant) -> None:
    tenant.check()
    request = tenant.router.calls[0].request
    assert request.headers["Authorization"] == httpx.BasicAuth("api", KEY)._auth_header


def test_a_read_only_key_is_named(tenant: Tenant) -> None:
    tenant.probe = httpx.Response(
        403, json={"error": {"code": "Forbidden", "message": "Read Only key."}}
    )
    checks = tenant.check()
    assert checks["access"].status == FAILED
    assert checks["access"].detail.startswith("Read Only")
    assert "Full Control key" in checks["access"].action
    assert not checks["access"].key_refused
    assert exit_code(list(checks.values())) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_checks_with_exit_3(tenant: Tenant, status: int) -> None:
    tenant.key_answer = httpx.Response(status, json={"error": {"code": "Unauthorized"}})
    checks = tenant.check()
    assert checks["key"].status == FAILED
    assert checks["key"].key_refused
    assert [checks[n].status for n in ("access", "courses", "enrollments", "users")] == [
        SKIPPED
    ] * 4
    assert exit_code(list(checks.values())) == 3
    assert not any(call.request.method == "POST" for call in tenant.router.calls)


def test_a_probe_answered_otherwise_differs(tenant: Tenant) -> None:
    tenant.probe = httpx.Response(
        400, json={"error": {"code": "BadRequest", "message": "Malformed key."}}
    )
    check = tenant.check()["access"]
    assert check.status == DIFFERS
    assert 'HTTP 400 BadRequest "Malformed key."' in check.detail
    assert "cannot be told apart" in check.detail


def test_a_renamed_session_field_differs_and_names_both_names(tenant: Tenant) -> None:
    for item in tenant.courses:
        for s in item["CourseSessions"]:
            s["AttendeesCount"] = s.pop("TakenSeatsCount")
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "TakenSeatsCount is missing from all 3 sessions" in check.detail
    assert "AttendeesCount instead" in check.detail
    assert "full sessions are not caught before sending" in check.detail
    assert "seats" in check.assumptions


def test_a_renamed_course_field_differs(tenant: Tenant) -> None:
    for item in tenant.courses:
        item["RegistrationDeadline"] = item.pop("EnrollmentDeadline")
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "course field EnrollmentDeadline is missing from all 2 courses" in check.detail
    assert "RegistrationDeadline" in check.detail


def test_integer_ids_differ_as_version_1(tenant: Tenant) -> None:
    tenant.courses = [course(Id=101, CourseSessions=[])]
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "course field Id is 101, not a GUID" in check.detail
    assert "every course lookup and every Enroll request is malformed" in check.detail


def test_unknown_enum_values_and_types_differ(tenant: Tenant) -> None:
    tenant.courses = [
        course(CourseType="VirtualClassroom"),
        course(CourseSessions=[session(MaxAttendees="twenty", EndDate="soon")]),
    ]
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    joined = " | ".join(check.differences)
    assert "CourseType is 'VirtualClassroom'" in joined
    assert "MaxAttendees is 'twenty', not a whole number" in joined
    assert "EndDate is 'soon', not a date" in joined
    assert len(check.differences) == 3


def test_unknown_fields_and_partly_missing_optional_fields_are_ok(tenant: Tenant) -> None:
    tenant.courses[0]["BrandNewField"] = {"nested": True}
    del tenant.courses[1]["CourseID"]
    del tenant.courses[0]["CourseSessions"][0]["TakenSeatsCount"]
    check = tenant.check()["courses"]
    assert check.status == OK
    assert "other fields ignored" in check.detail


def test_sessions_are_read_per_course_when_the_list_does_not_expand_them(tenant: Tenant) -> None:
    full = course()
    tenant.courses = [{k: v for k, v in full.items() if k != "CourseSessions"}]
    tenant.router.get(f"{BASE}/odata/v2/Courses({COURSE})").mock(
        return_value=httpx.Response(200, json=course())
    )
    check = tenant.check()["courses"]
    assert check.status == OK
    assert "3 sessions" in check.detail


def test_a_group_member_pointing_nowhere_differs(tenant: Tenant) -> None:
    tenant.courses = [course(CourseSessions=[session(GroupId=ELEARNING)])]
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "is not a session group" in check.detail


def test_an_empty_catalogue_differs(tenant: Tenant) -> None:
    tenant.courses = []
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "no courses" in check.detail


def test_a_course_list_that_is_not_odata_differs(tenant: Tenant) -> None:
    tenant.page_answer = httpx.Response(404, json={"error": {"code": "NotFound"}})
    check = tenant.check()["courses"]
    assert check.status == DIFFERS
    assert "HTTP 404 NotFound" in check.detail
    assert "cannot find courses by code or title" in check.detail


def test_the_enrollments_filter_is_sent_with_a_guid(tenant: Tenant) -> None:
    tenant.check()
    request = next(
        call.request
        for call in tenant.router.calls
        if call.request.url.path.endswith("Enrollments")
    )
    assert request.url.params["$filter"] == f"CourseId eq {COURSE}"


def test_an_ignored_enrollments_filter_differs(tenant: Tenant) -> None:
    tenant.enrollments = [enrollment(), enrollment(CourseId=ELEARNING)]
    check = tenant.check()["enrollments"]
    assert check.status == DIFFERS
    assert "the filter was ignored" in check.detail


def test_a_refused_enrollments_filter_differs(tenant: Tenant) -> None:
    tenant.router.get(f"{BASE}/odata/v2/Enrollments").mock(
        return_value=httpx.Response(400, json={"error": {"code": "BadRequest", "message": "No."}})
    )
    check = tenant.check()["enrollments"]
    assert check.status == DIFFERS
    assert "--skip-enrolled" in check.detail


def test_an_unknown_registration_status_differs(tenant: Tenant) -> None:
    tenant.enrollments = [enrollment(RegistrationStatus="Cancelled")]
    check = tenant.check()["enrollments"]
    assert check.status == DIFFERS
    assert "RegistrationStatus is 'Cancelled'" in check.detail


def test_the_users_filter_sends_a_quoted_address(tenant: Tenant) -> None:
    tenant.users = [
        {
            "Id": "d41c0f7a-0000-4000-8000-000000000001",
            "LoginName": "i:0#.f|membership|o'brien@contoso.com",
            "Email": "o'brien@contoso.com",
        }
    ]
    check = tenant.check(email="o'brien@contoso.com")["users"]
    assert check.status == OK
    assert "i:0#.f|membership|o'brien@contoso.com" in check.detail
    request = next(
        call.request for call in tenant.router.calls if call.request.url.path.endswith("Users")
    )
    assert request.url.params["$filter"] == "Email eq 'o''brien@contoso.com'"


def test_an_ignored_users_filter_differs(tenant: Tenant) -> None:
    tenant.users = [{"Id": COURSE, "LoginName": "someone", "Email": "someone@contoso.com"}]
    check = tenant.check()["users"]
    assert check.status == DIFFERS
    assert "the filter was ignored" in check.detail


def test_a_person_not_found_differs(tenant: Tenant) -> None:
    check = tenant.check(email="nobody@contoso.com")["users"]
    assert check.status == DIFFERS
    assert "no user has nobody@contoso.com" in check.detail


def test_a_redirect_to_a_regional_host_names_the_region(tenant: Tenant) -> None:
    regional = Tenant("https://ne-api.365.systems")
    router = respx.Router(assert_all_called=False)
    router.get("https://api.365.systems/odata/v2/Courses").mock(
        return_value=httpx.Response(
            307, headers={"Location": "https://ne-api.365.systems/odata/v2/Courses?$top=1"}
        )
    )
    router.route(host="ne-api.365.systems").mock(side_effect=regional.router.handler)
    checks = check_through(router, base_url="https://api.365.systems")
    assert checks["region"].status == DIFFERS
    assert "region ne" in checks["region"].detail
    assert checks["region"].action == "run with --region ne"
    assert checks["key"].status == OK
    assert checks["courses"].status == OK


def test_a_redirect_elsewhere_keeps_the_key_home() -> None:
    router = respx.Router(assert_all_called=False)
    router.get("https://api.365.systems/odata/v2/Courses").mock(
        return_value=httpx.Response(302, headers={"Location": "https://login.example.com/"})
    )
    elsewhere = router.route(host="login.example.com").mock(return_value=httpx.Response(200))
    checks = check_through(router, base_url="https://api.365.systems")
    assert checks["region"].status == FAILED
    assert "the key was not sent there" in checks["region"].detail
    assert checks["key"].status == SKIPPED
    assert elsewhere.call_count == 0


def test_a_region_header_is_read(tenant: Tenant) -> None:
    tenant.headers = {"X-LMS365-Region": "NorthEurope"}
    check = tenant.check()["region"]
    assert check.status == OK
    assert "'NorthEurope'" in check.detail


def test_the_global_host_that_says_nothing_could_not_tell() -> None:
    tenant = Tenant("https://api.365.systems")
    checks = tenant.check(base_url="https://api.365.systems")
    assert checks["region"].status == OK
    assert checks["region"].detail.startswith("could not tell")


def test_a_passing_5xx_or_429_is_tried_again_not_reported(tenant: Tenant) -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "0"})])

    def flaky(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"value": []}))

    route = tenant.router.get(f"{BASE}/odata/v2/Users").mock(side_effect=flaky)
    check = tenant.check()["users"]
    assert check.status == OK
    assert route.call_count == 3


def test_a_lasting_5xx_fails_with_what_to_do(tenant: Tenant) -> None:
    route = tenant.router.get(f"{BASE}/odata/v2/Users").mock(
        return_value=httpx.Response(503, headers={"Retry-After": "0"})
    )
    check = tenant.check()["users"]
    assert check.status == FAILED
    assert "HTTP 503, 3 times in a row" in check.detail
    assert "again in a few minutes" in check.action
    assert route.call_count == 3


def test_a_lost_connection_fails_the_key_check(tenant: Tenant) -> None:
    tenant.router.get(f"{BASE}/odata/v2/Courses").mock(side_effect=httpx.ConnectError("gone"))
    checks = tenant.check()
    assert checks["key"].status == FAILED
    assert checks["key"].detail.startswith("no answer")
    assert checks["access"].status == SKIPPED


def test_a_slow_tenant_differs_on_round_trip(tenant: Tenant) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.12)
        return httpx.Response(200, json={"value": []})

    tenant.router.get(f"{BASE}/odata/v2/Users").mock(side_effect=slow)
    check = tenant.check(timeout=0.2)["round_trip"]
    assert check.status == DIFFERS
    assert "--timeout" in check.action


def test_an_echoed_key_is_blanked(tenant: Tenant) -> None:
    tenant.probe = httpx.Response(
        400, json={"error": {"code": "BadRequest", "message": f"key {KEY} is odd"}}
    )
    checks = list(tenant.check().values())
    assert "key *** is odd" in checks[2].detail
    assert KEY not in render_text(checks, base_url=BASE)
    assert KEY not in render_json(checks, base_url=BASE)


def test_json_and_text_render_every_check(tenant: Tenant) -> None:
    tenant.probe = httpx.Response(403)
    checks = list(tenant.check().values())
    parsed = json.loads(render_json(checks, base_url=BASE))
    assert parsed["exit_code"] == 1
    assert [c["name"] for c in parsed["checks"]] == [c.name for c in checks]
    assert parsed["checks"][2]["status"] == FAILED
    assert parsed["checks"][2]["assumptions"] == ["read-only-probe", "key-refused"]
    text = render_text(checks, base_url=BASE)
    assert "FAILED   Key access" in text
    assert "what to do: create a Full Control key" in text
    assert text.endswith("1 of 7 checks need attention (exit 1).")


# ---------------------------------------------------------------------------------------------
# Host and TLS over real sockets
# ---------------------------------------------------------------------------------------------


def test_a_closed_port_fails_the_host_check() -> None:
    check = check_host(base_url=f"http://127.0.0.1:{free_port()}", timeout=2)
    assert check.status == FAILED
    assert "refused the connection" in check.detail


def test_an_unknown_host_fails_the_host_check() -> None:
    check = check_host(base_url="https://no-such-host.invalid", timeout=2)
    assert check.status == FAILED
    assert "cannot be found in DNS" in check.detail


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Accept TLS handshakes on 127.0.0.1 with a self-signed certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    cert, key = make_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1]), cert
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_an_untrusted_certificate_fails_tls_with_the_way_out(tls_port: tuple[int, Path]) -> None:
    port, _ = tls_port
    check = check_tls(base_url=f"https://127.0.0.1:{port}", timeout=5, verify=True)
    assert check.status == FAILED
    assert "not trusted" in check.detail
    assert "--ca-bundle" in check.action


def test_a_ca_bundle_makes_the_certificate_trusted(tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    trusted = ssl.create_default_context(cafile=str(cert))
    check = check_tls(base_url=f"https://127.0.0.1:{port}", timeout=5, verify=trusted)
    assert check.status == OK
    assert "certificate for 127.0.0.1" in check.detail
    assert "TLSv1." in check.detail


# ---------------------------------------------------------------------------------------------
# The real command against the simulator, over a real socket
# ---------------------------------------------------------------------------------------------


def run_doctor(url: str, key: str, *args: str) -> Any:
    """Invoke ``batch-enroll doctor`` with the key in the environment, as documented."""
    return CliRunner().invoke(
        main, ["doctor", "--base-url", url, *args], env={"LMS365_API_KEY": key}
    )


def statuses_of(output: str) -> dict[str, str]:
    """Map each check's title to its status, from the text output."""
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        if status in (OK, DIFFERS, FAILED, SKIPPED):
            found[rest.strip().split("  ")[0]] = status
    return found


def test_the_full_key_passes_every_check(sim_app, sim_server) -> None:
    app = sim_app()
    server = sim_server(app)
    result = run_doctor(server.base_url, FULL_KEY)
    assert result.exit_code == 0, result.output
    assert statuses_of(result.output) == dict.fromkeys(TITLES.values(), OK)
    assert "Full Control" in result.output
    assert "session groups" in result.output
    assert FULL_KEY not in result.output
    stats = app.stats.to_dict()
    assert stats["enrollments_created"] == 0
    assert stats["by_route"]["enroll"] == 1  # the probe, and nothing else written


def test_the_read_only_key_reports_read_only(sim_app, sim_server) -> None:
    server = sim_server(sim_app())
    result = run_doctor(server.base_url, READ_ONLY_KEY)
    assert result.exit_code == 1, result.output
    found = statuses_of(result.output)
    assert found.pop("Key access") == FAILED
    assert set(found.values()) == {OK}
    assert "Key access         Read Only" in result.output
    assert READ_ONLY_KEY not in result.output


def test_a_wrong_key_exits_3(sim_app, sim_server) -> None:
    server = sim_server(sim_app())
    result = run_doctor(server.base_url, "not-the-key-0000")
    assert result.exit_code == 3, result.output
    assert statuses_of(result.output)["API key accepted"] == FAILED
    assert "LMS365 refused the key (HTTP 401" in result.output
    assert "not-the-key-0000" not in result.output


def test_a_renamed_field_differs_and_is_named(sim_app, sim_server) -> None:
    server = sim_server(sim_app(rename_fields={"TakenSeatsCount": "AttendeesCount"}))
    result = run_doctor(server.base_url, FULL_KEY)
    assert result.exit_code == 1, result.output
    found = statuses_of(result.output)
    assert found.pop("Courses page") == DIFFERS
    assert set(found.values()) == {OK}
    courses_line = next(line for line in result.output.splitlines() if "Courses page" in line)
    assert "session field TakenSeatsCount is missing" in courses_line
    assert "(it carries AttendeesCount instead)" in courses_line


def test_json_parses_and_names_the_assumptions(sim_app, sim_server) -> None:
    server = sim_server(sim_app(rename_fields={"CourseType": "Kind"}))
    result = run_doctor(server.base_url, FULL_KEY, "--json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["exit_code"] == 1
    assert report["base_url"] == server.base_url
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == list(TITLES)
    assert checks["courses"]["status"] == DIFFERS
    assert "course-fields" in checks["courses"]["assumptions"]
    assert any("CourseType" in d and "Kind" in d for d in checks["courses"]["differences"])
    assert checks["access"]["status"] == OK
    assert FULL_KEY not in result.output


def test_no_key_is_a_usage_error(sim_app, sim_server) -> None:
    server = sim_server(sim_app())
    result = CliRunner().invoke(main, ["doctor", "--base-url", server.base_url], env={})
    assert result.exit_code == 2
    assert "no API key" in result.output


def test_simulate_rename_field_and_doctor_as_separate_processes() -> None:
    port = free_port()
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batch_enroll",
            "simulate",
            "--port",
            str(port),
            "--rename-field",
            "EnrollmentDeadline=RegistrationDeadline",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_simulator(base)
        done = subprocess.run(
            [sys.executable, "-m", "batch_enroll", "doctor", "--base-url", base, "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "LMS365_API_KEY": FULL_KEY},
            timeout=60,
            check=False,
        )
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    courses = next(c for c in report["checks"] if c["name"] == "courses")
    assert courses["status"] == DIFFERS
    assert any(
        "EnrollmentDeadline is missing" in d and "RegistrationDeadline" in d
        for d in courses["differences"]
    )
    assert FULL_KEY not in done.stdout + done.stderr


def test_the_command_trusts_a_ca_bundle_as_run_does(tls_port: tuple[int, Path]) -> None:
    port, cert = tls_port
    url = f"https://127.0.0.1:{port}"
    untrusted = run_doctor(url, FULL_KEY)
    assert statuses_of(untrusted.output)["TLS"] == FAILED, untrusted.output
    assert "--ca-bundle" in untrusted.output
    trusted = run_doctor(url, FULL_KEY, "--ca-bundle", str(cert), "--timeout", "2")
    assert statuses_of(trusted.output)["TLS"] == OK, trusted.output
    # The bare TLS listener answers no HTTP: the key check says so and the rest waits.
    assert statuses_of(trusted.output)["API key accepted"] == FAILED
    assert trusted.exit_code == 1
