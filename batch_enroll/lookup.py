"""Read what LMS365 already holds, to send only what is new.

Enrollments are read once per course, users once per distinct e-mail, all
under the client's shared rate limiter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from batch_enroll.classifier import is_waitlisted, parse_lms_time
from batch_enroll.client import CLAIMS_PREFIX, LmsClient, login_key
from batch_enroll.errors import CallFailed
from batch_enroll.journal import Journal, JournalState
from batch_enroll.model import (
    ALREADY_ENROLLED,
    ENROLLED,
    INVALID,
    OK,
    SKIPPED_ENROLLED,
    UNENROLL,
    UNENROLLED,
    WAITLISTED,
    WARNING,
    Job,
    RowResult,
)
from batch_enroll.pool import map_concurrently

__all__ = ["Held", "read_held", "resolve_users", "settle", "settle_held"]

#: Per course, its enrollments keyed by ``login_key`` of the enrolled login.
Held = dict[str, dict[str, Mapping[str, Any]]]


async def read_held(client: LmsClient, course_ids: Sequence[str], *, concurrency: int = 8) -> Held:
    """Page once through each course's enrollments (courses by GUID)."""

    async def read(course_id: str) -> dict[str, Mapping[str, Any]]:
        return {
            login_key(str(item.get("UserLoginName", ""))): item
            for item in await client.find_enrollments(course_id)
        }

    return await map_concurrently(sorted(set(course_ids)), read, concurrency=concurrency)


def _registered_since(enrollment: Mapping[str, Any], since: float) -> bool:
    when = parse_lms_time(enrollment.get("RegistrationDate"))
    return since > 0 and when is not None and when.timestamp() >= since


def _found(job: Job, status: str, enrollment: Mapping[str, Any], note: str) -> RowResult:
    if status == ENROLLED and is_waitlisted(enrollment):
        status = WAITLISTED  # our earlier attempt landed on a full session's waiting list
    return RowResult(
        job.index,
        status,
        registration_date=str(enrollment.get("RegistrationDate") or ""),
        enrollment_id=str(enrollment.get("Id") or ""),
        warnings=[note],
    )


def settle(
    jobs: Sequence[Job],
    held: Held,
    *,
    prior: JournalState | None,
    skip_enrolled: bool,
    journal: Journal | None = None,
) -> tuple[list[Job], dict[int, RowResult]]:
    """Settle the jobs whose outcome LMS365 already shows; return those left to send.

    When resuming, a row that was sent before but never journalled may have
    landed: finding it enrolled means our earlier attempt did it. With
    ``skip_enrolled``, rows already enrolled are not sent at all.
    """
    since = float(prior.header.get("created", 0.0)) if prior is not None else 0.0
    started = prior.started if prior is not None else set()
    remaining: list[Job] = []
    settled: dict[int, RowResult] = {}
    for job in jobs:
        course = held.get(job.course_id)
        if course is None:
            remaining.append(job)
            continue
        existing = course.get(login_key(job.login))
        result: RowResult | None = None
        if job.action == UNENROLL:
            if existing is None and (job.index in started or skip_enrolled):
                result = RowResult(job.index, UNENROLLED)
                if job.index not in started:
                    result.error_code = "UserNotEnrolled"
                    result.warnings.append(
                        "the user held no enrollment in this course; nothing was sent"
                    )
        elif existing is not None:
            if prior is not None and (job.index in started or _registered_since(existing, since)):
                result = _found(job, ENROLLED, existing, "found in LMS365 when resuming")
            elif prior is not None and not skip_enrolled:
                result = _found(job, ALREADY_ENROLLED, existing, "found in LMS365 when resuming")
            elif skip_enrolled:
                result = _found(
                    job, SKIPPED_ENROLLED, existing, "already enrolled in LMS365; not sent"
                )
        if result is None:
            remaining.append(job)
        else:
            settled[job.index] = result
            if journal is not None:
                journal.finished(result, row=job.row)
    return remaining, settled


async def settle_held(
    client: LmsClient,
    jobs: Sequence[Job],
    *,
    journal: Journal,
    skip_enrolled: bool,
) -> tuple[list[Job], dict[int, RowResult]]:
    """Read what LMS365 holds when it matters, then ``settle``; return what is left to send.

    It matters when resuming (a row may have been sent and never journalled) and
    with ``skip_enrolled``; otherwise nothing is read.
    """
    prior = journal.prior
    if not jobs or (prior is None and not skip_enrolled):
        return list(jobs), {}
    held = await read_held(client, [job.course_id for job in jobs])
    return settle(jobs, held, prior=prior, skip_enrolled=skip_enrolled, journal=journal)


def _looks_like_email(login: str) -> bool:
    return "@" in login and "|" not in login


async def resolve_users(
    client: LmsClient, frame: pd.DataFrame, *, concurrency: int = 8
) -> pd.DataFrame:
    """Look up each distinct e-mail of the sendable rows once; mark unknown users invalid.

    Adds ``resolved_login_name``: the LoginName LMS365 returned, which is what gets sent.
    """
    frame["resolved_login_name"] = ""
    sendable = frame["status"].isin((OK, WARNING))
    logins = frame.loc[sendable, "user_login_name"].astype(str)
    emails = sorted({login.lower() for login in logins if _looks_like_email(login)})

    async def find(email: str) -> str | None:
        try:
            user = await client.find_user_by_email(email)
        except CallFailed:
            return ""  # unknown, not absent: send the row as written and let LMS365 decide
        if user is None:
            return None
        return str(user.get("LoginName") or CLAIMS_PREFIX + email)

    found = await map_concurrently(emails, find, concurrency=concurrency)
    lowered = frame["user_login_name"].astype(str).str.lower()
    resolved = lowered.map(found)
    unknown = sendable & lowered.isin([e for e, login in found.items() if login is None])
    if unknown.any():
        frame.loc[unknown, "status"] = INVALID
        frame.loc[unknown, "error_code"] = "UserNotFound"
        frame.loc[unknown, "error_message"] = "no LMS365 user has the e-mail " + frame.loc[
            unknown, "user_login_name"
        ].astype(str)
    known = sendable & ~unknown & resolved.notna() & (resolved != "")
    frame.loc[known, "resolved_login_name"] = resolved[known]
    return frame
