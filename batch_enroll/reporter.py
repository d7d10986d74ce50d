"""Write the results sheet and the summary people and schedulers read."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from batch_enroll.advice import advice, explain
from batch_enroll.files import atomic_open, atomic_path
from batch_enroll.model import (
    CHECK_STATUSES,
    EXIT_AUTH,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_ROW_PROBLEMS,
    EXIT_SOFTWARE,
    FAILED,
    INVALID,
    NOT_ATTEMPTED,
    RESOLVED_COLUMNS,
    RESULT_COLUMNS,
    RUN_STATUSES,
    SUCCESS_STATUSES,
    WAITLISTED,
    RowResult,
    carried_name,
)

if TYPE_CHECKING:
    from batch_enroll.journal import RunFiles
    from batch_enroll.pool import PoolEnd
    from batch_enroll.ratelimit import RateLimiter

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "Ending",
    "Source",
    "Summary",
    "neutralise",
    "neutralise_cell",
    "now_iso",
    "render_resolved",
    "render_summary",
    "report_run",
    "report_validation",
    "results_frame",
    "safe_cells",
    "safe_header",
    "write_csv",
    "write_summary_json",
    "write_xlsx",
]

SUMMARY_SCHEMA_VERSION = 2
#: How many row numbers the summary lists per problem.
EXAMPLE_ROWS = 5

# OWASP CSV injection: a spreadsheet runs a cell that starts with one of these.
_FORMULA_STARTS = "=+-@\t\r"
_FORMULA_CODES = np.array([ord(c) for c in _FORMULA_STARTS], dtype=np.uint32)


def neutralise(column: pd.Series[Any]) -> pd.Series[Any]:
    """Prefix a ``'`` to cells a spreadsheet would run as a formula; keep the value."""
    text = column.astype(str)
    # Only the first character matters; numpy compares those in C, where a regex
    # over every cell of a million-row report took seconds.
    first = text.to_numpy(dtype=object).astype("U1").view(np.uint32)
    risky = pd.Series(np.isin(first, _FORMULA_CODES), index=text.index)
    if not risky.any():
        return text
    return text.where(~risky, "'" + text)


def neutralise_cell(text: str) -> str:
    """Prefix a ``'`` to one cell a spreadsheet would run as a formula; keep the value."""
    return "'" + text if text[:1] and text[0] in _FORMULA_STARTS else text


def safe_header(frame: pd.DataFrame) -> list[str]:
    """Return a sheet's column names as they are safe to write: neutralised like any cell."""
    # The header comes from the input sheet too (an extra column named "=Notes"),
    # and a spreadsheet runs it like any other cell.
    return [neutralise_cell(str(column)) for column in frame.columns]


def safe_cells(frame: pd.DataFrame) -> list[list[str]]:
    """Return a sheet's cells as text, column by column, formula cells neutralised."""
    return [
        # The row number is ours and numeric: nothing to neutralise, and it stays a number.
        [str(value) for value in frame[column].tolist()]
        if column == "row"
        else _safe_column(frame[column])
        for column in frame.columns
    ]


def _safe_column(column: pd.Series[Any]) -> list[str]:
    cells: list[str] = column.astype(str).tolist()
    # Most columns of a check's report are empty on every row: nothing to neutralise.
    return neutralise(column).tolist() if any(cells) else cells


def _fill_results(checked: pd.DataFrame, results: Mapping[int, RowResult]) -> pd.DataFrame:
    n = len(checked)
    status = checked["status"].to_numpy(dtype=object, copy=True)
    http_status = [""] * n
    registration = [""] * n
    enrollment = [""] * n
    attempts = [""] * n
    codes = checked["error_code"].to_numpy(dtype=object, copy=True)
    messages = checked["error_message"].to_numpy(dtype=object, copy=True)
    warnings = checked["warnings"].to_numpy(dtype=object, copy=True)
    sendable = ((checked["status"] == "ok") | (checked["status"] == "warning")).to_numpy()
    # The frame's index is the row position. A row with an outcome shows it even if it
    # no longer passes validation: a resumed run keeps what an earlier one did.
    positions = sorted(set(sendable.nonzero()[0].tolist()) | set(results))
    for pos in positions:
        result = results.get(pos)
        if result is None:
            status[pos] = NOT_ATTEMPTED
            continue
        status[pos] = result.status
        http_status[pos] = "" if result.http_status is None else str(result.http_status)
        registration[pos] = result.registration_date
        enrollment[pos] = result.enrollment_id
        attempts[pos] = str(result.attempts) if result.attempts else ""
        codes[pos] = result.error_code
        messages[pos] = result.error_message
        if result.warnings:
            extra = "; ".join(result.warnings)
            warnings[pos] = f"{warnings[pos]}; {extra}" if warnings[pos] else extra
    frame = checked.copy()
    frame["status"] = status
    frame["http_status"] = http_status
    frame["registration_date"] = registration
    frame["enrollment_id"] = enrollment
    frame["attempts"] = attempts
    frame["error_code"] = codes
    frame["error_message"] = messages
    frame["warnings"] = warnings
    return frame


def results_frame(
    checked: pd.DataFrame,
    *,
    extra_columns: Sequence[str],
    results: Mapping[int, RowResult] | None = None,
) -> pd.DataFrame:
    """Lay out one output row per input row, in input order.

    Without ``results`` this is the validate report (ok, warning, invalid,
    duplicate); with them, rows that were to be sent take their outcome, and
    those that have none are ``not_attempted``. ``course_id`` is the course cell
    normalised (a GUID in lower case, ``101.0`` as ``101``); ``course_session_ids``
    holds the session GUIDs sent. After the input's own columns come
    ``resolved_login_name`` (with --resolve-users) and what each row became in
    LMS365: ``lms_course_id``, ``course_title``, ``session_titles``.
    """
    frame = checked if results is None else _fill_results(checked, results)
    out = pd.DataFrame(index=frame.index)
    out["row"] = frame["row"].astype("int64")
    out["course_id"] = (
        frame["_course_key"] if "_course_key" in frame.columns else frame["course_id"]
    )
    out["user_login_name"] = frame["user_login_name"]
    normalised = frame["_sessions"].astype(str)
    out["course_session_ids"] = normalised.where(normalised != "", frame["course_session_ids"])
    out["status"] = frame["status"]
    for column in RESULT_COLUMNS[5:]:
        out[column] = frame[column] if column in frame.columns else ""
    for column in extra_columns:
        # check_offline moved an input column that shares a name with ours aside.
        name = carried_name(column)
        out[name] = frame[name]
    if "resolved_login_name" in frame.columns:
        out["resolved_login_name"] = frame["resolved_login_name"]
    for column in RESOLVED_COLUMNS:
        if column in frame.columns:
            out[column] = frame[column]
        elif column == "lms_course_id" and "_course" in frame.columns:
            out[column] = frame["_course"]
        else:
            out[column] = ""
    return out.reset_index(drop=True)


#: Rows joined per write, bounding the memory a million-row sheet's text takes.
_WRITE_CHUNK = 65536
#: Characters that make csv.writer (QUOTE_MINIMAL, comma, CRLF) quote a cell.
_QUOTE_TRIGGERS = (",", '"', "\r", "\n")


_CONTAINS = np.frompyfunc(str.__contains__, 2, 1)
_REPLACE = np.frompyfunc(str.replace, 3, 1)


def _csv_cells(cells: list[str]) -> list[str]:
    """Return a column's cells as csv.writer writes them: quoted only where they must be."""
    # One scan of the whole column in C settles the usual case: nothing to quote.
    joined = "".join(cells)
    if not any(trigger in joined for trigger in _QUOTE_TRIGGERS):
        return cells
    # Else find the cells to quote with a ufunc per trigger and quote those alone: a
    # column of sessions cells like "Morning, Oslo" may hold a million of them.
    column = np.array(cells, dtype=object)
    quoted = np.zeros(len(cells), dtype=np.bool_)
    for trigger in _QUOTE_TRIGGERS:
        if trigger in joined:
            quoted |= np.asarray(_CONTAINS(column, trigger), dtype=np.bool_)
    picked = column[quoted]
    column[quoted] = '"' + _REPLACE(picked, '"', '""') + '"'
    result: list[str] = column.tolist()
    return result


def _merge_empty(columns: list[list[str]]) -> list[list[str]]:
    """Write each stretch of columns empty on every row as one column of its commas.

    A check's report leaves most outcome columns empty; joining fewer cells per
    row writes the same bytes in less time.
    """
    merged: list[list[str]] = []
    empty = 0
    for column in [*columns, None]:
        if column is not None and not any(column):
            empty += 1
            continue
        if empty:
            rows = len(columns[0])
            merged.append(["," * (empty - 1)] * rows if empty > 1 else [""] * rows)
            empty = 0
        if column is not None:
            merged.append(column)
    return merged


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a results or report sheet atomically, neutralising formula cells."""
    names = safe_header(frame)
    cells = safe_cells(frame)
    with atomic_open(path, newline="") as handle:
        if len(cells) < 2:
            # csv.writer quotes a lone empty cell so the line is not blank.
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow(names)
            writer.writerows(zip(*cells, strict=True))
            return
        # The bytes csv.writer (what DataFrame.to_csv uses) would write, joined in C a
        # chunk at a time: per-cell writing took over a second a million rows.
        columns = _merge_empty([_csv_cells(column) for column in cells])
        handle.write(",".join(_csv_cells(names)) + "\r\n")
        for start in range(0, len(frame), _WRITE_CHUNK):
            chunk = (column[start : start + _WRITE_CHUNK] for column in columns)
            rows = zip(*chunk, strict=True)
            handle.write("\r\n".join(map(",".join, rows)) + "\r\n")


@dataclass
class Problem:
    """One kind of problem: how many rows, a few of them, and what to do."""

    count: int
    rows: list[int]
    meaning: str
    advice: str


@dataclass
class Summary:
    """The outcome of a run or a validation, as people and schedulers read it."""

    command: str
    input: str
    input_sha256: str
    output: str
    rows: int
    counts: dict[str, int]
    errors: dict[str, Problem]
    by_error_code: dict[str, int]
    by_course: dict[str, dict[str, Any]]
    started_at: str
    finished_at: str
    elapsed_seconds: float
    exit_code: int
    requests: int = 0
    throttled: int = 0
    rate_found: float | None = None
    enrollments_per_second: float = 0.0
    #: Seconds from the first enroll request to the last answer.
    sending_seconds: float = 0.0
    stopped_because: str = ""
    schema_version: int = SUMMARY_SCHEMA_VERSION
    journal: str = ""
    warnings: int = 0
    notes: list[str] = field(default_factory=list)
    #: The results (or validate report) frame as written, before formula cells are
    #: neutralised; for library callers, not part of the JSON.
    results: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Return the documented, versioned JSON form."""
        data = asdict(replace(self, results=None))
        del data["results"]
        return data


def summarise(
    frame: pd.DataFrame,
    *,
    command: str,
    input_path: str,
    input_sha256: str,
    output: str,
    started_at: str,
    finished_at: str,
    elapsed: float,
    exit_code: int,
) -> Summary:
    """Count a results or report frame by status, error code and course."""
    statuses = CHECK_STATUSES if command == "validate" else RUN_STATUSES
    counted = Counter({str(s): int(n) for s, n in frame["status"].value_counts().items()})
    counts = {status: counted.get(status, 0) for status in statuses}
    problems: dict[str, Problem] = {}
    # Duplicates, already-enrolled and not-enrolled rows carry a code but need no action.
    failing = frame[(frame["error_code"] != "") & ~frame["status"].isin(SUCCESS_STATUSES)]
    if not failing.empty:
        for code, group in failing.groupby("error_code", sort=False):
            code = str(code)
            sample = group["error_message"].iloc[0]
            problems[code] = Problem(
                count=len(group),
                rows=[int(r) for r in group["row"].head(EXAMPLE_ROWS)],
                meaning=explain(code) or str(sample),
                advice=advice(code),
            )
    by_course = _by_course(frame)
    done = sum(counted.get(s, 0) for s in ("enrolled", "waitlisted", "unenrolled"))
    notes: list[str] = []
    waitlisted = counted.get(WAITLISTED, 0)
    if waitlisted:
        who = "1 row is" if waitlisted == 1 else f"{waitlisted} rows are"
        notes.append(
            f"Waitlisted: {who} on the waiting list of a full session; LMS365 moves each"
            " person into the session when a seat frees up (this counts as a success)."
        )
    return Summary(
        command=command,
        input=input_path,
        input_sha256=input_sha256,
        output=output,
        rows=len(frame),
        counts=counts,
        errors=dict(sorted(problems.items(), key=lambda item: -item[1].count)),
        by_error_code={
            str(code): int(n)
            for code, n in frame.loc[frame["error_code"] != "", "error_code"].value_counts().items()
        },
        by_course=by_course,
        started_at=started_at,
        finished_at=finished_at,
        elapsed_seconds=round(elapsed, 3),
        exit_code=exit_code,
        enrollments_per_second=round(done / elapsed, 1) if elapsed > 0 else 0.0,
        warnings=int((frame["warnings"] != "").sum()),
        notes=notes,
    )


def _by_course(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Count rows per course: keyed by the GUID a row resolved to, else by its cell."""
    by_course: dict[str, dict[str, Any]] = {}
    if not len(frame):
        return by_course
    cells = frame["course_id"].astype(str)
    titles = frame["course_title"].astype(str) if "course_title" in frame.columns else None
    # A number per course, spelling and status, then counts of numbers in C: a
    # million rows name a handful of each, and grouping their text cost more.
    cell, spellings = pd.factorize(cells)
    course, courses = cell, spellings
    if "lms_course_id" in frame.columns:
        resolved = frame["lms_course_id"].astype(str)
        found = resolved != ""
        # Where no row resolved (an offline check) the courses are the cells as numbered.
        if found.any():
            course, courses = pd.factorize(resolved.where(found, cells))
    status, statuses = pd.factorize(frame["status"].astype(str))
    tally = np.bincount(course * len(statuses) + status, minlength=len(courses) * len(statuses))
    per_row = course.astype(np.int64) * len(spellings) + cell
    # Counting beats sorting a million numbers when the pairs possible are few.
    few = len(courses) * len(spellings) <= 4 * len(per_row)
    pairs = np.flatnonzero(np.bincount(per_row)) if few else np.unique(per_row)
    written: dict[int, list[str]] = {}
    for pair in pairs.tolist():
        written.setdefault(pair // len(spellings), []).append(str(spellings[pair % len(spellings)]))
    named: dict[int, str] = {}
    if titles is not None:
        titled = np.flatnonzero(titles.to_numpy(dtype=object) != "")
        # The first titled row of each course: its title is the course's.
        numbers, where = np.unique(course[titled], return_index=True)
        named = {
            int(n): str(titles.iloc[int(titled[w])])
            for n, w in zip(numbers.tolist(), where.tolist(), strict=True)
        }
    for number in sorted(range(len(courses)), key=lambda n: str(courses[n])):
        counts = pd.Series(
            tally[number * len(statuses) : (number + 1) * len(statuses)], index=statuses
        )
        counts = counts[counts > 0].sort_values(ascending=False, kind="stable")
        by_course[str(courses[number])] = {
            "title": named.get(number, ""),
            "written_as": sorted(written[number])[:EXAMPLE_ROWS],
            "counts": {str(s): int(n) for s, n in counts.items()},
        }
    return by_course


def now_iso() -> str:
    """Return the current UTC time as the summary writes it (ISO 8601, milliseconds, Z)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Source:
    """The sheet a report speaks of, and when the work on it began."""

    path: str
    sha256: str
    #: What the loader has to say about the sheet; the summary's notes start with these.
    notes: Sequence[str]
    #: The sheet's own columns, carried into the results after the result columns.
    extra_columns: Sequence[str]
    started_at: str
    started: float


@dataclass(frozen=True)
class Ending:
    """How the work ended: the pool's word for it, and the summary's."""

    end: PoolEnd
    stopped_because: str = ""
    sending_seconds: float = 0.0


#: The exit code of a run or validation that ended before its rows could speak for it.
_EXIT_FOR_END = {
    "auth": EXIT_AUTH,
    "interrupted": EXIT_INTERRUPTED,
    "crashed": EXIT_SOFTWARE,
    # Stopped before sending (a refused resume, say): never a clean exit.
    "failed": EXIT_ROW_PROBLEMS,
}


def _summary(
    frame: pd.DataFrame,
    *,
    command: str,
    source: Source,
    output: str,
    ending: Ending | None,
    verdict: int,
) -> Summary:
    """Sum up ``frame``; ``verdict`` is the exit code its rows give when the work was done."""
    ended = ending.end.value if ending is not None else "done"
    summary = summarise(
        frame,
        command=command,
        input_path=source.path,
        input_sha256=source.sha256,
        output=output,
        started_at=source.started_at,
        finished_at=now_iso(),
        elapsed=time.monotonic() - source.started,
        exit_code=_EXIT_FOR_END.get(ended, verdict),
    )
    summary.notes[:0] = source.notes
    summary.stopped_because = ending.stopped_because if ending is not None else ""
    summary.results = frame
    return summary


def report_run(
    checked: pd.DataFrame,
    source: Source,
    files: RunFiles,
    *,
    results: Mapping[int, RowResult],
    ending: Ending,
    limiter: RateLimiter,
) -> Summary:
    """Write a run's results sheet, then its summary JSON (when asked for); return the summary."""
    frame = results_frame(checked, extra_columns=source.extra_columns, results=results)
    # First: whatever goes wrong after, every row's outcome is on disk.
    write_csv(frame, files.results)
    counts = frame["status"].value_counts().to_dict()
    verdict = exit_code_for({str(k): int(v) for k, v in counts.items()})
    summary = _summary(
        frame,
        command="run",
        source=source,
        output=str(files.results),
        ending=ending,
        verdict=verdict,
    )
    summary.requests = limiter.requests
    summary.throttled = limiter.throttled
    # The ceiling found, not the rate last probed above it.
    summary.rate_found = round(limiter.found, 1) if limiter.adaptive else None
    summary.sending_seconds = round(ending.sending_seconds, 3)
    summary.journal = str(files.journal)
    if files.summary_json is not None:
        write_summary_json(summary, files.summary_json)
    return summary


def report_validation(
    checked: pd.DataFrame,
    source: Source,
    *,
    ending: Ending | None,
    report: str | Path | None,
    summary_json: str | Path | None,
) -> Summary:
    """Write a validation's report and summary JSON (those asked for); return the summary.

    ``ending`` None means LMS365 was not asked: the check was offline.
    """
    frame = results_frame(checked, extra_columns=source.extra_columns)
    if report is not None:
        write_csv(frame, Path(report))
    output = str(report) if report is not None else "(no report written)"
    verdict = 1 if (frame["status"] == INVALID).any() else 0
    summary = _summary(
        frame, command="validate", source=source, output=output, ending=ending, verdict=verdict
    )
    if ending is None:
        summary.notes.append(
            "Offline check only: finding the courses and sessions the sheet names, and their"
            " rules, need --base-url and --api-key."
        )
    if summary_json is not None:
        write_summary_json(summary, Path(summary_json))
    return summary


def exit_code_for(counts: Mapping[str, int]) -> int:
    """Return 0 when every row ended well, 1 when some are invalid, failed or unsent."""
    bad = sum(n for status, n in counts.items() if status not in SUCCESS_STATUSES)
    return EXIT_OK if bad == 0 else EXIT_ROW_PROBLEMS


def render_summary(summary: Summary) -> str:
    """Render the summary for a terminal."""
    lines: list[str] = []
    verb = "Checked" if summary.command == "validate" else "Processed"
    lines.append(
        f"{verb} {summary.rows} rows from {summary.input} in {summary.elapsed_seconds:.1f} s"
    )
    width = max((len(s) for s in summary.counts), default=0)
    for status, count in summary.counts.items():
        if count or status in ("enrolled", "ok", INVALID, FAILED):
            lines.append(f"  {status:<{width}}  {count}")
    if summary.command != "validate":
        lines.append(
            f"  {summary.enrollments_per_second} enrollments/s, {summary.requests} requests,"
            f" {summary.throttled} throttled (429)"
            + (f", rate settled at {summary.rate_found:.0f}/s" if summary.rate_found else "")
        )
    if summary.errors:
        lines.append("Problems:")
        for code, problem in summary.errors.items():
            rows = ", ".join(str(r) for r in problem.rows)
            more = " ..." if problem.count > len(problem.rows) else ""
            lines.append(f"  {code} x{problem.count} (rows {rows}{more}): {problem.meaning}")
            if problem.advice:
                lines.append(f"      what to do: {problem.advice}")
    if summary.warnings:
        rows = "1 row carries" if summary.warnings == 1 else f"{summary.warnings} rows carry"
        lines.append(f"  {rows} warnings (see the warnings column)")
    lines.extend(summary.notes)
    if summary.stopped_because:
        lines.append(f"Stopped: {summary.stopped_because}")
    lines.append(f"Results: {summary.output}")
    return "\n".join(lines)


def render_resolved(results: Path, *, courses: int = 5, sessions: int = 5) -> str:
    """Show how a few of a results sheet's course and session names resolved.

    Up to ``courses`` distinct course cells written as a code or title, then up to
    ``sessions`` distinct bookings of named sessions, each with what it became.
    """
    by_course: dict[str, str] = {}
    by_session: dict[tuple[str, str], str] = {}
    with Path(results).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            course, guid = row.get("course_id", ""), row.get("lms_course_id", "")
            title, booked = row.get("course_title", ""), row.get("session_titles", "")
            if not title or not guid:
                continue  # not resolved
            became = f"{title} ({guid})"
            if booked and len(by_session) < sessions:
                by_session.setdefault((course, booked), f"{became}, session {booked}")
            elif course != guid and len(by_course) < courses:
                by_course.setdefault(course, became)
    lines = [f'  "{cell}" -> {became}' for cell, became in by_course.items()]
    lines += [f'  "{cell}" -> {became}' for (cell, _), became in by_session.items()]
    if not lines:
        return ""
    return "\n".join(["How some of the sheet's course and session names resolved:", *lines])


def write_summary_json(summary: Summary, path: Path) -> None:
    """Write the summary JSON for schedulers, atomically: a reader never sees half of it."""
    with atomic_open(path) as handle:
        handle.write(json.dumps(summary.to_json(), indent=2) + "\n")


#: Fill colours of the status cells in the .xlsx results: green done, amber look, red act.
STATUS_FILLS: dict[str, str] = {
    "enrolled": "C6EFCE",
    "unenrolled": "C6EFCE",
    "already_enrolled": "DDEBF7",
    "skipped_enrolled": "DDEBF7",
    "waitlisted": "DDEBF7",
    "ok": "C6EFCE",
    "warning": "FFEB9C",
    "duplicate": "FFEB9C",
    "not_attempted": "FFEB9C",
    "invalid": "FFC7CE",
    "failed": "FFC7CE",
}


def write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """Write a results or report sheet as .xlsx: header frozen, autofilter, status coloured.

    Cells and header are neutralised as in the CSV, and every cell but the row
    number is written as text, so no cell of the input ever becomes a formula.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Results")
    columns = [str(c) for c in frame.columns]
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(len(columns), 1))}{len(frame) + 1}"
    cells = safe_cells(frame.astype(object).where(frame.notna(), ""))
    for i, (name, column) in enumerate(zip(columns, cells, strict=True), start=1):
        # Wide enough for the header and the first thousand cells, within reason.
        longest = max((len(v) for v in column[:1000]), default=0)
        sheet.column_dimensions[get_column_letter(i)].width = min(
            max(len(name), longest, 6) + 2, 60
        )
    bold = Font(bold=True)
    header = []
    for name in safe_header(frame):
        cell = WriteOnlyCell(sheet, value=name)
        cell.data_type = "s"  # a header cell is the input's own text too
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    fills = {s: PatternFill("solid", start_color=c, end_color=c) for s, c in STATUS_FILLS.items()}
    status_at = columns.index("status") if "status" in columns else -1
    row_at = columns.index("row") if "row" in columns else -1
    for values in zip(*cells, strict=True):
        out: list[Any] = []
        for i, value in enumerate(values):
            if i == row_at:
                out.append(int(value))
                continue
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"  # text, never a formula
            if i == status_at and value in fills:
                cell.fill = fills[value]
            out.append(cell)
        sheet.append(out)
    # Beside the target and renamed into place, so a crash never leaves half a workbook.
    with atomic_path(path) as tmp:
        book.save(tmp)
