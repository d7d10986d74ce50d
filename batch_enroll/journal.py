"""An append-only record of every finished row, so a stopped run can be resumed.

One JSON object a line. The first line ties the journal to its input (content
hash) and to the options that change what is sent. Every record is written by
its own system call, so a killed process loses nothing it had finished; fsync
runs about once a second, so a power cut risks at most that much work, and a
torn last line is skipped on reading.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from batch_enroll import __version__
from batch_enroll.errors import JournalError, ResumeError, RunLocked
from batch_enroll.files import check_writable, optional_path
from batch_enroll.model import DUPLICATE, FINAL_STATUSES, INVALID, Job, RowResult

if TYPE_CHECKING:
    import pandas as pd

    from batch_enroll.loader import Sheet
    from batch_enroll.options import RunOptions

__all__ = [
    "JOURNAL_VERSION",
    "Journal",
    "JournalError",
    "JournalState",
    "RunFiles",
    "RunLock",
    "journal_path_for",
    "journal_verdicts",
    "locked_journal",
    "open_journal",
    "read_journal",
]

JOURNAL_VERSION = 1
#: Seconds of finished work a power cut may lose.
SYNC_INTERVAL = 1.0


def journal_path_for(results: Path) -> Path:
    """Return the default journal path beside a results file."""
    return results.with_name(results.name + ".journal")


@dataclass
class JournalState:
    """What a journal holds: its header and, per input row index, the latest record."""

    header: dict[str, Any]
    results: dict[int, RowResult] = field(default_factory=dict)
    #: Rows whose request went out and whose outcome was never written.
    started: set[int] = field(default_factory=set)
    finished: bool = False
    torn_lines: int = 0
    #: What each course cell resolved to (normalised cell -> course GUID) in the run.
    resolved: dict[str, str] = field(default_factory=dict)

    def final(self) -> dict[int, RowResult]:
        """Return the rows that have a final outcome and must not be sent again."""
        return {
            i: r for i, r in self.results.items() if r.status in FINAL_STATUSES and not r.retryable
        }


def _result_from(record: Mapping[str, Any]) -> RowResult:
    return RowResult(
        index=int(record["index"]),
        status=str(record["status"]),
        http_status=record.get("http_status"),
        registration_date=str(record.get("registration_date") or ""),
        enrollment_id=str(record.get("enrollment_id") or ""),
        attempts=int(record.get("attempts") or 0),
        error_code=str(record.get("error_code") or ""),
        error_message=str(record.get("error_message") or ""),
        warnings=[str(w) for w in record.get("warnings") or []],
        retryable=bool(record.get("retryable", False)),
    )


def read_journal(path: Path) -> JournalState:
    """Read a journal, tolerating a torn last line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal ({exc.strerror or exc})") from None
    lines = raw.split(b"\n")
    state: JournalState | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            is_last = all(not rest.strip() for rest in lines[number:])
            if is_last and state is not None:
                # A power cut mid-write leaves half a line; the row is simply not final.
                state.torn_lines += 1
                continue
            raise JournalError(f"{path}: line {number} is damaged; it is not JSON") from None
        if not isinstance(record, dict):
            raise JournalError(f"{path}: line {number} is not a journal record")
        kind = record.get("type")
        if state is None:
            if kind != "header" or record.get("version") != JOURNAL_VERSION:
                raise JournalError(f"{path}: not a batch-enroll journal (no header line)")
            state = JournalState(header=record)
        elif kind == "result":
            result = _result_from(record)
            state.results[result.index] = result
            if result.retryable:
                # It may have landed unseen: a resumed run looks before sending it again.
                state.started.add(result.index)
            else:
                state.started.discard(result.index)
        elif kind == "start":
            index = int(record["index"])
            if index not in state.results:
                state.started.add(index)
        elif kind == "resolved":
            courses = record.get("courses")
            if isinstance(courses, dict):
                state.resolved.update({str(k): str(v) for k, v in courses.items()})
        elif kind == "done":
            state.finished = True
    if state is None:
        raise JournalError(f"{path}: the journal is empty")
    return state


class Journal:
    """Append records to a journal file, syncing them to disk about once a second."""

    def __init__(
        self,
        path: Path,
        *,
        header: Mapping[str, Any] | None,
        append: bool,
        prior: JournalState | None = None,
    ) -> None:
        self.path = path
        #: When resuming, what the stopped run had done; None for a fresh run.
        self.prior = prior
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o600)
        self._last_sync = time.monotonic()
        self._dirty = False
        if header is not None:
            self._write({"type": "header", "version": JOURNAL_VERSION, **header})
            self.sync()

    def _write(self, record: Mapping[str, Any]) -> None:
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        # One write per record: whatever the OS accepted survives a killed process.
        os.write(self._fd, data)
        self._dirty = True
        if time.monotonic() - self._last_sync >= SYNC_INTERVAL:
            self.sync()

    def resolved(self, courses: Mapping[str, str]) -> None:
        """Record what each course cell resolved to, so a resume can tell if that changed."""
        self._write({"type": "resolved", "courses": dict(courses)})

    def started(self, job: Job) -> None:
        """Note that a row's request is about to go out."""
        self._write(
            {"type": "start", "index": job.index, "row": job.row, "course_id": job.course_id}
        )

    def finished(self, result: RowResult, *, row: int) -> None:
        """Record a row's outcome."""
        record = {"type": "result", "row": row, **asdict(result)}
        self._write(record)

    def done(self) -> None:
        """Mark the run complete: every row has its outcome."""
        self._write({"type": "done", "at": time.time()})
        self.sync()

    def sync(self) -> None:
        """Flush what was written to the disk."""
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync and close."""
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


def journal_verdicts(journal: Journal, checked: pd.DataFrame) -> None:
    """Journal the rows the validator stopped, so input + journal rebuild the results."""
    stopped = checked[checked["status"].isin((INVALID, DUPLICATE))]
    for index, row, status, code, message in zip(
        stopped.index,
        stopped["row"],
        stopped["status"],
        stopped["error_code"],
        stopped["error_message"],
        strict=True,
    ):
        result = RowResult(
            int(index), str(status), error_code=str(code), error_message=str(message)
        )
        journal.finished(result, row=int(row))


def open_journal(
    path: Path,
    *,
    input_path: Path,
    input_sha256: str,
    fingerprint: Mapping[str, Any],
    resume: bool,
) -> Journal:
    """Open a run's journal; with ``resume``, its ``prior`` holds what the stopped run did.

    A resume must read the same input with the same options that change what is
    sent; a fresh run must not overwrite a journal whose run sent rows and did not finish.
    """
    if resume:
        if not path.exists():
            raise ResumeError(f"{path}: no journal to resume; run without --resume")
        prior = read_journal(path)
        if prior.header.get("input_sha256") != input_sha256:
            raise ResumeError(
                f"{path} was written for a different input: {input_path} has changed since"
                " (its content hash differs); run without --resume and a new --out"
            )
        before = prior.header.get("options", {})
        changed = sorted(
            k for k in set(before) | set(fingerprint) if before.get(k) != fingerprint.get(k)
        )
        if changed:
            raise ResumeError(
                f"{path} was written with other options that change what is sent"
                f" ({', '.join(changed)}); resume with the same options"
            )
        return Journal(path, header=None, append=True, prior=prior)
    if path.exists():
        try:
            state = read_journal(path)
        except JournalError:
            state = None
        # A run that stopped before sending anything (a refused key, say) left
        # nothing to finish: starting afresh cannot send a row twice.
        sent = state is not None and bool(state.started or state.final())
        if state is None or (not state.finished and sent):
            raise ResumeError(
                f"{path}: an earlier run did not finish; add --resume to finish it"
                " (nothing is sent twice), or delete the journal to start over"
            )
    header = {
        "input": str(input_path),
        "input_sha256": input_sha256,
        "options": dict(fingerprint),
        "created": time.time(),
        "tool_version": __version__,
    }
    return Journal(path, header=header, append=False)


class RunLock:
    """Keep a second run off the same results and journal while the first is alive.

    The lock is an OS file lock, which the kernel drops when its process dies,
    so a crashed run never leaves it stuck.
    """

    def __init__(self, results: Path) -> None:
        self.path = results.with_name(results.name + ".lock")
        self._lock = FileLock(str(self.path), timeout=0)

    def __enter__(self) -> RunLock:
        try:
            self._lock.acquire()
        except Timeout:
            raise RunLocked(
                f"another batch-enroll run is writing {self.path.with_suffix('')}"
                " (it holds the lock); wait for it to finish or choose another --out"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes: its results, its journal and (when asked for) its summary JSON."""

    results: Path
    journal: Path
    summary_json: Path | None

    @classmethod
    def checked(
        cls, results: str | Path, *, journal: str | Path | None, summary_json: str | Path | None
    ) -> RunFiles:
        """Settle the paths (the journal beside the results unless given); refuse unwritable ones.

        Before anything is read or sent: a results folder that cannot take the results
        must not be found out after every row was enrolled.
        """
        out = Path(results)
        files = cls(
            out, optional_path(journal) or journal_path_for(out), optional_path(summary_json)
        )
        check_writable(
            replaced=[("results", files.results), ("summary JSON", files.summary_json)],
            appended=[("journal", files.journal)],
        )
        return files


@contextlib.contextmanager
def locked_journal(
    files: RunFiles, sheet: Sheet, options: RunOptions, *, resume: bool
) -> Iterator[Journal]:
    """Hold the results' run lock and the run's journal (see ``open_journal``) in this block."""
    files.results.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(files.results):
        journal = open_journal(
            files.journal,
            input_path=sheet.path,
            input_sha256=sheet.sha256,
            fingerprint=options.fingerprint(),
            resume=resume,
        )
        try:
            yield journal
        finally:
            journal.close()
