"""Runs that live on the server: started, watched, stopped and resumed from the page.

Each run has a folder under ``DATA_DIR/runs/<id>/`` with a copy of the sheet, the results
CSV and its journal (the library's), the .xlsx, the summary JSON and ``run.json``, which
holds what the history shows. A run goes on in its own thread and event loop, so the
page's requests are answered while rows are sent and a reload re-attaches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from batch_enroll.reporter import write_xlsx
from batch_enroll.web import engine
from batch_enroll.web.engine import (
    ConfigError,
    JournalError,
    LoadError,
    Progress,
    RunLock,
    RunOptions,
    StopHandle,
    Summary,
)

__all__ = ["RUN_STATES", "RunBusy", "RunManager", "RunRecord", "frame_rows", "new_id", "valid_id"]

log = logging.getLogger("batch_enroll.web")

RUN_STATES = ("running", "done", "stopped", "failed")
_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")
RESULTS_CSV = "results.csv"
RESULTS_XLSX = "results.xlsx"
#: The results rows as the page shows them: cells as they are, not formula-neutralised.
ROWS_JSON = "rows.json"
SUMMARY_JSON = "summary.json"
RECORD = "run.json"


def now_iso() -> str:
    """Return the time now as an ISO 8601 UTC string."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    """Return a new id that sorts by time and is safe as a folder name."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def valid_id(value: str) -> bool:
    """Tell whether a run or upload id from a URL has the form this app makes."""
    return bool(_ID.match(value))


class RunBusy(Exception):
    """A run is already going for this tenant; the message says which."""


@dataclass
class RunRecord:
    """What the page and the history know of a run."""

    id: str
    file: str
    upload: str
    state: str = "running"
    started_at: str = field(default_factory=now_iso)
    finished_at: str = ""
    done: int = 0
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    error: str = ""
    resumed: int = 0
    #: The workbook sheet the run reads ("" for a CSV file or the first one found).
    sheet: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the record as stored in ``run.json`` and listed by ``GET /api/runs``."""
        return {
            "id": self.id,
            "file": self.file,
            "upload": self.upload,
            "state": self.state,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "done": self.done,
            "total": self.total,
            "counts": self.counts,
            "rate": self.rate,
            "error": self.error,
            "resumed": self.resumed,
            "sheet": self.sheet,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """Read a stored record; unknown keys from other versions are ignored."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class _Live:
    record: RunRecord
    stop: StopHandle
    thread: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    locked: threading.Event = field(default_factory=threading.Event)
    refused: bool = False


def _tenant(options: RunOptions) -> str:
    # Never the key itself: only a digest names the tenant's lock file.
    text = f"{options.base_url}\n{options.api_key}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


class RunManager:
    """Start runs one at a time per tenant, track them, and keep their history on disk."""

    def __init__(self, data_dir: Path, options: RunOptions, *, max_input_mb: float) -> None:
        self.data_dir = data_dir
        self.options = options
        self.max_input_mb = max_input_mb
        self.runs_dir = data_dir / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._live: dict[str, _Live] = {}
        self._tenant_path = data_dir / f"tenant-{_tenant(options)}"
        self._recover()

    # -- history ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Mark runs a dead server left 'running' as stopped: their journal resumes them."""
        for record in self.history():
            if record.state == "running" and not self._held_elsewhere(record.id):
                record.state = "stopped"
                record.error = "the server stopped during this run; Resume finishes it"
                self._save(record)

    def _held_elsewhere(self, run_id: str) -> bool:
        """Tell whether another server sharing this data folder is running this run now."""
        try:
            with RunLock(self.folder(run_id) / RESULTS_CSV):
                return False
        except JournalError:
            return True

    def folder(self, run_id: str) -> Path:
        """Return a run's folder (the id must be valid)."""
        return self.runs_dir / run_id

    def _save(self, record: RunRecord) -> None:
        path = self.folder(record.id) / RECORD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record.to_json(), indent=2), encoding="utf-8")
        tmp.replace(path)

    def history(self) -> list[RunRecord]:
        """Return every run in the data folder, newest first."""
        records = []
        for path in sorted(self.runs_dir.glob(f"*/{RECORD}"), reverse=True):
            try:
                records.append(RunRecord.from_json(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError):
                log.warning("skipping an unreadable run record %s", path)
        return [self.get(r.id) or r for r in records]

    def get(self, run_id: str) -> RunRecord | None:
        """Return a run's record, live if it is going."""
        with self._lock:
            live = self._live.get(run_id)
            if live is not None:
                return live.record
        path = self.folder(run_id) / RECORD
        if not path.is_file():
            return None
        return RunRecord.from_json(json.loads(path.read_text("utf-8")))

    def summary(self, run_id: str) -> dict[str, Any] | None:
        """Return a finished run's summary JSON, if it has one."""
        path = self.folder(run_id) / SUMMARY_JSON
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
        return data

    def running(self) -> RunRecord | None:
        """Return the run going now, if any."""
        with self._lock:
            for live in self._live.values():
                if live.record.state == "running":
                    return live.record
        return None

    # -- starting and stopping -------------------------------------------------------------

    def start(
        self, *, input_path: Path, file: str, upload: str, sheet: str | None = None
    ) -> RunRecord:
        """Start a run of a checked upload; refuse while another run of this tenant goes."""
        run_id = new_id()
        folder = self.folder(run_id)
        folder.mkdir(parents=True)
        copy = folder / f"input{input_path.suffix}"
        shutil.copyfile(input_path, copy)
        record = RunRecord(id=run_id, file=file, upload=upload, sheet=sheet or "")
        try:
            self._launch(record, copy, resume=False)
        except RunBusy:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return record

    def resume(self, run_id: str) -> RunRecord:
        """Finish a stopped run from its journal: rows with an outcome are not sent again."""
        record = self.get(run_id)
        if record is None:
            raise KeyError(run_id)
        if record.state != "stopped":
            raise RunBusy(f"run {run_id} is {record.state}; only a stopped run can be resumed")
        inputs = sorted(self.folder(run_id).glob("input.*"))
        if not inputs:
            raise RunBusy(f"run {run_id} has lost its copy of the sheet; start it again")
        record.state, record.error, record.finished_at = "running", "", ""
        record.resumed += 1
        self._launch(record, inputs[0], resume=True)
        return record

    def _launch(self, record: RunRecord, input_path: Path, *, resume: bool) -> None:
        with self._lock:
            busy = next((x for x in self._live.values() if x.record.state == "running"), None)
            if busy is not None:
                raise RunBusy(
                    f"a run is already going (run {busy.record.id}, {busy.record.file},"
                    f" {busy.record.done} of {busy.record.total} rows done): wait for it to"
                    " finish or stop it, then enroll again"
                )
            live = _Live(record=record, stop=StopHandle())
            self._live[record.id] = live
            thread = threading.Thread(
                target=self._work,
                args=(live, input_path, resume),
                name=f"batch-enroll-run-{record.id}",
                daemon=True,
            )
            live.thread = thread
            thread.start()
            # The worker takes the tenant's lock itself (a file lock belongs to the
            # thread that took it) and says here whether another server holds it.
            live.locked.wait()
            if live.refused:
                self._live.pop(record.id, None)
                raise RunBusy(
                    "another batch-enroll server using this data folder is running a batch for"
                    " this LMS365 tenant; wait for it to finish"
                )
        self._save(record)

    def stop(self, run_id: str, *, now: bool = False) -> RunRecord | None:
        """Ask a live run to stop; answer its record (None: no such run)."""
        with self._lock:
            live = self._live.get(run_id)
        if live is None:
            return self.get(run_id)
        loop = live.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(lambda: live.stop.stop(now=now))
        return live.record

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Wait until a live run's thread ends (for tests and shutdown)."""
        with self._lock:
            live = self._live.get(run_id)
        if live is not None and live.thread is not None:
            live.thread.join(timeout)

    def shutdown(self, *, timeout: float = 15.0) -> None:
        """Stop every live run and wait for its journal and results to be written."""
        with self._lock:
            lives = list(self._live.values())
        for live in lives:
            self.stop(live.record.id, now=True)
        deadline = time.monotonic() + timeout
        for live in lives:
            if live.thread is not None:
                live.thread.join(max(0.0, deadline - time.monotonic()))

    # -- the worker ------------------------------------------------------------------------

    def _work(self, live: _Live, input_path: Path, resume: bool) -> None:
        tenant = RunLock(self._tenant_path)
        try:
            tenant.__enter__()
        except JournalError:
            live.refused = True
            live.locked.set()
            return
        live.locked.set()
        try:
            self._run(live, input_path, resume)
        finally:
            tenant.__exit__(None, None, None)

    def _run(self, live: _Live, input_path: Path, resume: bool) -> None:
        record = live.record
        folder = self.folder(record.id)
        last_saved = [0.0]

        def progress(p: Progress) -> None:
            record.done, record.total, record.rate = p.done, p.total, round(p.rate, 1)
            record.counts = {k: v for k, v in p.counts.items() if v}
            now = time.monotonic()
            if now - last_saved[0] > 2.0:  # the history shows how far a crashed run got
                last_saved[0] = now
                self._save(record)

        sheet_name = record.sheet or None
        short = engine.short_path(input_path)

        async def go() -> Summary:
            live.loop = asyncio.get_running_loop()
            return await engine.run_sheet_async(
                short,
                out=folder / RESULTS_CSV,
                options=self.options,
                summary_json=folder / SUMMARY_JSON,
                resume=resume,
                on_progress=progress,
                stop=live.stop,
                handle_signals=False,
                sheet_name=sheet_name,
                max_input_mb=self.max_input_mb,
            )

        try:
            summary = asyncio.run(go())
            frame = engine.results_of(summary)
            write_xlsx(frame, folder / RESULTS_XLSX)
            shown = {
                "columns": [str(c) for c in frame.columns],
                "sheet_columns": engine.sheet_columns(
                    short, sheet_name=sheet_name, max_input_mb=self.max_input_mb
                ),
                "rows": frame_rows(frame),
            }
            (folder / ROWS_JSON).write_text(json.dumps(shown), encoding="utf-8")
            _finish(record, summary, live.stop)
        except (LoadError, JournalError, ConfigError) as exc:
            # A resume refused (options changed since, say) leaves the run as it was: stopped.
            record.state = "stopped" if resume else "failed"
            record.error = _public(str(exc), short, record.file)
        except Exception:
            log.exception("run %s failed", record.id)
            record.state = "failed"
            record.error = "the run failed on the server; the details are in the server's log"
        finally:
            record.finished_at = now_iso()
            self._save(record)
            with self._lock:
                self._live.pop(record.id, None)


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Return a frame's rows as JSON objects, every cell text but the row number."""
    rows: list[dict[str, Any]] = []
    columns = [str(c) for c in frame.columns]
    for values in frame.itertuples(index=False, name=None):
        row: dict[str, Any] = {}
        for name, value in zip(columns, values, strict=True):
            if name == "row":
                row[name] = int(value)
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                row[name] = ""
            else:
                row[name] = str(value)
        rows.append(row)
    return rows


def _finish(record: RunRecord, summary: Summary, stop: StopHandle) -> None:
    # done / total stay as the last progress said (the rows this run sent); the counts
    # become the whole sheet's, as in the results.
    record.counts = {k: v for k, v in summary.counts.items() if v}
    if summary.exit_code == 3 or (summary.stopped_because and summary.exit_code != 130):
        record.state, record.error = "failed", summary.stopped_because
    elif summary.exit_code == 130 or stop.requested:
        record.state = "stopped"
        reason = summary.stopped_because.replace("(finish with --resume)", "").strip(" ;")
        record.error = (
            f"{reason or 'stopped'}; Resume finishes the run without sending any row twice"
        )
    else:
        record.state = "done"


def _public(message: str, stored: Path, name: str) -> str:
    """Name the file as the person uploaded it, not by where the server keeps it."""
    return message.replace(str(stored), name)


def as_public(message: str, stored: Path, name: str) -> str:
    """Name the file as the person uploaded it in a library message."""
    return _public(message, stored, name)


ProgressHook = Callable[[Progress], None]
