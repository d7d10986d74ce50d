"""The last resort: an unexpected exception becomes one line and a traceback file, exit 70."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Container, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from batch_enroll.model import EXIT_SOFTWARE, NOT_ATTEMPTED, Job, RowResult, carried_name
from batch_enroll.redact import scrub

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXIT_SOFTWARE",
    "INTERNAL_ERROR",
    "crash_line",
    "crash_reason",
    "innermost",
    "unchecked_results",
    "unfinished_results",
    "write_crash_report",
]

#: Enough of the message to recognise it; the file holds the rest.
MESSAGE_LIMIT = 200
#: The error code of the rows a crash left unfinished.
INTERNAL_ERROR = "InternalError"


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def innermost(exc: BaseException) -> BaseException:
    """Return the first real exception inside task-group wrappers (the wrappers say nothing)."""
    return _leaves(exc)[0]


def crash_reason(exc: BaseException) -> str:
    """Say in the summary's words that a bug stopped the run, and how to finish it."""
    return f"internal error ({type(innermost(exc)).__name__}); finish with --resume"


def unfinished_results(jobs: Iterable[Job], finished: Container[int]) -> dict[int, RowResult]:
    """Say on each job not ``finished`` that a crash cut it short; resume still sends it.

    Not journalled: to the journal these rows are simply unfinished.
    """
    message = (
        "the run stopped on an internal error before this row was finished; a re-run with"
        " --resume asks LMS365 before sending it again"
    )
    return {
        job.index: RowResult(
            job.index, NOT_ATTEMPTED, error_code=INTERNAL_ERROR, error_message=message
        )
        for job in jobs
        if job.index not in finished
    }


def unchecked_results(frame: pd.DataFrame, *, extra_columns: Sequence[str]) -> pd.DataFrame:
    """Lay out the results of a sheet whose checks crashed: every row not attempted.

    Nothing was sent yet, so a re-run after the fix starts afresh.
    """
    from batch_enroll.reporter import results_frame  # pandas: only once a crash needs it

    unchecked = frame.rename(columns=carried_name).assign(
        status=NOT_ATTEMPTED,
        error_code=INTERNAL_ERROR,
        error_message="the checks stopped on an internal error before this row was checked;"
        " nothing was sent",
        warnings="",
        _sessions="",
    )
    return results_frame(unchecked, extra_columns=extra_columns)


def _name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"


def write_crash_report(exc: BaseException, *, folder: Path | None) -> Path | None:
    """Write the traceback beside the results (or in the temp folder); return where.

    None when no folder could take it. Every remembered secret is scrubbed from it.
    """
    from batch_enroll import __version__  # read from package metadata: only when needed

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    text = scrub(
        f"batch-enroll {__version__} internal error at {stamp}Z\n\n"
        + "".join(traceback.format_exception(exc))
    )
    candidates = [folder] if folder is not None else []
    candidates.append(Path(tempfile.gettempdir()))
    for candidate in candidates:
        try:
            fd, name = tempfile.mkstemp(
                prefix=f"batch-enroll-crash-{stamp}-", suffix=".txt", dir=candidate
            )
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            continue
        return Path(name)
    return None


def crash_line(exc: BaseException, report: Path | None) -> str:
    """Say in one line what went wrong and where the traceback is; no secret in it."""
    leaves = _leaves(exc)
    exc = leaves[0]
    message = " ".join(scrub(str(exc)).split())
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    if len(leaves) > 1:
        # Concurrent tasks often fail alike; the file holds every one.
        message += f" (and {len(leaves) - 1} more)"
    where = f"; the traceback is in {report}" if report is not None else ""
    return f"batch-enroll: internal error: {_name(exc)}: {message}{where}"
