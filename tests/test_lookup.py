"""What a resumed run makes of the enrollments LMS365 already shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from batch_enroll.journal import JournalState
from batch_enroll.lookup import settle
from batch_enroll.model import ALREADY_ENROLLED, ENROLLED, SKIPPED_ENROLLED, WAITLISTED, Job

COURSE = "65c61b1a-04c1-46e6-9d6e-41576a0ce14f"
JOB = Job(index=0, row=2, course_id=COURSE, login="Kay@Contoso.com")


def held(**extra: Any) -> dict[str, dict[str, dict[str, Any]]]:
    enrollment = {
        "Id": "9b7d6f3e-1111-4222-8333-444455556666",
        "CourseId": COURSE,
        "UserLoginName": "i:0#.f|membership|kay@contoso.com",
        "RegistrationDate": "2026-11-27T10:15:02.1234567Z",
        **extra,
    }
    return {COURSE: {"kay@contoso.com": enrollment}}


@pytest.mark.parametrize(
    ("registration", "status"),
    [("WaitingList", WAITLISTED), ("Waiting List", WAITLISTED), ("Active", ENROLLED)],
)
def test_a_resumed_row_found_on_a_waiting_list_is_waitlisted(
    registration: str, status: str
) -> None:
    prior = JournalState(header={"created": 0.0}, started={JOB.index})
    remaining, settled = settle(
        [JOB], held(RegistrationStatus=registration), prior=prior, skip_enrolled=False
    )
    assert remaining == []
    assert settled[JOB.index].status == status
    assert settled[JOB.index].enrollment_id == "9b7d6f3e-1111-4222-8333-444455556666"


def test_a_resumed_row_registered_since_the_run_began_is_ours() -> None:
    registered = datetime(2026, 11, 27, 10, 15, 2, 123456, tzinfo=UTC).timestamp()
    before = JournalState(header={"created": registered - 1})
    _, settled = settle([JOB], held(), prior=before, skip_enrolled=False)
    assert settled[JOB.index].status == ENROLLED
    after = JournalState(header={"created": registered + 1})
    _, settled = settle([JOB], held(), prior=after, skip_enrolled=False)
    assert settled[JOB.index].status == ALREADY_ENROLLED


def test_a_skipped_row_stays_skipped_even_on_a_waiting_list() -> None:
    _, settled = settle(
        [JOB], held(RegistrationStatus="WaitingList"), prior=None, skip_enrolled=True
    )
    assert settled[JOB.index].status == SKIPPED_ENROLLED
