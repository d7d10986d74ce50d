"""What each problem means, in words an HR person understands, and what to do about it.

Codes come from LMS365's answers (see the classifier) and from the validator.
"""

from __future__ import annotations

from collections.abc import Mapping

from batch_enroll.classifier import MAX_ENROLLMENTS_WORDS

__all__ = ["EXPLANATIONS", "advice", "explain"]

#: What each code means, in words an HR person understands, and what to do about it.
EXPLANATIONS: Mapping[str, tuple[str, str]] = {
    "InvalidCourseSession": (
        "the session is not one of this course's sessions, or the course has no sessions",
        "copy the session from the course's session list, or leave it empty for e-learning",
    ),
    "TooManySessions": (
        "the course lets a learner attend only one session, or books all its sessions by"
        " itself, but sessions were given",
        "keep one session in the row, or none for a course that books all its sessions",
    ),
    "SessionClosed": (
        "the session has ended or its registration deadline has passed",
        "choose a later session, or extend the deadline in LMS365",
    ),
    "MaxAttendeesReached": (
        "the session is full and keeps no waiting list",
        "choose another session, raise the seat limit, turn its waiting list on,"
        " or use --ignore-max-attendees",
    ),
    "CourseNotAvailable": (
        "the course is deleted, ended or not published",
        "publish the course in LMS365, or name another course",
    ),
    "CourseNotFound": (
        "no course in LMS365 has this id, code or title",
        "write the course's code or title as LMS365 shows it, or its id (a GUID)",
    ),
    "AmbiguousCourse": (
        "several courses in LMS365 share this code or title",
        "write the course's id (the GUID the message names) instead",
    ),
    "SessionNotFound": (
        "no session of the course has this title or start time",
        "copy the session's title or start (YYYY-MM-DD HH:MM, its local time) from the"
        " course's session list",
    ),
    "AmbiguousSession": (
        "several sessions of the course match this title or start time",
        "name the session by its start time (YYYY-MM-DD HH:MM) or its id",
    ),
    "CourseNotRead": (
        "the course could not be read, so its sessions could not be matched by name",
        "run again later; --resume sends only what is left",
    ),
    "MaxEnrollmentsReached": (
        MAX_ENROLLMENTS_WORDS,
        "enroll the rest through a group (its login name in the user column), or split the"
        " audience over a copy of the course",
    ),
    "UserNotFound": (
        "no user or group with this login name exists in LMS365",
        "check the spelling, or sync the user to LMS365 first",
    ),
    "UserAlreadyEnrolled": (
        "the user was already enrolled in the course",
        "nothing to do",
    ),
    "UserNotEnrolled": (
        "the user was not enrolled in the course, so there was nothing to unenroll",
        "nothing to do",
    ),
    "Unauthorized": (
        "LMS365 refused the API key",
        "check LMS365_API_KEY (Admin Center > Global Settings > API Key Management)",
    ),
    "Forbidden": (
        "the API key is read-only",
        "use a Full Control API key",
    ),
    "TooManyRequests": (
        "LMS365 kept throttling the requests",
        "run again later or lower --rate; --resume sends only what is left",
    ),
    # Found by the validator before anything is sent.
    "RaggedRow": (
        "the row has more cells than the header, so its cells may have slid into the wrong columns",
        "quote the cell that holds the separator (an address with a comma, say), or remove it",
    ),
    "MissingCourseId": (
        "the course cell is empty",
        "fill in the course's code, title or id (a GUID)",
    ),
    "InvalidCourseId": (
        "the course cell holds an Excel error instead of a course",
        "write the course's code, title or id (a GUID) in the cell",
    ),
    "MissingLogin": ("the user's login name is empty", "fill in the e-mail or login name"),
    "InvalidLogin": (
        "the login name is not an e-mail address, a sign-in name or a group name",
        "remove spaces and typos; use the person's work e-mail",
    ),
    "InvalidSessionId": (
        "the sessions cell holds an Excel error instead of sessions",
        "write the session's title, start time or id in the cell",
    ),
    "SessionRequired": (
        "the course is instructor-led and needs a session, but none was given",
        "add the session's title or start time (or its id); without --require-session,"
        " only courses that require a session refuse these rows",
    ),
    "ConflictingSessions": (
        "the same person is booked into two sessions of a one-session course",
        "keep one row per person for this course",
    ),
    "InvalidAction": ("the action is neither enroll nor unenroll", "write enroll or unenroll"),
    "InvalidFlag": ("a yes/no column holds something else", "write true or false"),
    "Unconfirmed": (
        "LMS365 did not answer and could not be asked whether the request took effect",
        "run again with --resume; it asks LMS365 before sending these again",
    ),
    "Interrupted": (
        "the run stopped while these requests were in flight",
        "run again with --resume; it checks LMS365 before sending them again",
    ),
}


def explain(code: str) -> str:
    """Return the plain-words meaning of a problem code, or an empty string."""
    return EXPLANATIONS.get(code, ("", ""))[0]


def advice(code: str) -> str:
    """Return what a person should do about a problem code, or an empty string."""
    return EXPLANATIONS.get(code, ("", ""))[1]
