"""Courses and sessions named the way HR names them: the matching rules and their reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest
import respx

from batch_enroll.client import LmsClient, login_key
from batch_enroll.model import INVALID, OK
from batch_enroll.options import ConnectionOptions
from batch_enroll.ratelimit import RateLimiter
from batch_enroll.resolve import (
    AMBIGUOUS_COURSE,
    AMBIGUOUS_SESSION,
    COURSE_NOT_FOUND,
    SESSION_NOT_FOUND,
    CourseRef,
    course_filter,
    course_key,
    describe,
    find_courses,
    fold,
    match_course,
    match_sessions,
    parse_guid,
    resolve_frame,
    session_label,
    session_local_start,
)
from batch_enroll.validator import check_offline, check_sessions

BASE = "https://tenant.example"
SAF = "65c61b1a-04c1-46e6-9d6e-41576a0ce14f"
FORK = "0f0e0d0c-0b0a-4909-8807-060504030201"
DUP_A = "aaaaaaaa-0000-4000-8000-000000000001"
DUP_B = "aaaaaaaa-0000-4000-8000-000000000002"
DUP_C = "aaaaaaaa-0000-4000-8000-000000000003"
DUP_D = "aaaaaaaa-0000-4000-8000-000000000004"

CATALOGUE = [
    CourseRef(SAF, "SAF-101", "Workplace Safety Basics"),
    CourseRef(FORK, "101", "Forklift  Safety"),
    CourseRef(DUP_A, "HR-1", "Onboarding"),
    CourseRef(DUP_B, "HR-2", "onboarding"),
    CourseRef(DUP_C, "X", "Shared code"),
    CourseRef(DUP_D, "x", "Other"),
]

MORNING = "11111111-1111-4111-8111-111111111111"
AFTERNOON = "22222222-2222-4222-8222-222222222222"
EVENING = "33333333-3333-4333-8333-333333333333"
GROUP = "44444444-4444-4444-8444-444444444444"
SESSIONS: list[dict[str, Any]] = [
    {
        "Id": MORNING,
        "Title": "Morning, Oslo",
        "StartDate": "2026-12-01T08:00:00Z",
        "StartDateLocal": "2026-12-01T09:00:00",
    },
    {
        "Id": AFTERNOON,
        "Title": "Afternoon, Oslo",
        "StartDate": "2026-12-01T13:00:00.1234567Z",
        "StartDateLocal": "2026-12-01T14:00:00",
    },
    {"Id": EVENING, "Title": "Evening", "StartDate": "2026-12-02T17:30:00Z"},
    {
        "Id": GROUP,
        "Title": "Both Oslo days",
        "IsGroup": True,
        "StartDate": "1753-01-01T00:00:00Z",
        "EndDate": "9999-12-31T23:59:59.997Z",
    },
]


# -- pure rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (SAF.upper(), SAF),
        ("{" + SAF.upper() + "}", SAF),
        (f"  {{{SAF}}} ", SAF),
        ("{" + SAF, None),
        (SAF + "x", None),
        ("SAF-101", None),
    ],
)
def test_parse_guid_takes_any_case_with_or_without_braces(cell: str, expected: str | None) -> None:
    assert parse_guid(cell) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("101.0", "101"), ("101.00", "101"), (" SAF-101 ", "SAF-101"), ("101.5", "101.5")],
)
def test_course_key_reads_whole_floats_as_integers(cell: str, expected: str) -> None:
    assert course_key(cell) == expected


def test_fold_ignores_case_and_inner_spacing() -> None:
    assert fold("  Forklift \t SAFETY ") == fold("forklift safety")


@pytest.mark.parametrize(
    ("cell", "course"),
    [
        ("{" + SAF.upper() + "}", SAF),
        ("saf-101", SAF),
        (" SAF-101 ", SAF),
        ("workplace   safety BASICS", SAF),
        ("101.0", FORK),
        ("forklift safety", FORK),
    ],
)
def test_match_course_by_guid_code_then_title(cell: str, course: str) -> None:
    found = match_course(cell, CATALOGUE)
    assert found.ok, found.error_message
    assert found.ids == (course,)


def test_match_course_refuses_a_shared_title_naming_the_candidates() -> None:
    found = match_course("ONBOARDING", CATALOGUE)
    assert found.error_code == AMBIGUOUS_COURSE
    assert DUP_A in found.error_message
    assert DUP_B in found.error_message
    assert "HR-1" in found.error_message
    assert "HR-2" in found.error_message


def test_match_course_refuses_a_shared_code_even_if_a_title_would_match() -> None:
    found = match_course("x", [*CATALOGUE, CourseRef(FORK.replace("0f", "1f"), "", "x")])
    assert found.error_code == AMBIGUOUS_COURSE
    assert "code" in found.error_message


def test_match_course_names_at_most_three_candidates() -> None:
    many = [CourseRef(f"aaaaaaaa-0000-4000-8000-00000000001{i}", f"C{i}", "Same") for i in range(5)]
    found = match_course("same", many)
    assert found.error_code == AMBIGUOUS_COURSE
    assert sum(ref.id in found.error_message for ref in many) == 3
    assert "2 more" in found.error_message


def test_match_course_says_when_nothing_matches() -> None:
    found = match_course("Basket Weaving", CATALOGUE)
    assert found.error_code == COURSE_NOT_FOUND
    assert "Basket Weaving" in found.error_message


def test_course_filter_doubles_quotes() -> None:
    assert course_filter("O'Brien's course") == (
        "CourseID eq 'O''Brien''s course' or Title eq 'O''Brien''s course'"
    )


def test_course_filter_also_asks_for_the_title_with_single_spaces() -> None:
    assert course_filter(" Fire  Warden ") == (
        "CourseID eq 'Fire  Warden' or Title eq 'Fire  Warden' or Title eq 'Fire Warden'"
    )


@pytest.mark.parametrize(
    ("cell", "ids"),
    [
        (f"{MORNING.upper()}, {{{EVENING}}}", (MORNING, EVENING)),
        ("morning, oslo", (MORNING,)),
        ("Morning, Oslo; EVENING", (MORNING, EVENING)),
        ("Morning, Oslo | Evening", (MORNING, EVENING)),
        ("2026-12-02", (EVENING,)),
        ("2026-12-01 09:00", (MORNING,)),
        ("2026-12-01T14:00:00", (AFTERNOON,)),
        ("2026-12-02 17:30", (EVENING,)),
        ("both oslo days", (GROUP,)),
        (f"Evening; {AFTERNOON}", (EVENING, AFTERNOON)),
    ],
)
def test_match_sessions_by_id_title_date_or_local_start(cell: str, ids: tuple[str, ...]) -> None:
    found = match_sessions(cell, SESSIONS)
    assert found.ok, found.error_message
    assert found.ids == ids


def test_a_title_holding_a_separator_is_one_session() -> None:
    odd = [*SESSIONS, {"Id": "66666666-6666-4666-8666-666666666666", "Title": "Part 1; Basics"}]
    assert match_sessions("part 1; basics", odd).ids == ("66666666-6666-4666-8666-666666666666",)
    assert match_sessions("Evening; Part 1; Basics", odd).error_code == SESSION_NOT_FOUND


def test_a_day_with_two_sessions_is_ambiguous_and_names_them() -> None:
    found = match_sessions("2026-12-01", SESSIONS)
    assert found.error_code == AMBIGUOUS_SESSION
    assert "Morning, Oslo (2026-12-01 09:00)" in found.error_message
    assert "Afternoon, Oslo (2026-12-01 14:00)" in found.error_message


def test_local_start_is_not_the_utc_start() -> None:
    # 08:00 is Morning's UTC start; in Oslo it starts at 09:00.
    assert match_sessions("2026-12-01 08:00", SESSIONS).error_code == SESSION_NOT_FOUND


def test_a_local_start_with_an_offset_reads_as_its_wall_clock() -> None:
    session = {
        "Id": "66666666-6666-4666-8666-666666666666",
        "StartDate": "2026-12-01T08:00:00.1234567Z",
        "StartDateLocal": "2026-12-01T09:00:00.1234567+01:00",
    }
    assert session_local_start(session) == datetime(2026, 12, 1, 9, 0, 0, 123456)
    assert match_sessions("2026-12-01 09:00", [session]).ids == (session["Id"],)


def test_without_a_local_start_the_utc_start_is_used() -> None:
    session = {"Id": "77777777-7777-4777-8777-777777777777", "StartDate": "2026-12-01T08:00Z"}
    assert session_local_start(session) == datetime(2026, 12, 1, 8, 0)


def test_an_unknown_session_name_lists_the_course_sessions() -> None:
    found = match_sessions("Morning, Bergen", SESSIONS)
    assert found.error_code == SESSION_NOT_FOUND
    assert "Morning, Bergen" in found.error_message
    assert "Evening (2026-12-02 17:30)" in found.error_message


def test_two_sessions_with_one_title_are_ambiguous() -> None:
    twice = [*SESSIONS, {**SESSIONS[2], "Id": "55555555-5555-4555-8555-555555555555"}]
    assert match_sessions("evening", twice).error_code == AMBIGUOUS_SESSION


def test_a_group_has_no_start_and_is_labelled_as_a_group() -> None:
    assert session_local_start(SESSIONS[3]) is None
    assert session_label(SESSIONS[3]) == "Both Oslo days (session group)"
    assert match_sessions("1753-01-01", SESSIONS).error_code == SESSION_NOT_FOUND


@pytest.mark.parametrize(
    "login",
    [
        "I:0#.F|Membership|Kay@Contoso.com",
        "i:0#.f|membership|kay@contoso.com",
        "KAY@contoso.com",
        " kay@contoso.com ",
    ],
)
def test_logins_compare_without_claims_prefix_or_case(login: str) -> None:
    assert login_key(login) == "kay@contoso.com"


# -- reads --------------------------------------------------------------------------------------


def course_record(ref: CourseRef) -> dict[str, Any]:
    return {"Id": ref.id, "CourseID": ref.code, "Title": ref.title}


class Tenant:
    """A scripted course list: pages of ``page_size``, filters answered exactly."""

    def __init__(
        self, refs: list[CourseRef], *, page_size: int = 100, refuse_filters: bool = False
    ) -> None:
        self.refs = refs
        self.page_size = page_size
        self.refuse_filters = refuse_filters
        self.list_reads = 0
        self.filter_reads = 0
        self.course_reads: list[str] = []

    def courses(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
        assert query["$select"] == "Id,CourseID,Title"
        flt = query.get("$filter")
        if flt is not None:
            self.filter_reads += 1
            if self.refuse_filters:  # a server that knows no "or"
                return httpx.Response(400, json={"error": {"code": "BadRequest", "message": "or"}})
            texts = {
                clause.split(" eq ", 1)[1][1:-1].replace("''", "'") for clause in flt.split(" or ")
            }
            found = [r for r in self.refs if texts & {r.code, r.title}]
            return httpx.Response(200, json={"value": [course_record(r) for r in found]})
        self.list_reads += 1
        skip = int(query.get("$skip", "0"))
        page = self.refs[skip : skip + self.page_size]
        body: dict[str, Any] = {"value": [course_record(r) for r in page]}
        if query.get("$count") == "true":
            body["@odata.count"] = len(self.refs)
        if skip + self.page_size < len(self.refs):
            body["@odata.nextLink"] = (
                f"{BASE}/odata/v2/Courses?$select=Id,CourseID,Title&$skip={skip + self.page_size}"
            )
        return httpx.Response(200, json=body)

    def course(self, request: httpx.Request, course_id: str) -> httpx.Response:
        self.course_reads.append(course_id)
        if course_id == SAF:
            return httpx.Response(
                200,
                json={
                    "Id": SAF,
                    "Title": "Workplace Safety Basics",
                    "CourseType": "ClassRoom",
                    "CourseSessionEnrollmentType": "EnrollToSingle",
                    "IsPublished": True,
                    "CourseSessions": SESSIONS,
                },
            )
        ref = next((r for r in self.refs if r.id == course_id), None)
        if ref is None:
            return httpx.Response(404, json={"error": {"code": "CourseNotFound", "message": "x"}})
        return httpx.Response(
            200, json={**course_record(ref), "CourseType": "ELearning", "IsPublished": True}
        )


def client_for(tenant: Tenant) -> LmsClient:
    router = respx.Router(assert_all_called=False)
    router.get(url__regex=r".*/odata/v2/Courses\(([^)]*)\).*").mock(
        side_effect=lambda request: tenant.course(
            request, str(request.url.path).split("(")[1].split(")")[0]
        )
    )
    router.get(url__regex=r".*/odata/v2/Courses(\?.*)?$").mock(side_effect=tenant.courses)
    connection = ConnectionOptions(
        base_url=BASE, api_key="test-key", transport=httpx.MockTransport(router.async_handler)
    )
    return LmsClient(connection, limiter=RateLimiter(rate=10_000), backoff_base=0.001)


@pytest.mark.anyio
async def test_guid_cells_need_no_lookup() -> None:
    tenant = Tenant(CATALOGUE)
    async with client_for(tenant) as client:
        found = await find_courses(client, [SAF.upper(), "{" + FORK + "}"])
    assert found[SAF].ids == (SAF,)
    assert found[FORK].ids == (FORK,)
    assert tenant.list_reads == tenant.filter_reads == 0


@pytest.mark.anyio
async def test_a_single_cell_is_one_filtered_read() -> None:
    tenant = Tenant(CATALOGUE)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["Workplace  Safety Basics", SAF])
    assert found["Workplace  Safety Basics"].ids == (SAF,)
    assert (tenant.list_reads, tenant.filter_reads) == (0, 1)


@pytest.mark.anyio
async def test_a_filter_that_finds_nothing_is_checked_against_the_list() -> None:
    # This server's eq minds case, so the filter misses a title typed in capitals.
    tenant = Tenant(CATALOGUE)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["WORKPLACE SAFETY BASICS"])
        missing = await find_courses(client, ["Basket Weaving"])
    assert found["WORKPLACE SAFETY BASICS"].ids == (SAF,)
    assert missing["Basket Weaving"].error_code == COURSE_NOT_FOUND
    assert (tenant.list_reads, tenant.filter_reads) == (2, 2)


@pytest.mark.anyio
async def test_a_refused_filter_falls_back_to_the_list() -> None:
    tenant = Tenant(CATALOGUE, refuse_filters=True)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["saf-101"])
    assert found["saf-101"].ids == (SAF,)
    assert (tenant.list_reads, tenant.filter_reads) == (1, 1)


@pytest.mark.anyio
async def test_one_list_page_serves_every_cell() -> None:
    tenant = Tenant(CATALOGUE)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["SAF-101", "forklift safety", "onboarding", "nope"])
    assert found["SAF-101"].ids == (SAF,)
    assert found["forklift safety"].ids == (FORK,)
    assert found["onboarding"].error_code == AMBIGUOUS_COURSE
    assert found["nope"].error_code == COURSE_NOT_FOUND
    assert (tenant.list_reads, tenant.filter_reads) == (1, 0)


@pytest.mark.anyio
async def test_a_long_catalogue_is_asked_per_cell_instead_of_paged_through() -> None:
    filler = [
        CourseRef(f"bbbbbbbb-0000-4000-8000-{i:012d}", f"F{i}", f"Filler {i}") for i in range(50)
    ]
    tenant = Tenant([*filler, *CATALOGUE], page_size=5)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["SAF-101", "Forklift  Safety"])
    assert found["SAF-101"].ids == (SAF,)
    assert found["Forklift  Safety"].ids == (FORK,)
    # One page showed 11 more pages to go: two filtered reads cost less.
    assert (tenant.list_reads, tenant.filter_reads) == (1, 2)


@pytest.mark.anyio
async def test_a_short_remainder_is_paged_through() -> None:
    tenant = Tenant(CATALOGUE, page_size=4)
    async with client_for(tenant) as client:
        found = await find_courses(client, ["onboarding", "x", "SAF-101"])
    assert found["onboarding"].error_code == AMBIGUOUS_COURSE
    assert found["x"].error_code == AMBIGUOUS_COURSE
    assert (tenant.list_reads, tenant.filter_reads) == (2, 0)


def sheet(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": list(range(2, 2 + len(rows))),
            "course_id": [r[0] for r in rows],
            "user_login_name": [r[1] for r in rows],
            "course_session_ids": [r[2] for r in rows],
        }
    )


@pytest.mark.anyio
async def test_resolve_frame_works_per_distinct_cell_and_fills_what_rows_became() -> None:
    tenant = Tenant(CATALOGUE)
    rows = [("SAF-101", f"p{i}@contoso.com", "Morning, Oslo") for i in range(200)]
    rows += [
        ("workplace safety basics", "kay@contoso.com", "2026-12-01 14:00"),
        ("SAF-101", "lee@contoso.com", "2026-12-01"),
        ("Onboarding", "ann@contoso.com", ""),
        ("SAF-101", "I:0#.F|Membership|P0@Contoso.com", "morning, oslo"),
    ]
    frame = check_offline(sheet(rows))
    async with client_for(tenant) as client:
        courses = await resolve_frame(client, frame)
    check_sessions(frame, courses)
    describe(frame, courses)
    assert (tenant.list_reads, tenant.filter_reads) == (1, 0)
    assert tenant.course_reads == [SAF]  # once, for 203 rows naming it three ways
    assert frame.loc[0, "_course"] == SAF
    assert frame.loc[0, "_sessions"] == MORNING
    assert frame.loc[0, "session_titles"] == "Morning, Oslo (2026-12-01 09:00)"
    assert frame.loc[0, "course_title"] == "Workplace Safety Basics"
    assert frame.loc[200, "_sessions"] == AFTERNOON
    assert frame.loc[201, "status"] == INVALID
    assert frame.loc[201, "error_code"] == AMBIGUOUS_SESSION
    assert frame.loc[202, "error_code"] == AMBIGUOUS_COURSE
    # Another spelling of row 2's course, session and login is the same booking.
    assert frame.loc[203, "status"] == "duplicate"
    assert "row 2" in frame.loc[203, "error_message"]
    assert (frame.loc[:199, "status"] == OK).all()
