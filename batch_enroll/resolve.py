"""Resolve what a sheet names against LMS365, then apply the rules that need its answers.

Today a sheet names courses by id, so resolving reads each course once; the
session rules then check every row against what was read. Both ``validate`` and
``run`` go through here.
"""

from __future__ import annotations

import anyio
import pandas as pd

from batch_enroll.client import LmsClient
from batch_enroll.errors import AuthFailure
from batch_enroll.model import OK
from batch_enroll.options import RunOptions
from batch_enroll.pool import PoolEnd, StopHandle
from batch_enroll.validator import CourseInfo, check_sessions, fetch_courses

__all__ = ["Halted", "check_online", "resolve"]


class Halted(Exception):
    """Nothing more can be sent; ``reason`` says why, in the summary's words."""

    def __init__(self, end: PoolEnd, reason: str) -> None:
        super().__init__(reason)
        self.end, self.reason = end, reason


async def resolve(
    client: LmsClient, checked: pd.DataFrame, stop: StopHandle, *, grace: float
) -> dict[int, CourseInfo]:
    """Read from LMS365 what the clean rows name: for now, each course once, by id."""
    ids = checked.loc[checked["status"] == OK, "_course"].dropna().astype(int).unique().tolist()
    with anyio.CancelScope() as scope, stop.guarding(scope, grace=grace):
        return await fetch_courses(client, ids)
    return {}  # a stop cancelled the reads; the caller sees stop.requested


async def check_online(
    client: LmsClient, checked: pd.DataFrame, options: RunOptions, stop: StopHandle
) -> None:
    """Resolve the sheet and apply the course and session rules; raise Halted if LMS365 won't do."""
    try:
        courses = await resolve(client, checked, stop, grace=options.grace)
    except AuthFailure as exc:
        raise Halted(PoolEnd.AUTH, exc.explain()) from None
    if courses and all(info.unreachable for info in courses.values()):
        # Every row would only fail its retries one by one; say so once instead.
        reason = next(iter(courses.values())).error
        message = f"could not reach LMS365 at {options.base_url} ({reason}); nothing was sent"
        raise Halted(PoolEnd.FAILED, message)
    check_sessions(checked, courses, require_session=options.require_session)
