"""Every error batch_enroll raises on purpose, under one base class.

A caller that embeds the library catches ``BatchEnrollError``; the command line
prints its message as one line and exits with the code the error carries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for the annotation: keeps httpx (which classifier imports) off `--help`.
    from batch_enroll.classifier import Outcome

__all__ = [
    "ApiKeyError",
    "AuthFailure",
    "BatchEnrollError",
    "CallFailed",
    "ConfigError",
    "JournalError",
    "LoadError",
    "ProxyConfigError",
    "ResumeError",
    "RunLocked",
    "UnwritableError",
]


class BatchEnrollError(Exception):
    """Something batch_enroll refuses or cannot do; the message says what and why."""


class ConfigError(BatchEnrollError):
    """A bad invocation or option: nothing was sent."""


class ApiKeyError(ConfigError):
    """No usable API key; the message says why and never holds any of the file's content."""


class ProxyConfigError(ConfigError):
    """A proxy setting that cannot be used; the message names where it came from."""


class UnwritableError(ConfigError):
    """An output file or folder that cannot be written; nothing was sent."""


class LoadError(BatchEnrollError):
    """One line for the user: '<file>: <what is wrong>' or '<file>: row N, column "X": <what>'."""


class JournalError(BatchEnrollError):
    """A journal that cannot be used for this run; the message says why."""


class ResumeError(JournalError):
    """A run that cannot start or resume from the journal it finds (changed input or options)."""


class RunLocked(JournalError):
    """Another live run holds the results file's lock."""


class AuthFailure(BatchEnrollError):
    """LMS365 refused the key: no request of this run can succeed."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(
            f"HTTP {outcome.http_status} {outcome.error_code}: {outcome.error_message}"
        )
        self.outcome = outcome

    def explain(self) -> str:
        """Say, without the key, why LMS365 refused it and what to do."""
        if self.outcome.http_status == 407:
            return f"the proxy answered 407: {self.outcome.error_message}"
        if self.outcome.http_status == 403:
            return (
                "LMS365 answered 403: the API key is read-only; enrolling needs a Full Control key"
            )
        return "LMS365 answered 401: the API key was refused; check LMS365_API_KEY"


class CallFailed(BatchEnrollError):
    """A read request failed for good."""

    def __init__(self, outcome: Outcome, attempts: int) -> None:
        super().__init__(outcome.error_message or outcome.error_code)
        self.outcome = outcome
        self.attempts = attempts
