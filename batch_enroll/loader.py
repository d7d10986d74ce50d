"""Load an enrollment sheet (CSV, TSV or .xlsx) into a trimmed, all-text DataFrame.

The loader's job is to turn whatever a person saved from Excel, Google Sheets or a
script into one predictable shape, or to explain in one line why it cannot. It does
not judge cell values: a later validator does that, using the row numbers and the
original header texts kept here so its messages match what the user sees.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import io
import os
import re
import stat
import string
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd

from batch_enroll.errors import LoadError

__all__ = ["OPTIONAL", "REQUIRED", "LoadError", "Sheet", "load_sheet"]

REQUIRED = ("course_id", "user_login_name")
OPTIONAL = (
    "course_session_ids",
    "action",
    "message",
    "ignore_max_attendees",
    "ignore_enrollment_flow",
)

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
_TOO_MANY_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_EOF_IN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")
_HEADER_JUNK = re.compile(r"[\s_\-]+")

_ASCII_SPACE = b" \t\x0b\x0c\x1c\x1d\x1e\x1f"


@dataclass(frozen=True)
class Sheet:
    """A loaded sheet: every cell a trimmed ``str``, plus what is needed to explain it.

    ``frame`` has a RangeIndex and the columns ``row`` (int64 spreadsheet row number,
    header = 1), the canonical columns present (``course_session_ids`` always, ""
    when absent), then ``extra_columns``. ``header_map`` maps each canonical column
    found in the input to its original header text.
    """

    path: Path
    frame: pd.DataFrame
    extra_columns: tuple[str, ...]
    sha256: str
    header_map: Mapping[str, str]


def load_sheet(path: str | os.PathLike[str]) -> Sheet:
    """Read ``path`` as CSV/TSV or .xlsx, judged by content, and return a Sheet.

    Raise LoadError, with a one-line message that starts with the path as given,
    for anything that cannot be read as a table with the required columns.
    """
    source = Path(path)
    name = _display_name(os.fspath(path))
    try:
        with source.open("rb") as handle:
            before = os.fstat(handle.fileno())
            data = handle.read()
    except OSError as exc:
        raise LoadError(f"{name}: cannot read the file: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()

    if data.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        header, body, rows = _read_xlsx(name, data)
    elif data.startswith(_OLE2_MAGIC):
        raise LoadError(
            f"{name}: this is an encrypted or legacy .xls workbook; save it as .xlsx or CSV"
        )
    else:
        payload, verbatim = _to_utf8(name, data)
        # pandas parses a file *path* with several threads, and a buffer with
        # one; so let it re-read a regular file whose bytes need no transcoding,
        # and check afterwards that what it read is what was hashed.
        reread = source if verbatim and stat.S_ISREG(before.st_mode) else None
        header, body, rows = _read_csv(name, payload, reread=reread)
        if reread is not None and _changed(source, before):
            raise LoadError(f"{name}: the file changed while it was being read; try again")

    frame, extras, header_map = _assemble(name, header, body, rows)
    return Sheet(
        path=source,
        frame=frame,
        extra_columns=extras,
        sha256=digest,
        header_map=MappingProxyType(header_map),
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


def _read_csv(
    name: str, payload: bytes, *, reread: Path | None
) -> tuple[list[str], pd.DataFrame, npt.NDArray[np.int64]]:
    """Parse UTF-8 ``payload`` in one C-engine pass; return header, body and row numbers.

    ``reread`` names a file whose bytes are ``payload`` (maybe plus a UTF-8 BOM),
    for pandas to parse in its place.
    """
    lead = _LEADING_BLANK_LINES.match(payload)
    start = lead.end() if lead else 0
    leading_records = _count_line_breaks(payload[:start])
    if not _NOT_BLANK.search(payload, start):
        raise LoadError(f"{name}: the file is empty")
    source: Path | io.BytesIO
    if start:
        payload = payload[start:]
        source = io.BytesIO(payload)
    else:
        source = reread if reread is not None else io.BytesIO(payload)

    head = payload[:_SNIFF_BYTES].decode("utf-8", errors="ignore")
    delimiter = _sniff_delimiter(head)
    try:
        raw = pd.read_csv(
            source,
            sep=delimiter,
            header=None,
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
    except ValueError as exc:  # ParserError, EmptyDataError and decoding errors alike
        raise LoadError(_describe_parser_error(name, str(exc), leading_records)) from None

    if _needs_trim(payload, delimiter):
        # One ufunc over the whole block: a third of the cost of Series.str.strip
        # per column, and far cheaper still on very wide sheets. A bare strip()
        # removes exactly the str.isspace() characters, faster than strip(_TRIM).
        cells = raw.to_numpy(dtype=object)
        invisible = b"\xe2\x80\x8b" in payload or codecs.BOM_UTF8 in payload
        stripped = _STRIP_CHARS(cells, _TRIM) if invisible else _STRIP(cells)
        raw = pd.DataFrame(stripped, columns=raw.columns, dtype=str)

    blank = _blank_rows(raw)
    # The header is the first non-blank record; everything above it is blank.
    first = int(np.argmin(blank)) if len(blank) else 0
    if len(blank) == 0 or blank[first]:
        raise LoadError(f"{name}: the file is empty")
    header = [str(cell) for cell in raw.iloc[first]]
    keep = ~blank
    keep[: first + 1] = False
    positions = np.flatnonzero(keep)
    # Without blank rows a slice avoids copying every column.
    no_gaps = len(positions) == len(raw) - first - 1
    body = (raw.iloc[first + 1 :] if no_gaps else raw.iloc[positions]).reset_index(drop=True)
    rows = (positions + (leading_records + 1)).astype(np.int64)
    return header, body, rows


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


# --------------------------------------------------------------------------- xlsx


def _read_xlsx(name: str, data: bytes) -> tuple[list[str], pd.DataFrame, npt.NDArray[np.int64]]:
    """Read the first worksheet; return header, body and real sheet row numbers."""
    import openpyxl  # imported here: CSV users should not pay for it

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        raise LoadError(
            f"{name}: the file starts like an .xlsx workbook but is damaged or truncated"
        ) from None
    if "[Content_Types].xml" not in parts:
        if "content.xml" in parts:
            raise LoadError(f"{name}: this is an OpenDocument spreadsheet; save it as .xlsx or CSV")
        raise LoadError(f"{name}: this is a zip archive, not an .xlsx workbook")
    records: list[tuple[int, list[str]]] = []
    title = ""
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it ignores; irrelevant here.
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(
                io.BytesIO(data), read_only=True, data_only=True, keep_links=False
            )
            try:
                if not book.worksheets:
                    raise LoadError(f"{name}: the workbook has no worksheets")
                sheet = book.worksheets[0]
                title = str(sheet.title)
                # The stored dimension is often wrong in files from other tools.
                sheet.reset_dimensions()
                for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                    cells = [_xlsx_text(value) for value in values]
                    if any(cells):
                        records.append((number, cells))
            finally:
                book.close()
    except LoadError:
        raise
    except zipfile.BadZipFile:
        raise LoadError(
            f"{name}: the file starts like an .xlsx workbook but is damaged or truncated"
        ) from None
    # openpyxl raises a zoo of exception types (KeyError, XML errors, TypeError...)
    # on malformed workbooks; all of them mean the same thing to the user.
    except Exception as exc:
        detail = _one_line(str(exc)) or type(exc).__name__
        raise LoadError(f"{name}: not a readable .xlsx workbook ({detail})") from None

    if not records:
        raise LoadError(f"{name}: the first worksheet ({_quote(title)}) is empty")
    width = max(len(cells) for _, cells in records)
    header = _pad(records[0][1], width)
    body = pd.DataFrame(
        [_pad(cells, width) for _, cells in records[1:]],
        columns=pd.RangeIndex(width),
        dtype=str,
    )
    rows = np.array([number for number, _ in records[1:]], dtype=np.int64)
    return header, body, rows


def _xlsx_text(value: object) -> str:
    """Render one openpyxl cell value as the text Excel would show, trimmed."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip(_TRIM)
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value).strip(_TRIM)


def _pad(cells: list[str], width: int) -> list[str]:
    """Extend ``cells`` with "" up to ``width``."""
    return cells + [""] * (width - len(cells))


# --------------------------------------------------------------------------- shape


def _assemble(
    name: str,
    header: Sequence[str],
    body: pd.DataFrame,
    rows: npt.NDArray[np.int64],
) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, str]]:
    """Map headers to canonical names and build the final frame."""
    lookup = {_header_key(alias): canon for canon, aliases in _ALIASES.items() for alias in aliases}
    canonical: dict[str, int] = {}
    header_map: dict[str, str] = {}
    extra_sources: list[tuple[str, int]] = []
    for position, text in enumerate(header):
        text = text.strip(_TRIM)
        if not text:
            if (body[position] != "").any():
                extra_sources.append((f"column_{_column_letter(position)}", position))
            continue
        canon = lookup.get(_header_key(text))
        if canon is None:
            extra_sources.append((text, position))
        elif canon in canonical:
            first = canonical[canon]
            raise LoadError(
                f"{name}: columns {_quote(header_map[canon])} ({_column_letter(first)}) and "
                f"{_quote(text)} ({_column_letter(position)}) both mean {canon}; keep one"
            )
        else:
            canonical[canon] = position
            header_map[canon] = text

    missing = [canon for canon in REQUIRED if canon not in canonical]
    if missing:
        found = ", ".join(_quote(text.strip(_TRIM)) for text in header if text.strip(_TRIM))
        problems = "; ".join(
            f"missing required column '{canon}' (accepted headers: {', '.join(_ALIASES[canon])})"
            for canon in missing
        )
        raise LoadError(f"{name}: {problems}; found: {_truncate(found or 'no headers', 200)}")

    labels = [canon for canon in (*REQUIRED, *OPTIONAL) if canon in canonical]
    positions = [canonical[canon] for canon in labels]
    taken = {"row", "course_session_ids", *labels}
    extras: list[str] = []
    for text, position in extra_sources:
        label = _unique(text, taken)
        taken.add(label)
        extras.append(label)
        positions.append(position)
    # One positional take, not a Series per column: sheets can be 10,000 columns wide.
    frame = body.iloc[:, positions].set_axis([*labels, *extras], axis=1)
    frame.index = pd.RangeIndex(len(frame))
    frame.insert(0, "row", rows)
    if "course_session_ids" not in canonical:
        frame.insert(3, "course_session_ids", pd.Series([""] * len(frame), dtype=str))
    return frame, tuple(extras), header_map


def _header_key(text: str) -> str:
    """Normalise a header for alias matching: no case, spaces, underscores or hyphens."""
    return _HEADER_JUNK.sub("", text.casefold())


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


def _one_line(text: str) -> str:
    """Collapse ``text`` to a short single line."""
    return _truncate(" ".join(text.split()), 200)


def _truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str) -> str:
    """Quote a header text for a message, on one line and of bounded length."""
    return '"' + _one_line(text.replace("\r", " ").replace("\n", " ")) + '"' if text else '""'
