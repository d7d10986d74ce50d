"""The validator: offline cell rules, then the contract's session-rule table row by row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from batch_enroll.model import DUPLICATE, INVALID, OK, UNENROLL, WARNING
from batch_enroll.resolve import CourseInfo
from batch_enroll.validator import check_offline, check_sessions, jobs_from

S1 = "11111111-1111-1111-1111-111111111111"
S2 = "22222222-2222-2222-2222-222222222222"
FULL = "33333333-3333-3333-3333-333333333333"
CLOSED = "44444444-4444-4444-4444-444444444444"
PAST = "55555555-5555-5555-5555-555555555555"
OTHER = "99999999-9999-9999-9999-999999999999"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def cid(number: int) -> str:
    """Return the GUID test course ``number`` has."""
    return f"c0000000-0000-4000-8000-{number:012d}"


def sheet(*rows: dict[str, str], extra: dict[str, list[str]] | None = None) -> pd.DataFrame:
    records = []
    for number, row in enumerate(rows, start=2):
        record = {"row": number, "course_session_ids": ""}
        record.update(row)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    frame["row"] = frame["row"].astype("int64")
    return frame


def session(sid: str, **extra: Any) -> dict[str, Any]:
    record = {
        "Id": sid,
        "Title": f"Session {sid[:4]}",
        "StartDate": "2026-12-01T09:00:00Z",
        "EndDate": "2026-12-01T12:00:00Z",
        "EnrollmentDeadline": "2026-11-30T00:00:00Z",
        "MaxAttendees": 20,
        "TakenSeatsCount": 3,
    }
    record.update(extra)
    return record


def course(number: int, kind: str, mode: str | None = None, **extra: Any) -> CourseInfo:
    metadata: dict[str, Any] = {
        "Id": cid(number),
        "Title": f"Course {number}",
        "CourseType": kind,
        "CourseSessionEnrollmentType": mode,
        "IsPublished": True,
        "IsEnded": False,
        "IsDeleted": False,
        "CourseSessions": [
            session(S1),
            session(S2),
            session(FULL, MaxAttendees=5, TakenSeatsCount=5),
            session(CLOSED, EnrollmentDeadline="2026-11-26T00:00:00Z"),
            session(PAST, StartDate="2026-11-01T09:00:00Z", EndDate="2026-11-01T12:00:00Z"),
        ]
        if kind in ("ClassRoom", "Webinar")
        else [],
    }
    metadata.update(extra)
    return CourseInfo(cid(number), True, metadata=metadata)


GROUP = "66666666-6666-6666-6666-666666666666"
PLACEHOLDERS = {"StartDate": "1753-01-01T00:00:00Z", "EndDate": "9999-12-31T23:59:59.997Z"}
COURSES = {
    info.course_id: info
    for info in (
        course(1, "ELearning"),
        course(2, "TrainingPlan"),
        course(3, "ClassRoom", "EnrollToSingle"),
        course(4, "Webinar", "EnrollToMultiple"),
        course(5, "ClassRoom", "EnrollToAll"),
        course(6, "ELearning", IsDeleted=True),
        course(7, "ELearning", IsEnded=True),
        course(8, "ELearning", IsPublished=False),
        course(10, "ClassRoom", "EnrollToSingle", IsEnrollmentWithoutSessionsAllowed=False),
        course(11, "ClassRoom", "EnrollToSingle", WaitingListEnabled=True),
        course(12, "ClassRoom", "EnrollToAll", EnrollmentDeadline="2026-11-20T00:00:00Z"),
        course(13, "ClassRoom", "EnrollToAll", MaxAttendees=3),
        course(14, "ClassRoom", "EnrollToAll", MaxAttendees=3, WaitingListEnabled=True),
        course(15, "ClassRoom", "EnrollToMultiple", MaxAttendees=0),
        CourseInfo(cid(404), False),
    )
}
# A session group: placeholder dates, no seat limit, and members that name it.
COURSES[cid(15)].metadata["CourseSessions"].append(  # type: ignore[index]
    session(GROUP, Title="Both days", IsGroup=True, MaxAttendees=None, **PLACEHOLDERS)
)


def verdict(number: int, sessions: str = "", *, require: bool = False, **cells: str):
    frame = check_offline(
        sheet(
            {
                "course_id": cid(number),
                "user_login_name": "kay@contoso.com",
                "course_session_ids": sessions,
                **cells,
            }
        )
    )
    check_sessions(frame, COURSES, require_session=require, now=NOW)
    row = frame.iloc[0]
    return row["status"], row["error_code"], row["warnings"]


# One case per line of the contract's session-rule table.
@pytest.mark.parametrize(
    ("number", "sessions", "expected"),
    [
        pytest.param(1, "", (OK, ""), id="elearning-none-enrolled"),
        pytest.param(2, "", (OK, ""), id="trainingplan-none-enrolled"),
        pytest.param(1, S1, (INVALID, "InvalidCourseSession"), id="elearning-any-fails"),
        pytest.param(2, S1, (INVALID, "InvalidCourseSession"), id="trainingplan-any-fails"),
        pytest.param(3, "", (WARNING, ""), id="single-none-warns"),
        pytest.param(3, S1, (OK, ""), id="single-one"),
        pytest.param(3, f"{S1};{S2}", (INVALID, "TooManySessions"), id="single-many-fails"),
        pytest.param(4, "", (WARNING, ""), id="multiple-none-warns"),
        pytest.param(4, f"{S1};{S2}", (OK, ""), id="multiple-several"),
        pytest.param(5, "", (OK, ""), id="all-none-enrolled-in-all"),
        pytest.param(5, S1, (INVALID, "TooManySessions"), id="all-some-fails"),
        pytest.param(3, OTHER, (INVALID, "InvalidCourseSession"), id="ilt-foreign-session"),
        pytest.param(4, CLOSED, (INVALID, "SessionClosed"), id="ilt-deadline-passed"),
        pytest.param(4, PAST, (INVALID, "SessionClosed"), id="ilt-session-ended"),
        pytest.param(3, FULL, (INVALID, "MaxAttendeesReached"), id="ilt-full"),
        pytest.param(6, "", (INVALID, "CourseNotAvailable"), id="deleted-course"),
        pytest.param(7, "", (INVALID, "CourseNotAvailable"), id="ended-course"),
        pytest.param(8, "", (INVALID, "CourseNotAvailable"), id="unpublished-course"),
        pytest.param(404, "", (INVALID, "CourseNotFound"), id="unknown-course"),
        pytest.param(10, "", (INVALID, "SessionRequired"), id="sessions-required-none"),
        pytest.param(10, S1, (OK, ""), id="sessions-required-one"),
        pytest.param(11, FULL, (WARNING, ""), id="full-with-waiting-list"),
        pytest.param(12, "", (INVALID, "SessionClosed"), id="all-course-deadline-passed"),
        pytest.param(13, "", (INVALID, "MaxAttendeesReached"), id="all-course-full"),
        pytest.param(14, "", (WARNING, ""), id="all-course-full-waiting-list"),
        pytest.param(15, GROUP, (OK, ""), id="group-placeholders-never-ended"),
        pytest.param(15, "", (WARNING, ""), id="course-limit-zero-is-no-limit"),
    ],
)
def test_session_rule_table(number: int, sessions: str, expected: tuple[str, str]) -> None:
    status, code, _ = verdict(number, sessions)
    assert (status, code) == expected


def test_full_session_is_allowed_with_ignore_max_attendees() -> None:
    status, code, _ = verdict(3, FULL, ignore_max_attendees="yes")
    assert (status, code) == (OK, "")


def test_require_session_makes_a_missing_session_invalid() -> None:
    assert verdict(3, "", require=True)[:2] == (INVALID, "SessionRequired")
    assert verdict(5, "", require=True)[:2] == (OK, "")


def test_a_group_is_full_when_one_of_its_open_sessions_is() -> None:
    courses = dict(COURSES)
    info = course(16, "ClassRoom", "EnrollToMultiple")
    member = {"GroupId": GROUP}
    info.metadata["CourseSessions"] = [  # type: ignore[index]
        session(GROUP, Title="Both days", IsGroup=True, MaxAttendees=None, **PLACEHOLDERS),
        session(S1, **member),
        session(FULL, MaxAttendees=5, TakenSeatsCount=5, **member),
    ]
    courses[cid(16)] = info
    frame = check_offline(
        sheet(
            {
                "course_id": cid(16),
                "user_login_name": "kay@contoso.com",
                "course_session_ids": GROUP,
            }
        )
    )
    check_sessions(frame, courses, now=NOW)
    assert (frame.at[0, "status"], frame.at[0, "error_code"]) == (INVALID, "MaxAttendeesReached")


def test_a_full_session_with_a_waiting_list_says_so() -> None:
    assert "waiting list" in verdict(11, FULL)[2]


def test_an_all_sessions_course_is_as_full_as_its_busiest_session() -> None:
    # Course 13 allows 3; its sessions hold 3, 3, 5, 3 and 3: full.
    assert verdict(13, "")[:2] == (INVALID, "MaxAttendeesReached")
    courses = dict(COURSES)
    roomy = course(13, "ClassRoom", "EnrollToAll", MaxAttendees=30)
    courses[cid(13)] = roomy
    frame = check_offline(sheet({"course_id": cid(13), "user_login_name": "kay@contoso.com"}))
    check_sessions(frame, courses, now=NOW)
    assert frame.at[0, "status"] == OK


def test_missing_session_warning_explains_the_email() -> None:
    assert "e-mail" in verdict(4, "")[2]


@pytest.mark.parametrize(
    ("cell", "code"),
    [("", "MissingCourseId"), ("#N/A", "InvalidCourseId"), ("#REF!", "InvalidCourseId")],
)
def test_bad_course_cells(cell: str, code: str) -> None:
    frame = check_offline(sheet({"course_id": cell, "user_login_name": "kay@contoso.com"}))
    assert (frame.at[0, "status"], frame.at[0, "error_code"]) == (INVALID, code)


@pytest.mark.parametrize(
    ("cell", "key", "guid"),
    [
        ("42.0", "42", ""),
        ("SAF-101", "SAF-101", ""),
        ("Workplace Safety Basics", "Workplace Safety Basics", ""),
        ("{" + cid(3).upper() + "}", cid(3), cid(3)),
        ("-3", "-3", ""),
    ],
)
def test_any_course_cell_is_a_guid_or_something_to_look_up(cell: str, key: str, guid: str) -> None:
    frame = check_offline(sheet({"course_id": cell, "user_login_name": "kay@contoso.com"}))
    assert frame.at[0, "status"] == OK
    assert frame.at[0, "_course_key"] == key
    assert frame.at[0, "_course"] == guid


@pytest.mark.parametrize(
    "login",
    [
        "kay@contoso.com",
        "Kay.Smith@contoso.onmicrosoft.com",
        "i:0#.f|membership|kay@contoso.com",
        "I:0#.F|Membership|Kay@Contoso.com",
        "HR-Team",
        "1234",
    ],
)
def test_good_logins(login: str) -> None:
    frame = check_offline(sheet({"course_id": cid(1), "user_login_name": login}))
    assert frame.at[0, "status"] == OK


@pytest.mark.parametrize(
    ("login", "code"),
    [
        ("", "MissingLogin"),
        ("kay smith@contoso.com", "InvalidLogin"),
        ("kay@", "InvalidLogin"),
        ("#N/A", "InvalidLogin"),
        ("=HYPERLINK(1)", "InvalidLogin"),
        ("i:0#.f|membership|", "InvalidLogin"),
    ],
)
def test_bad_logins(login: str, code: str) -> None:
    frame = check_offline(sheet({"course_id": cid(1), "user_login_name": login}))
    assert (frame.at[0, "status"], frame.at[0, "error_code"]) == (INVALID, code)


def test_session_cells_split_on_any_separator_and_normalise() -> None:
    cell = f"{{{S1.upper()}}} , {S2}|{S1}"
    frame = check_offline(
        sheet({"course_id": cid(4), "user_login_name": "a@b.co", "course_session_ids": cell})
    )
    assert frame.at[0, "status"] == OK
    assert frame.at[0, "_sessions"] == f"{S1};{S2}"


def test_a_session_cell_with_names_is_left_for_matching() -> None:
    frame = check_offline(
        sheet(
            {"course_id": cid(4), "user_login_name": "a@b.co", "course_session_ids": f"{S1};nope"}
        )
    )
    assert frame.at[0, "status"] == OK
    assert frame.at[0, "_sessions"] == ""
    assert frame.at[0, "_session_cell"] == f"{S1};nope"


def test_an_excel_error_in_the_sessions_cell_is_invalid() -> None:
    frame = check_offline(
        sheet({"course_id": cid(4), "user_login_name": "a@b.co", "course_session_ids": "#VALUE!"})
    )
    assert frame.at[0, "error_code"] == "InvalidSessionId"
    assert "#VALUE!" in frame.at[0, "error_message"]


def test_exact_repeat_is_duplicate_of_the_first_row() -> None:
    frame = check_offline(
        sheet(
            {
                "course_id": cid(4),
                "user_login_name": "kay@contoso.com",
                "course_session_ids": f"{S1};{S2}",
            },
            {"course_id": cid(1), "user_login_name": "kay@contoso.com"},
            {
                "course_id": cid(4),
                "user_login_name": "KAY@contoso.com",
                "course_session_ids": f"{S2};{S1}",
            },
            {
                "course_id": cid(4),
                "user_login_name": "i:0#.f|membership|kay@contoso.com",
                "course_session_ids": f"{S1},{S2}",
            },
        )
    )
    assert frame["status"].tolist() == [OK, OK, DUPLICATE, DUPLICATE]
    assert frame.at[2, "error_message"].endswith("as row 2")


def test_same_user_other_session_of_single_course_is_invalid() -> None:
    frame = check_offline(
        sheet(
            {"course_id": cid(3), "user_login_name": "kay@contoso.com", "course_session_ids": S1},
            {"course_id": cid(3), "user_login_name": "kay@contoso.com", "course_session_ids": S2},
        )
    )
    check_sessions(frame, COURSES, now=NOW)
    assert frame["status"].tolist() == [OK, INVALID]
    assert frame.at[1, "error_code"] == "ConflictingSessions"
    assert "row 2" in frame.at[1, "error_message"]


def test_seats_shortage_warns_rows_beyond_capacity() -> None:
    info = course(9, "ClassRoom", "EnrollToMultiple")
    info.metadata["CourseSessions"][0]["TakenSeatsCount"] = 19  # type: ignore[index]
    frame = check_offline(
        sheet(
            {"course_id": cid(9), "user_login_name": "a@contoso.com", "course_session_ids": S1},
            {"course_id": cid(9), "user_login_name": "b@contoso.com", "course_session_ids": S1},
        )
    )
    check_sessions(frame, {cid(9): info}, now=NOW)
    assert frame["status"].tolist() == [OK, WARNING]
    assert "1 free seats" in frame.at[1, "warnings"]


def test_unknown_course_invalidates_all_its_rows() -> None:
    frame = check_offline(
        sheet(
            {"course_id": cid(404), "user_login_name": "a@contoso.com"},
            {"course_id": cid(404), "user_login_name": "b@contoso.com"},
            {"course_id": cid(1), "user_login_name": "b@contoso.com"},
        )
    )
    check_sessions(frame, COURSES, now=NOW)
    assert frame["status"].tolist() == [INVALID, INVALID, OK]


def test_jobs_only_for_sendable_rows() -> None:
    frame = check_offline(
        sheet(
            {
                "course_id": cid(4),
                "user_login_name": "a@contoso.com",
                "course_session_ids": S1,
                "action": "",
                "ignore_max_attendees": "no",
            },
            {
                "course_id": "x",
                "user_login_name": "b@contoso.com",
                "action": "",
                "ignore_max_attendees": "",
            },
            {
                "course_id": cid(1),
                "user_login_name": "c@contoso.com",
                "action": "Unenroll",
                "ignore_max_attendees": "1",
            },
        )
    )
    check_sessions(frame, COURSES, now=NOW)
    jobs = jobs_from(frame)
    assert [(j.index, j.row, j.course_id, j.session_ids, j.action) for j in jobs] == [
        (0, 2, cid(4), (S1,), "enroll"),
        (2, 4, cid(1), (), UNENROLL),
    ]
    assert jobs[1].ignore_max_attendees is True
