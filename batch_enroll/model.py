"""The records that flow from the validator through the pool to the reporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

ENROLLED: Final = "enrolled"
#: Sent to a full session whose course keeps a waiting list: LMS365 put the person on it.
WAITLISTED: Final = "waitlisted"
ALREADY_ENROLLED: Final = "already_enrolled"
SKIPPED_ENROLLED: Final = "skipped_enrolled"
UNENROLLED: Final = "unenrolled"
INVALID: Final = "invalid"
DUPLICATE: Final = "duplicate"
FAILED: Final = "failed"
NOT_ATTEMPTED: Final = "not_attempted"

#: Statuses of a finished run, in the order the summary lists them.
RUN_STATUSES: Final = (
    ENROLLED,
    WAITLISTED,
    ALREADY_ENROLLED,
    SKIPPED_ENROLLED,
    UNENROLLED,
    DUPLICATE,
    INVALID,
    FAILED,
    NOT_ATTEMPTED,
)
#: Statuses that leave the run's exit code at 0.
SUCCESS_STATUSES: Final = frozenset(
    {ENROLLED, WAITLISTED, ALREADY_ENROLLED, SKIPPED_ENROLLED, UNENROLLED, DUPLICATE}
)
#: Statuses that a resumed run never sends again.
FINAL_STATUSES: Final = frozenset(
    {ENROLLED, WAITLISTED, ALREADY_ENROLLED, SKIPPED_ENROLLED, UNENROLLED, FAILED}
)

OK: Final = "ok"
WARNING: Final = "warning"
#: Statuses of the validate report.
CHECK_STATUSES: Final = (OK, WARNING, INVALID, DUPLICATE)

ENROLL: Final = "enroll"
UNENROLL: Final = "unenroll"

RESULT_COLUMNS: Final = (
    "row",
    "course_id",
    "user_login_name",
    "course_session_ids",
    "status",
    "http_status",
    "registration_date",
    "enrollment_id",
    "attempts",
    "error_code",
    "error_message",
    "warnings",
)
#: Columns that end the results and the validate report, after the input's own:
#: what each row's course and sessions became in LMS365.
RESOLVED_COLUMNS: Final = ("lms_course_id", "course_title", "session_titles")


#: Columns the tool adds to a sheet's frame; an input column of the same name is
#: carried as ``input_<name>`` so that neither overwrites the other.
ADDED_COLUMNS: Final = frozenset(
    {
        *RESULT_COLUMNS[4:],
        "resolved_login_name",
        *RESOLVED_COLUMNS,
        "_course_key",
        "_course",
        "_sessions",
        "_session_cell",
        "_action",
        "_login_key",
    }
)


def carried_name(column: str) -> str:
    """Return the name an input column keeps beside the columns the tool adds."""
    name = column
    while name in ADDED_COLUMNS:
        name = f"input_{name}"
    return name


@dataclass(frozen=True, slots=True)
class Job:
    """One request to send: a sheet row that passed validation."""

    index: int
    row: int
    #: The course's GUID, in lower case.
    course_id: str
    login: str
    session_ids: tuple[str, ...] = ()
    action: str = ENROLL
    message: str = ""
    ignore_max_attendees: bool = False
    ignore_enrollment_flow: bool = False


@dataclass(slots=True)
class RowResult:
    """What happened to one sent row."""

    index: int
    status: str
    http_status: int | None = None
    registration_date: str = ""
    enrollment_id: str = ""
    attempts: int = 0
    error_code: str = ""
    error_message: str = ""
    warnings: list[str] = field(default_factory=list)
    #: The row failed for want of an answer (retries used up, LMS365 unreachable
    #: to confirm), not because LMS365 refused it: a resumed run tries it again.
    retryable: bool = False


#: Exit codes of the command line, also carried by a Summary.
EXIT_OK: Final = 0
EXIT_ROW_PROBLEMS: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_AUTH: Final = 3
#: sysexits.h EX_SOFTWARE: an internal error (a bug), reported in one line and a file.
EXIT_SOFTWARE: Final = 70
EXIT_INTERRUPTED: Final = 130

#: Input files above this many MiB are refused before reading (``--max-input-mb``).
DEFAULT_MAX_INPUT_MB: Final = 1024
