"""Load an enrollment sheet (CSV, TSV, .xlsx, .xls or .ods) into a trimmed, all-text DataFrame.

The loader's job is to turn whatever a person saved from Excel, Google Sheets or a
script into one predictable shape, or to explain in one line why it cannot. It
finds the table itself: the sheet of a workbook that holds one, and the header row
under any title or note rows. It does not judge cell values: a later validator does
that, using the row numbers and the header texts kept here so its messages match
what the user sees.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import stat
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from batch_enroll.errors import LoadError
from batch_enroll.model import DEFAULT_MAX_INPUT_MB

if TYPE_CHECKING:
    from batch_enroll.workbook import Book

__all__ = [
    "DEFAULT_MAX_INPUT_MB",
    "HEADER_SEARCH_ROWS",
    "OPTIONAL",
    "RAGGED_COLUMN",
    "REQUIRED",
    "LoadError",
    "Sheet",
    "load_sheet",
]

REQUIRED = ("course_id", "user_login_name")
OPTIONAL = (
    "course_session_ids",
    "action",
    "message",
    "ignore_max_attendees",
    "ignore_enrollment_flow",
)

#: The header is looked for in this many non-empty rows at the top of a sheet.
HEADER_SEARCH_ROWS = 20
#: Frame column holding, for a row with more cells than the header, why it is invalid.
RAGGED_COLUMN = "_ragged"
#: The longest one-line error the loader raises.
MAX_MESSAGE = 200

# Accepted header spellings per canonical column, compared after _header_key().
_ALIASES: Mapping[str, tuple[str, ...]] = {
    "course_id": ("course_id", "courseid", "course"),
    "user_login_name": (
        "user_login_name",
        "userloginname",
        "login_name",
        "login",
        "user",
        "email",
        "e-mail",
        "upn",
    ),
    "course_session_ids": (
        "course_session_ids",
        "course_session_id",
        "session_ids",
        "session_id",
        "sessions",
        "session",
    ),
    "action": ("action", "operation"),
    "message": ("message", "unenroll_message"),
    "ignore_max_attendees": ("ignore_max_attendees",),
    "ignore_enrollment_flow": ("ignore_enrollment_flow",),
}

_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}

# Everything str.isspace() accepts (spelled out: computing it costs 50 ms at
# import), plus the zero-width space and a stray BOM: both are invisible in
# Excel, arrive via copy-paste, and would make a login name silently fail to match.
_TRIM = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u200b\ufeff"
)

_STRIP = np.frompyfunc(str.strip, 1, 1)
_STRIP_CHARS = np.frompyfunc(str.strip, 2, 1)

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Bytes that never occur in text (tab, LF, VT, FF and CR are allowed).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20), 0x7F])
_SNIFF_BYTES = 1 << 16
_TRIM_SCAN_BLOCK = 1 << 20

# A well-formed UTF-8 multibyte sequence; finding one in a file that is not valid
# UTF-8 means two encodings were pasted together.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# Lines holding nothing but white space and delimiters before the header. They are
# skipped before parsing because pandas takes the column count from the first line.
_LEADING_BLANK_LINES = re.compile(rb"(?:(?:[ \t\x0b\x0c,;|]|\xc2\xa0)*(?:\r\n|\r|\n))*")
# Searching for the first meaningful byte stops early, unlike bytes.strip() which
# copies the whole file.
_NOT_SPACE = re.compile(rb"[^\s]")
_NOT_BLANK = re.compile(rb"[^\s,;|]")
_QUOTED = re.compile(r'"[^"]*"')
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_TOO_MANY_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_EOF_IN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_HEADER_JUNK = re.compile(r"[\s_\-]+")
# Line breaks, NBSP and runs of white space inside a header cell read as one space.
_HEADER_SPACE = re.compile(r"[\s\u200b\ufeff]+")

_ASCII_SPACE = b" \t\x0b\x0c\x1c\x1d\x1e\x1f"

# Widths of the ragged-row fallback tried before giving up.
_RAGGED_RETRIES = 8


@dataclass(frozen=True)
class Sheet:
    """A loaded sheet: every cell a trimmed ``str``, plus what is needed to explain it.

    ``frame`` has a RangeIndex and the columns ``row`` (int64 spreadsheet row number),
    the canonical columns present (``course_session_ids`` always, "" when absent),
    then ``extra_columns``, and ``RAGGED_COLUMN`` when some row had more cells than
    the header. ``header_map`` maps each canonical column found in the input to its
    header text (white space runs read as one space).

    The rest says what was read: ``sheet_name`` ("" for a CSV file), ``header_row``
    (1 when the table starts at the top), ``skipped_rows`` (non-empty rows above the
    header), ``sheet_names`` and ``hidden_sheets`` of the workbook, ``other_sheets``
    (visible sheets that also hold a header), ``passed_over`` (sheets read past because
    they hold none) and ``notes``, one line each for the summary.
    """

    path: Path
    frame: pd.DataFrame
    extra_columns: tuple[str, ...]
    sha256: str
    header_map: Mapping[str, str]
    sheet_name: str = ""
    header_row: int = 1
    skipped_rows: tuple[int, ...] = ()
    sheet_names: tuple[str, ...] = ()
    hidden_sheets: tuple[str, ...] = ()
    other_sheets: tuple[str, ...] = ()
    passed_over: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Table:
    """A table found in the input, before its columns are mapped."""

    header: list[str]
    body: pd.DataFrame
    rows: npt.NDArray[np.int64]
    header_row: int
    skipped: tuple[int, ...]
    #: Body position -> why that row is invalid (more cells than the header).
    ragged: dict[int, str] = field(default_factory=dict)


def load_sheet(
    path: str | os.PathLike[str],
    *,
    sheet: str | None = None,
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
) -> Sheet:
    """Read ``path`` as CSV/TSV or a workbook, judged by content, and return a Sheet.

    ``sheet`` names a workbook's sheet, or gives its 1-based number; without it the
    first visible sheet holding a header is read. A file over ``max_input_mb`` MiB
    is refused before it is read. Raise LoadError, with a one-line message of at
    most 200 characters that starts with the path as given, for anything that
    cannot be read as a table with the required columns.
    """
    name = _display_name(os.fspath(path))
    try:
        return _load(Path(path), name, sheet=sheet, max_input_mb=max_input_mb)
    except LoadError as exc:
        # Every message is built to fit; this only guards against a very long path.
        raise LoadError(_truncate(str(exc), MAX_MESSAGE)) from None


def _load(source: Path, name: str, *, sheet: str | None, max_input_mb: float) -> Sheet:
    """Do load_sheet's work; messages may still need a final cut."""
    data, before = _read_file(source, name, max_input_mb=max_input_mb)
    digest = hashlib.sha256(data).hexdigest()

    book: Book | None = None
    if data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC, _OLE2_MAGIC)):
        from batch_enroll.workbook import read_workbook  # only workbooks pay for it

        book = read_workbook(name, data, wanted=sheet)
        table = book.table
    else:
        if sheet is not None and sheet.strip() != "1":
            raise LoadError(
                f"{name}: --sheet {_quote(sheet)} names a sheet, but this is a CSV file, "
                "which has only one; leave --sheet out"
            )
        payload, verbatim = _to_utf8(name, data)
        # pandas parses a file *path* with several threads, and a buffer with
        # one; so let it re-read a regular file whose bytes need no transcoding,
        # and check afterwards that what it read is what was hashed.
        reread = source if verbatim and stat.S_ISREG(before.st_mode) else None
        table = _read_csv(name, payload, reread=reread)
        if reread is not None and _changed(source, before):
            raise LoadError(f"{name}: the file changed while it was being read; try again")

    frame, extras, header_map = _assemble(name, table)
    return Sheet(
        path=source,
        frame=frame,
        extra_columns=extras,
        sha256=digest,
        header_map=MappingProxyType(header_map),
        sheet_name=book.sheet_name if book else "",
        header_row=table.header_row,
        skipped_rows=table.skipped,
        sheet_names=book.sheet_names if book else (),
        hidden_sheets=book.hidden if book else (),
        other_sheets=book.others if book else (),
        passed_over=book.passed_over if book else (),
        notes=_notes(table, book),
    )


def _notes(table: _Table, book: Book | None) -> tuple[str, ...]:
    """Say in a line or two which sheet and header row were read, when it is not obvious."""
    notes: list[str] = []
    where = ""
    if table.header_row > 1:
        above = "row 1" if table.header_row == 2 else f"rows 1-{table.header_row - 1}"
        where = f"header on row {table.header_row}; {above} skipped"
    if book is not None:
        read = f"Read sheet {_quote(book.sheet_name)}"
        if len(book.sheet_names) > 1:
            number = book.sheet_names.index(book.sheet_name) + 1
            hidden = ", hidden" if book.sheet_name in book.hidden else ""
            read += f" ({number} of {len(book.sheet_names)}{hidden})"
        notes.append(f"{read}; {where}" if where else read)
        if book.passed_over:
            notes.append(
                f"Passed over {_names(book.passed_over, 'sheet', 'sheets')}: no header in "
                f"the first {HEADER_SEARCH_ROWS} rows"
            )
        if book.others:
            verb = "holds" if len(book.others) == 1 else "hold"
            notes.append(
                f"{_names(book.others, 'Sheet', 'Sheets')} also {verb} a header; "
                "read another with --sheet NAME or --sheet N"
            )
    elif where:
        notes.append(where[0].upper() + where[1:])
    return tuple(notes)


def _names(names: Sequence[str], one: str, many: str) -> str:
    """Render ``names`` as 'sheet "A"' or 'sheets "A", "B" and "C"', cut after five."""
    quoted = [_quote(n, width=40) for n in names[:5]]
    if len(names) > 5:
        quoted.append(f"{len(names) - 5} more")
    if len(quoted) == 1:
        return f"{one} {quoted[0]}"
    return f"{many} {', '.join(quoted[:-1])} and {quoted[-1]}"


# --------------------------------------------------------------------------- file


def _read_file(source: Path, name: str, *, max_input_mb: float) -> tuple[bytes, os.stat_result]:
    """Return the bytes of regular file ``source`` (at most ``max_input_mb`` MiB) and its stat."""
    limit = int(max_input_mb * (1 << 20))
    try:
        # stat() follows symlinks: a link to a regular file is fine, one to a device is not.
        info = source.stat()
    except OSError as exc:
        raise LoadError(f"{name}: cannot read the file: {exc.strerror or exc}") from None
    _require_regular(name, info)
    if info.st_size > limit:
        raise LoadError(_too_big(name, info.st_size, max_input_mb))
    try:
        with source.open("rb") as handle:
            before = os.fstat(handle.fileno())
            _require_regular(name, before)  # replaced since the stat() above
            # One byte more than allowed tells a file that grew since it was measured.
            data = handle.read(limit + 1)
    except OSError as exc:
        raise LoadError(f"{name}: cannot read the file: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise LoadError(_too_big(name, len(data), max_input_mb))
    return data, before


def _require_regular(name: str, info: os.stat_result) -> None:
    """Refuse anything but a regular file: a pipe or a device may never end."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a file"
    raise LoadError(
        f"{name}: this is {kind}, not a regular file; save the sheet as a file and give its path"
    )


def _size(size: int) -> str:
    """Render a byte count for a message: 3.2 GB, 1.2 MB or 812 bytes."""
    if size >= 1 << 30:
        return f"{size / (1 << 30):,.1f} GB"
    if size >= (1 << 20) // 10:
        return f"{size / (1 << 20):,.1f} MB"
    return f"{size:,} bytes"


def _too_big(name: str, size: int, max_input_mb: float) -> str:
    return (
        f"{name}: the file is {_size(size)}, more than --max-input-mb {max_input_mb:g} allows;"
        " raise it if the file is right"
    )


# --------------------------------------------------------------------------- text


def _changed(source: Path, before: os.stat_result) -> bool:
    """Tell whether ``source`` was replaced or modified since ``before`` was taken."""
    try:
        after = source.stat()
    except OSError:
        return True
    return (after.st_ino, after.st_size, after.st_mtime_ns) != (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def _to_utf8(name: str, data: bytes) -> tuple[bytes, bool]:
    """Return the text of ``data`` as UTF-8 without a BOM, or raise LoadError.

    The flag tells whether that text is ``data`` itself, less any UTF-8 BOM.
    """
    if not _NOT_SPACE.search(data):
        raise LoadError(f"{name}: the file is empty")

    utf16 = _utf16_codec(data)
    if utf16 is not None:
        try:
            text = data.decode(utf16)
        except UnicodeDecodeError as exc:
            raise LoadError(
                f"{name}: the file looks like UTF-16 text but byte offset {exc.start} "
                "is not valid UTF-16; save it as CSV UTF-8"
            ) from None
        text = text.removeprefix("\ufeff")
        if "\x00" in text:
            raise LoadError(f"{name}: does not look like a CSV or Excel file (NUL characters)")
        payload, verbatim = text.encode("utf-8"), False
    else:
        payload, verbatim = data.removeprefix(codecs.BOM_UTF8), True
        _reject_binary(name, payload)
        if not payload.isascii():
            text, verbatim = _decode_8bit(name, payload, offset=len(data) - len(payload))
            if not verbatim:
                payload = text.encode("utf-8")

    if not _NOT_SPACE.search(payload):
        raise LoadError(f"{name}: the file is empty")
    return payload, verbatim


def _utf16_codec(data: bytes) -> str | None:
    """Name the UTF-16/32 codec ``data`` is in, by BOM or by its NUL pattern."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # Without a BOM, mostly-ASCII UTF-16 has a NUL in every other byte; binary
    # junk does not, so this cannot mistake a PDF or an image for text.
    sample = data[:4096]
    if len(sample) >= 4 and len(sample) % 2 == 0:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) == len(odd) and even.count(0) == 0:
            return "utf-16-le"
        if even.count(0) == len(even) and odd.count(0) == 0:
            return "utf-16-be"
    return None


def _reject_binary(name: str, data: bytes) -> None:
    """Raise LoadError if ``data`` holds NUL bytes or is dense with control bytes."""
    if b"\x00" in data:
        raise LoadError(f"{name}: does not look like a CSV or Excel file (it contains NUL bytes)")
    sample = data[:_SNIFF_BYTES]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    # A stray control character (a DOS end-of-file mark, say) is tolerable; text
    # that is more than 2% control bytes is not text.
    if controls > 2 and controls * 50 > len(sample):
        raise LoadError(f"{name}: does not look like a CSV or Excel file (binary content)")


def _decode_8bit(name: str, data: bytes, *, offset: int) -> tuple[str, bool]:
    """Decode non-ASCII ``data`` as UTF-8, else Windows-1252, or raise LoadError.

    The flag tells whether the text was UTF-8. ``offset`` is where ``data`` starts
    in the file, for messages.
    """
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError as exc:
        where = _where(data, exc.start, offset=offset)
    if _UTF8_MULTIBYTE.search(data):
        raise LoadError(
            f"{name}: mixed text encodings: {where} is not UTF-8 although other text in "
            "the file is; save the file as CSV UTF-8"
        )
    try:
        return data.decode("cp1252"), False
    except UnicodeDecodeError as exc:
        where = _where(data, exc.start, offset=offset)
    raise LoadError(
        f"{name}: unknown text encoding: {where} is neither UTF-8 nor Windows-1252; "
        "save the file as CSV UTF-8"
    )


def _where(data: bytes, position: int, *, offset: int) -> str:
    """Describe ``data[position]`` for a message: its value, file offset and line."""
    line = _count_line_breaks(data[:position]) + 1
    return f"byte 0x{data[position]:02X} at offset {position + offset} (line {line})"


# --------------------------------------------------------------------------- CSV


def _read_csv(name: str, payload: bytes, *, reread: Path | None) -> _Table:
    """Find the header in UTF-8 ``payload`` and parse from it in one C-engine pass.

    ``reread`` names a file whose bytes are ``payload`` (maybe plus a UTF-8 BOM),
    for pandas to parse in its place.
    """
    lead = _LEADING_BLANK_LINES.match(payload)
    start = lead.end() if lead else 0
    if not _NOT_BLANK.search(payload, start):
        raise LoadError(f"{name}: the file is empty")
    head = payload[start : start + _SNIFF_BYTES].decode("utf-8", errors="ignore")
    delimiter, found = _locate_csv_header(name, payload, start, head)
    header_row, offset, header_cells = found.header
    leading_records = header_row - 1

    source: Path | io.BytesIO
    if offset:
        # pandas takes the column count from the first line: start at the header.
        payload = payload[offset:]
        source = io.BytesIO(payload)
    else:
        source = reread if reread is not None else io.BytesIO(payload)

    raw = _parse_csv(name, source, payload, delimiter, leading_records)
    if _needs_trim(payload, delimiter):
        # One ufunc over the whole block: a third of the cost of Series.str.strip
        # per column, and far cheaper still on very wide sheets. A bare strip()
        # removes exactly the str.isspace() characters, faster than strip(_TRIM).
        cells = raw.to_numpy(dtype=object)
        invisible = b"\xe2\x80\x8b" in payload or codecs.BOM_UTF8 in payload
        stripped = _STRIP_CHARS(cells, _TRIM) if invisible else _STRIP(cells)
        raw = pd.DataFrame(stripped, columns=raw.columns, dtype=str)

    # The header is as wide as the scan counted it; pandas reads wider only when a
    # longer row made it retry at that row's width.
    width = max(len(header_cells), 1)
    blank = _blank_rows(raw)
    blank[0] = False
    keep = ~blank
    keep[0] = False
    positions = np.flatnonzero(keep)
    ragged: dict[int, str] = {}
    if raw.shape[1] > width:
        ragged = _ragged_rows(raw, positions, width, header_row, delimiter)
        raw = raw.iloc[:, :width]
    header = [str(cell) for cell in raw.iloc[0]]
    # Without blank rows a slice avoids copying every column.
    no_gaps = len(positions) == len(raw) - 1
    body = (raw.iloc[1:] if no_gaps else raw.iloc[positions]).reset_index(drop=True)
    rows = (positions + header_row).astype(np.int64)
    return _Table(header, body, rows, header_row, found.skipped, ragged)


@dataclass(frozen=True)
class _Found:
    """Where the header is: (row number, byte offset, cells), and the rows above it."""

    header: tuple[int, int, list[str]]
    skipped: tuple[int, ...]


def _locate_csv_header(name: str, payload: bytes, start: int, head: str) -> tuple[str, _Found]:
    """Return the delimiter under which a header row is found first, and where it is."""
    sniffed = _sniff_delimiter(head)
    candidates = [sniffed, *(d for d in _CANDIDATE_DELIMITERS if d != sniffed and d in head)]
    leading = _count_line_breaks(payload[:start])
    best: tuple[str, _Found] | None = None
    looked: list[tuple[int, list[str]]] = []
    for delimiter in candidates:
        records = _scan_records(payload, start, delimiter, first=leading + 1)
        if delimiter == sniffed:
            looked = [(number, cells) for number, _, cells in records]
        at = next((i for i, (_, _, cells) in enumerate(records) if _names_header(cells)), None)
        if at is None:
            continue
        found = _Found(records[at], tuple(number for number, _, _ in records[:at]))
        if best is None or found.header[0] < best[1].header[0]:
            best = (delimiter, found)
    if best is None:
        # A quote left open swallows the rest of the file into one cell: say so.
        try:
            _pandas_csv(io.BytesIO(payload[start:]), sniffed, None)
        except ValueError as exc:
            if "EOF" in str(exc):
                raise LoadError(_describe_parser_error(name, str(exc), leading)) from None
        raise LoadError(_no_header(name, looked))
    return best


def _scan_records(
    payload: bytes, start: int, delimiter: str, *, first: int
) -> list[tuple[int, int, list[str]]]:
    """Read records from ``start`` until a header or the search limit.

    Return (row number, byte offset, trimmed cells) of each non-blank record, the
    row number of the one at ``start`` being ``first``. Quoted cells may span lines,
    so this follows the quotes as pandas does.
    """
    consumed = start

    def lines() -> Iterator[str]:
        nonlocal consumed
        for match in _LINE.finditer(payload, start):
            consumed = match.end()
            yield match.group().decode("utf-8", errors="replace")

    reader = csv.reader(lines(), delimiter=delimiter, skipinitialspace=True, strict=False)
    found: list[tuple[int, int, list[str]]] = []
    offset, number = start, first
    try:
        for record in reader:
            cells = [cell.strip(_TRIM) for cell in record]
            if any(cells):
                found.append((number, offset, cells))
                if _names_header(cells) or len(found) >= HEADER_SEARCH_ROWS:
                    break
            number += 1
            offset = consumed
    except csv.Error:
        pass  # a cell too big for the csv module is no header; pandas reads it later
    return found


def _parse_csv(
    name: str,
    source: Path | io.BytesIO,
    payload: bytes,
    delimiter: str,
    leading_records: int,
) -> pd.DataFrame:
    """Parse from the header record on, every record as wide as the widest."""
    width: int | None = None
    for _ in range(_RAGGED_RETRIES):
        try:
            return _pandas_csv(source, delimiter, width)
        except ValueError as exc:  # ParserError, EmptyDataError and decoding errors alike
            message = str(exc)
        too_many = _TOO_MANY_FIELDS.search(message)
        if too_many is None:
            break
        # A row longer than the header: read every row at the widest width, so
        # that row alone can be marked invalid.
        seen = int(too_many.group(3))
        width = max(seen, width or 0, _widest_record(payload, delimiter) if width is None else 0)
        if isinstance(source, io.BytesIO):
            source.seek(0)
    raise LoadError(_describe_parser_error(name, message, leading_records))


def _pandas_csv(source: Path | io.BytesIO, delimiter: str, width: int | None) -> pd.DataFrame:
    return pd.read_csv(
        source,
        sep=delimiter,
        header=None,
        names=None if width is None else range(width),
        # Never take the first cells of a wide row as the index.
        index_col=False,
        dtype=str,
        engine="c",
        encoding="utf-8",
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=False,
        # Lets `a, "b, c"` parse as two cells, as people type it by hand.
        skipinitialspace=True,
        quotechar='"',
        doublequote=True,
    )


def _widest_record(payload: bytes, delimiter: str) -> int:
    """Count the cells of the widest record, or 0 when the csv module cannot."""
    text = io.StringIO(payload.decode("utf-8", errors="replace"), newline="")
    try:
        return max(
            (len(r) for r in csv.reader(text, delimiter=delimiter, skipinitialspace=True)),
            default=0,
        )
    except csv.Error:
        return 0


def _ragged_rows(
    raw: pd.DataFrame,
    positions: npt.NDArray[np.intp],
    width: int,
    header_row: int,
    delimiter: str,
) -> dict[int, str]:
    """Map the body position of each row with cells beyond the header to its message."""
    beyond = raw.iloc[:, width:].to_numpy(dtype=object)[positions] != ""
    hit = np.flatnonzero(beyond.any(axis=1))
    what = _DELIMITER_NAMES[delimiter]
    messages: dict[int, str] = {}
    for body_position in hit.tolist():
        last = int(np.flatnonzero(beyond[body_position])[-1])
        row = int(positions[body_position]) + header_row
        messages[body_position] = (
            f"row {row} has {width + last + 1} cells, the header has {width}: "
            f"is there an unquoted {what} in it?"
        )
    return messages


def _count_line_breaks(data: bytes) -> int:
    """Count line breaks in ``data``, treating CRLF as one."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _sniff_delimiter(head: str) -> str:
    """Pick the delimiter most frequent outside quotes in the header line; ties -> ','."""
    lines = _LINE_BREAK.split(head, maxsplit=50)
    header = _QUOTED.sub("", lines[0])
    counts = {d: header.count(d) for d in _CANDIDATE_DELIMITERS}
    best = max(counts.values())
    tied = [d for d in _CANDIDATE_DELIMITERS if counts[d] == best]
    if best == 0 or len(tied) == 1:
        return tied[0] if best else ","
    # Break a tie with the data: the true delimiter repeats the header's count.
    sample = [_QUOTED.sub("", line) for line in lines[1:-1] if line.strip()]
    scores = {d: sum(line.count(d) == best for line in sample) for d in tied}
    return max(tied, key=lambda d: scores[d])  # max() keeps the earliest on ties


def _needs_trim(payload: bytes, delimiter: str) -> bool:
    """Tell cheaply whether any cell may start or end with white space.

    Errs towards True: stripping is always correct, only slower.
    """
    # Non-ASCII white space (NBSP...) is too costly to look for, and a quoted cell
    # can hold line breaks and tabs that look like cell boundaries from here.
    if not payload.isascii() or b'"' in payload:
        return True
    spaces = _ASCII_SPACE.replace(delimiter.encode(), b"")
    if not any(space in payload for space in spaces):
        return False
    if payload[:1] in spaces or payload[-1:] in spaces:
        return True
    # Unquoted, every cell sits between boundaries (delimiter or line break). Map
    # each space to " " and each boundary to ","; a cell needing a trim then
    # shows as " ," or ", ". Blocks overlapping by one byte let a file that needs
    # trimming answer from its first lines.
    table = bytes.maketrans(spaces + delimiter.encode() + b"\r\n", b" " * len(spaces) + b",,,")
    for start in range(0, len(payload), _TRIM_SCAN_BLOCK):
        block = payload[max(start - 1, 0) : start + _TRIM_SCAN_BLOCK].translate(table)
        if b" ," in block or b", " in block:
            return True
    return False


def _blank_rows(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Return a mask of rows whose cells are all ""."""
    blank = np.ones(len(frame), dtype=np.bool_)
    for label in frame.columns:
        candidates = np.flatnonzero(blank)
        if not len(candidates):
            break
        values = frame[label].to_numpy(dtype=object)[candidates]
        blank[candidates] = values == ""
    return blank


def _describe_parser_error(name: str, message: str, leading_records: int) -> str:
    """Turn a pandas C-parser message into the user's terms (rows, cells)."""
    # pandas counts records from where parsing began: "line" 1-based, "row" 0-based.
    too_many = _TOO_MANY_FIELDS.search(message)
    if too_many:
        expected, record, saw = (int(g) for g in too_many.groups())
        row = record + leading_records
        return f"{name}: row {row} has {saw} cells but the header has {expected}"
    unclosed = _EOF_IN_QUOTE.search(message)
    if unclosed:
        row = int(unclosed.group(1)) + 1 + leading_records
        return f'{name}: row {row}: a quote (") opens a cell but is never closed'
    if "EOF" in message and "quote" in message.casefold():
        return f'{name}: a quote (") opens a cell but is never closed'
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return f"{name}: cannot parse the file as CSV: {first_line}"


# --------------------------------------------------------------------------- header


def _header_text(cell: str) -> str:
    """Return a header cell as people mean it: white space runs as one space, trimmed."""
    return _HEADER_SPACE.sub(" ", cell).strip()


def _canonical(cell: str) -> str | None:
    """Return the canonical column a header cell names, if any."""
    return _ALIAS_LOOKUP.get(_header_key(_header_text(cell)))


def _names_header(cells: Iterable[str]) -> bool:
    """Tell whether a row names both a course column and a user column."""
    named = {_canonical(cell) for cell in cells if cell}
    return all(canon in named for canon in REQUIRED)


def _no_header(name: str, looked: Sequence[tuple[int, list[str]]], where: str = "") -> str:
    """Explain that no row of ``looked`` (row number, cells) is a header."""
    if not looked:  # the csv module could not split even the first row
        return f"{name}{where}: no header row naming a course and a user column was found"
    span = looked[0][0] if len(looked) == 1 else f"{looked[0][0]}-{looked[-1][0]}"
    rows = "row" if len(looked) == 1 else "rows"
    # The row that names one required column is the header with a column missing.
    near = next(
        ((n, c) for n, c in looked if any(_canonical(cell) in REQUIRED for cell in c)), None
    )
    if near is not None:
        number, cells = near
        named = {_canonical(cell) for cell in cells}
        canon = next(c for c in REQUIRED if c not in named)
        accepted = ", ".join(_ALIASES[canon])
        start = (
            f"{name}{where}: missing required column '{canon}' (accepted headers: {accepted});"
            f" row {number} has "
        )
    else:
        number, cells = looked[0]
        start = (
            f"{name}{where}: missing required columns 'course_id' and 'user_login_name'"
            f" (looked at {rows} {span}); row {number} has "
        )
    return start + _listing([_header_text(c) for c in cells if c], MAX_MESSAGE - len(start))


def _listing(texts: Sequence[str], room: int) -> str:
    """Quote ``texts`` joined by ", " within ``room`` characters, ending "and N more"."""
    shown: list[str] = []
    for position, text in enumerate(texts):
        quoted = _quote(text, width=40)
        rest = len(texts) - position - 1
        tail = f" and {rest} more" if rest else ""
        if shown and len(", ".join([*shown, quoted])) + len(tail) > room:
            return ", ".join(shown) + f" and {len(texts) - position} more"
        shown.append(quoted)
    return ", ".join(shown) if shown else "no text"


# --------------------------------------------------------------------------- shape


def _assemble(name: str, table: _Table) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, str]]:
    """Map headers to canonical names and build the final frame."""
    body = table.body
    canonical: dict[str, int] = {}
    header_map: dict[str, str] = {}
    extra_sources: list[tuple[str, int]] = []
    for position, cell in enumerate(table.header):
        text = _header_text(cell)
        if not text:
            if (body[position] != "").any():
                extra_sources.append((f"column_{_column_letter(position)}", position))
            continue
        canon = _ALIAS_LOOKUP.get(_header_key(text))
        if canon is None:
            extra_sources.append((text, position))
        elif canon in canonical:
            first = canonical[canon]
            raise LoadError(
                f"{name}: columns {_quote(header_map[canon], width=40)} ({_column_letter(first)})"
                f" and {_quote(text, width=40)} ({_column_letter(position)}) both mean {canon};"
                " keep one"
            )
        else:
            canonical[canon] = position
            header_map[canon] = text

    labels = [canon for canon in (*REQUIRED, *OPTIONAL) if canon in canonical]
    positions = [canonical[canon] for canon in labels]
    taken = {"row", "course_session_ids", RAGGED_COLUMN, *labels}
    extras: list[str] = []
    for text, position in extra_sources:
        label = _unique(text, taken)
        taken.add(label)
        extras.append(label)
        positions.append(position)
    # One positional take, not a Series per column: sheets can be 10,000 columns wide.
    frame = body.iloc[:, positions].set_axis([*labels, *extras], axis=1)
    frame.index = pd.RangeIndex(len(frame))
    frame.insert(0, "row", table.rows)
    if "course_session_ids" not in canonical:
        frame.insert(3, "course_session_ids", pd.Series([""] * len(frame), dtype=str))
    if table.ragged:
        ragged = np.full(len(frame), "", dtype=object)
        for position, message in table.ragged.items():
            ragged[position] = message
        frame[RAGGED_COLUMN] = pd.Series(ragged, dtype=str)
    return frame, tuple(extras), header_map


def _header_key(text: str) -> str:
    """Normalise a header for alias matching: no case, spaces, underscores or hyphens."""
    return _HEADER_JUNK.sub("", text.casefold())


_ALIAS_LOOKUP: Mapping[str, str] = {
    _header_key(alias): canon for canon, aliases in _ALIASES.items() for alias in aliases
}


def _unique(label: str, taken: AbstractSet[str]) -> str:
    """Return ``label``, or ``label (N)`` with the smallest N >= 2 not in ``taken``."""
    if label not in taken:
        return label
    number = 2
    while f"{label} ({number})" in taken:
        number += 1
    return f"{label} ({number})"


def _column_letter(position: int) -> str:
    """Return the Excel column letters for 0-based ``position`` (0 -> A, 26 -> AA)."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = string.ascii_uppercase[remainder] + letters
    return letters


# --------------------------------------------------------------------------- text helpers


def _display_name(path: str) -> str:
    """Render a path for a one-line message, escaping control characters."""
    if path.isprintable():
        return path
    return path.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def _one_line(text: str, width: int = MAX_MESSAGE) -> str:
    """Collapse ``text`` to a single line of at most ``width`` characters."""
    return _truncate(" ".join(text.split()), width)


def _truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str, *, width: int = 60) -> str:
    """Quote a header or sheet name for a message, on one line and of bounded length."""
    return '"' + _one_line(text, width) + '"' if text else '""'
