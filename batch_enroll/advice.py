"""What each problem means, in words an HR person understands, and what to do about it.

Codes come from LMS365's answers (see the classifier) and from the validator.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["EXPLANATIONS", "advice", "explain"]

#: What each code means, in words an HR person understands, and what to do about it.
EXPLANATIONS: Mapping[str, tuple[str, str]] = {
    "InvalidCourseSession": (
        "the session is not one of this course's sessions, or the course has no sessions",
        "copy the session id from the course's session list, or leave it empty for e-learning",
    ),
    "TooManySessions": (
        "the course lets a learner attend only one session, but several were given",
        "keep one session id in the row",
    ),
    "SessionClosed": (
        "the session has ended or its registration deadline has passed",
        "choose a later session, or extend the deadline in LMS365",
    ),
    "MaxAttendeesReached": (
        "the session is full",
        "choose another session, raise the seat limit, or use --ignore-max-attendees",
    ),
    "MaxEnrollmentsReached": (
        "the course already holds 5,000 individually enrolled people, the most LMS365 allows"
        " in one course",
        "enroll a group (its login name) instead of individuals, or split the audience over a"
        " copy of the course",
    ),
    "CourseNotAvailable": (
        "the course is deleted, ended or not published",
        "publish the course in LMS365 or correct the course id",
    ),
    "CourseNotFound": (
        "no course has this id in LMS365",
        "correct the course id (it is the number in the course's address)",
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
    "MissingCourseId": ("the course id is empty", "fill in the course id"),
    "InvalidCourseId": (
        "the course id is not a positive whole number",
        "use the number from the course's address in LMS365",
    ),
    "MissingLogin": ("the user's login name is empty", "fill in the e-mail or login name"),
    "InvalidLogin": (
        "the login name is not an e-mail address, a sign-in name or a group name",
        "remove spaces and typos; use the person's work e-mail",
    ),
    "InvalidSessionId": (
        "a session id is not in the form LMS365 uses (a GUID)",
        "copy the session id from the course's session list",
    ),
    "SessionRequired": (
        "the course is instructor-led and no session was given",
        "add a session id, or run without --require-session",
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
