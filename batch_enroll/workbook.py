"""Read a workbook (.xlsx, .xls, .ods) for the loader: find its sheet, render its cells.

Calamine reads the file in Rust. This module chooses the sheet (the one asked
for, or the first visible one holding a header), renders cells as the text Excel
shows, restores the Excel error values calamine reads as empty, and refuses a
sheet too vast to hold before calamine allocates it. Imported only when the
input is a workbook, so CSV users pay nothing for it.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from batch_enroll.errors import LoadError
from batch_enroll.loader import (
    _OLE2_MAGIC,
    _STRIP_CHARS,
    _TRIM,
    HEADER_SEARCH_ROWS,
    MAX_MESSAGE,
    _listing,
    _names_header,
    _no_header,
    _one_line,
    _quote,
    _size,
    _Table,
)

if TYPE_CHECKING:
    from python_calamine import CalamineSheet, CalamineWorkbook, SheetMetadata

__all__ = ["Book", "read_workbook"]

# Excel stores a password-protected workbook as an OLE2 file with this stream.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"

# Calamine renders Excel error cells as empty; these find them in the sheet's XML.
_XML_SHEET_TAG = re.compile(rb"<(?:\w+:)?sheet\s[^>]*>")
_XML_RELATIONSHIP_TAG = re.compile(rb"<(?:\w+:)?Relationship\s[^>]*>")
_XML_ERROR_CELL = re.compile(rb'<(?:\w+:)?c\s([^>]*\bt="e"[^>]*)>(.*?)</(?:\w+:)?c>', re.S)
_XML_CELL_REF = re.compile(rb'\br="([A-Z]{1,3})([0-9]+)"')
_XML_NUMERIC_ENTITY = re.compile(r"&#([xX][0-9a-fA-F]{1,6}|[0-9]{1,7});")
_XML_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]*)</(?:\w+:)?v>")

# Cells a worksheet may span (A1 to its last cell): the reader holds them all, and
# one stray cell at XFD1048576 would otherwise ask for 17 billion.
_MAX_CELLS = 50_000_000
_XML_ROW_NUMBER = re.compile(rb'<(?:\w+:)?row\s[^>]*?\br="([0-9]+)"')
_XML_WIDE_REF = re.compile(rb'\sr="([A-Z]{2,3})([0-9]+)"')
_XML_CHUNK = 1 << 20
# What a workbook's parts may unpack to: far beyond any real sheet, short of a zip bomb.
_MAX_UNPACKED = 4 << 30


@dataclass(frozen=True)
class Book:
    """What was chosen in a workbook, and what else is in it."""

    table: _Table
    sheet_name: str
    sheet_names: tuple[str, ...]
    hidden: tuple[str, ...]
    others: tuple[str, ...]
    passed_over: tuple[str, ...]


def read_workbook(name: str, data: bytes, *, wanted: str | None) -> Book:
    """Read the wanted sheet of a workbook, or the first visible one holding a header."""
    from python_calamine import (  # imported here: CSV users should not pay for it
        CalamineWorkbook,
        PasswordError,
        SheetTypeEnum,
        SheetVisibleEnum,
    )

    label = _workbook_label(name, data)
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise LoadError(_password_protected(name)) from None
    # Calamine raises its own errors, and others (ValueError, OverflowError...) on
    # malformed files; all of them mean the same thing to the user.
    except Exception as exc:
        raise LoadError(f"{name}: not a readable {label} ({_detail(exc)})") from None
    with book:
        metas = list(book.sheets_metadata)
        names = tuple(meta.name for meta in metas)
        hidden = tuple(m.name for m in metas if m.visible != SheetVisibleEnum.Visible)
        if not metas:
            raise LoadError(f"{name}: the workbook has no worksheets")
        opened = _Workbook(name, data, book, label)
        try:
            if wanted is not None:
                meta = _pick_sheet(name, metas, wanted, set(hidden))
                table = _sheet_table(opened, meta.name, only=True)
                assert table is not None  # only=True raises instead
                return Book(table, meta.name, names, hidden, (), ())
            visible = [
                m.name
                for m in metas
                if m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet
            ]
            worksheets = [m.name for m in metas if m.typ == SheetTypeEnum.WorkSheet]
            return _first_with_header(opened, visible, worksheets, names, hidden)
        except LoadError:
            raise
        except Exception as exc:
            raise LoadError(f"{name}: not a readable {label} ({_detail(exc)})") from None


@dataclass(frozen=True)
class _Workbook:
    """An open workbook and what its messages need."""

    name: str
    data: bytes
    book: CalamineWorkbook
    label: str

    def sheet(self, sheet_name: str) -> tuple[CalamineSheet, dict[tuple[int, int], str]]:
        """Open a worksheet and find its Excel error cells, refusing one too vast to hold."""
        errors: dict[tuple[int, int], str] = {}
        if self.label == ".xlsx workbook":
            rows, columns, errors = _scan_xlsx_sheet(self.data, sheet_name)
            if rows * columns > _MAX_CELLS:
                raise LoadError(
                    f"{self.name}: the sheet {_quote(sheet_name, width=40)} spans {rows:,} rows"
                    f" by {columns:,} columns, too many cells to read; delete stray cells far"
                    " from the table"
                )
        return self.book.get_sheet_by_name(sheet_name), errors


def _first_with_header(
    opened: _Workbook,
    visible: Sequence[str],
    worksheets: Sequence[str],
    names: tuple[str, ...],
    hidden: tuple[str, ...],
) -> Book:
    """Read the first of ``visible`` that holds a header; note the others that do too."""
    name = opened.name
    if len(visible) == 1 and not hidden:
        table = _sheet_table(opened, visible[0], only=True)
        assert table is not None
        return Book(table, visible[0], names, hidden, (), ())
    chosen: tuple[str, _Table] | None = None
    passed: list[str] = []
    others: list[str] = []
    for sheet_name in visible:
        if chosen is None:
            table = _sheet_table(opened, sheet_name, only=False)
            if table is None:
                passed.append(sheet_name)
            else:
                chosen = (sheet_name, table)
        elif _holds_header(opened, sheet_name):
            others.append(sheet_name)
    if chosen is None:
        # A hidden sheet is never read unasked, but it is worth pointing at.
        candidates = [n for n in worksheets if n in hidden and _holds_header(opened, n)]
        if candidates:
            raise LoadError(
                f"{name}: no visible sheet has a header row, but the hidden sheet "
                f"{_quote(candidates[0], width=40)} does: read it with --sheet"
                f" {_quote(candidates[0], width=40)}"
            )
        listing = _listing(visible or worksheets, 80)
        raise LoadError(
            f"{name}: no sheet has a header row naming a course and a user column in its first "
            f"{HEADER_SEARCH_ROWS} rows (sheets {listing})"
        )
    return Book(chosen[1], chosen[0], names, hidden, tuple(others), tuple(passed))


def _pick_sheet(
    name: str, metas: Sequence[SheetMetadata], wanted: str, hidden: AbstractSet[str]
) -> SheetMetadata:
    """Find the sheet --sheet means: its exact name, its name in any case, or its number."""
    text = wanted.strip()
    exact = [m for m in metas if m.name == wanted]
    loose = [m for m in metas if m.name.strip().casefold() == text.casefold()]
    if exact or loose:
        return (exact or loose)[0]
    if text.isdigit() and 1 <= int(text) <= len(metas):
        return metas[int(text) - 1]
    start = f"{name}: no sheet {_quote(wanted, width=40)} (by name or number); the sheets are "
    shown = [f"{m.name} (hidden)" if m.name in hidden else m.name for m in metas]
    raise LoadError(start + _listing(shown, MAX_MESSAGE - len(start)))


def _holds_header(opened: _Workbook, sheet_name: str) -> bool:
    """Tell whether a sheet has a header among its first non-empty rows."""
    seen = 0
    for values in opened.sheet(sheet_name)[0].iter_rows():
        cells = [_cell_text(value) for value in values]
        if not any(cells):
            continue
        if _names_header(cells):
            return True
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            break
    return False


def _sheet_table(opened: _Workbook, sheet_name: str, *, only: bool) -> _Table | None:
    """Read one sheet's table; None when it has no header, or raise when ``only``."""
    name = opened.name
    sheet, errors = opened.sheet(sheet_name)
    grid = sheet.to_python(skip_empty_area=False)
    where = f" (sheet {_quote(sheet_name, width=40)})"
    looked: list[tuple[int, list[str]]] = []
    at: int | None = None
    for index, values in enumerate(grid):
        cells = [_cell_text(value) for value in values]
        if not any(cells):
            continue
        looked.append((index + 1, cells))
        if _names_header(cells):
            at = index
            break
        if len(looked) >= HEADER_SEARCH_ROWS:
            break
    if at is None:
        if not only:
            return None
        if not looked:
            raise LoadError(f"{name}: the worksheet {_quote(sheet_name, width=40)} is empty")
        raise LoadError(_no_header(name, looked, where))
    for (row, column), text in errors.items():
        if row < len(grid) and column < len(grid[row]):
            grid[row][column] = text
    width = max((len(values) for values in grid[at:]), default=0)
    header = _pad(looked[-1][1], width)
    block = _grid_text(grid[at + 1 :], width)
    filled = np.flatnonzero((block != "").any(axis=1)) if width else np.arange(0)
    body = pd.DataFrame(block[filled], columns=pd.RangeIndex(width), dtype=str)
    numbers = (filled + at + 2).astype(np.int64)
    skipped = tuple(number for number, _ in looked[:-1])
    return _Table(header, body, numbers, at + 1, skipped)


def _grid_text(grid: Sequence[list[Any]], width: int) -> npt.NDArray[np.object_]:
    """Render a block of workbook values as text, column by column.

    A column holds one kind of value almost always (text, or numbers), and one
    vectorised pass per kind is several times faster than a call per cell.
    """
    if all(len(values) == width for values in grid):
        # Calamine's rows are all as wide as the sheet: one copy in C.
        block = np.empty((len(grid), width), dtype=object)
        block[...] = grid
    else:
        block = np.full((len(grid), width), "", dtype=object)
        for index, values in enumerate(grid):
            block[index, : len(values)] = values
    for column in range(width):
        cells = block[:, column]
        kinds = set(map(type, cells))
        if kinds == {str}:
            block[:, column] = _STRIP_CHARS(cells, _TRIM)
        elif kinds == {float} or kinds == {float, str}:
            block[:, column] = _float_text(cells)
        else:
            block[:, column] = [_cell_text(value) for value in cells]
    return block


def _float_text(values: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """Render a column of floats (and text) as Excel shows them: 42.0 as "42"."""
    out = values.copy()
    numeric = np.array([type(value) is float for value in values], dtype=np.bool_)
    numbers = values[numeric].astype(np.float64)
    # Exactly representable whole numbers print as integers; the rest as Python does.
    whole = np.isfinite(numbers) & (numbers == np.trunc(numbers)) & (np.abs(numbers) < 2.0**63)
    texts = np.empty(len(numbers), dtype=object)
    texts[whole] = numbers[whole].astype(np.int64).astype(str).astype(object)
    texts[~whole] = [_cell_text(float(number)) for number in numbers[~whole]]
    out[numeric] = texts
    rest = ~numeric
    out[rest] = _STRIP_CHARS(values[rest], _TRIM) if rest.any() else out[rest]
    return out


def _workbook_label(name: str, data: bytes) -> str:
    """Say what kind of workbook ``data`` is, or raise LoadError when it is none."""
    if data.startswith(_OLE2_MAGIC):
        if _ENCRYPTED_STREAM in data:
            raise LoadError(_password_protected(name))
        return ".xls workbook"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
            mimetype = b""
            if "mimetype" in parts:
                with archive.open("mimetype") as stream:
                    mimetype = stream.read(100)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError):
        raise LoadError(
            f"{name}: the file starts like a workbook (.xlsx or .ods) but is damaged or truncated"
        ) from None
    if unpacked > _MAX_UNPACKED:
        raise LoadError(
            f"{name}: the workbook unpacks to {_size(unpacked)}, more than the"
            f" {_size(_MAX_UNPACKED)} a sheet can be read from; save it as CSV"
        )
    if "[Content_Types].xml" in parts:
        return ".xlsx workbook"
    if mimetype.strip() == _ODS_MIMETYPE or "content.xml" in parts:
        return "OpenDocument spreadsheet"
    raise LoadError(f"{name}: this is a zip archive, not an .xlsx or .ods workbook")


def _password_protected(name: str) -> str:
    return (
        f"{name}: the workbook is password-protected; remove the password in Excel "
        "(File > Info > Protect Workbook) or save it as CSV"
    )


def _detail(exc: BaseException) -> str:
    return _one_line(str(exc), 80) or type(exc).__name__


def _scan_xlsx_sheet(data: bytes, sheet_name: str) -> tuple[int, int, dict[tuple[int, int], str]]:
    """Stream a worksheet's XML once: an upper bound of its rows and columns, and its errors.

    Calamine reads Excel error cells (#N/A...) as empty, and the validator must
    see them to explain; it also holds every cell from A1 to the last one, so the
    span is measured first. Chunks keep memory flat whatever the sheet's size.
    """
    # Single-letter cells are too many to look at one by one; 26 columns by the
    # last row bounds them, and a million such rows is still a sheet one can hold.
    rows, columns = 0, 26
    errors: dict[tuple[int, int], str] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            part = _xlsx_sheet_part(archive, sheet_name)
            if part is None:
                return rows, columns, errors
            with archive.open(part) as stream:
                carry = b""
                while True:
                    chunk = stream.read(_XML_CHUNK)
                    block, carry = carry + chunk, b""
                    if chunk:
                        # Cut after the last whole cell, so none straddles two blocks;
                        # keep gathering while there is none (a long text cell).
                        end = block.rfind(b"</c>")
                        if end >= 0:
                            cut = end + 4
                        else:
                            cut = len(block) if len(block) > 16 * _XML_CHUNK else 0
                        block, carry = block[:cut], block[cut:]
                    rows = max([rows, *map(int, _XML_ROW_NUMBER.findall(block))])
                    for letters, number in _XML_WIDE_REF.findall(block):
                        columns = max(columns, _column_index(letters.decode("ascii")) + 1)
                        rows = max(rows, int(number))
                    if b't="e"' in block:
                        errors.update(_xml_errors(block))
                    if not chunk:
                        break
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError):
        pass  # calamine says what is wrong with the file
    return rows, columns, errors


def _xml_errors(block: bytes) -> dict[tuple[int, int], str]:
    """Find the error cells in a run of worksheet XML: (0-based row, column) -> text."""
    errors: dict[tuple[int, int], str] = {}
    for match in _XML_ERROR_CELL.finditer(block):
        ref = _XML_CELL_REF.search(match.group(1))
        value = _XML_VALUE.search(match.group(2))
        if ref is None or value is None:
            continue
        column = _column_index(ref.group(1).decode("ascii"))
        errors[(int(ref.group(2)) - 1, column)] = _xml_text(value.group(1))
    return errors


def _xlsx_sheet_part(archive: zipfile.ZipFile, sheet_name: str) -> str | None:
    """Return the zip part holding the named worksheet's XML."""
    relation = None
    for tag in _XML_SHEET_TAG.findall(archive.read("xl/workbook.xml")):
        named = re.search(rb'\sname="([^"]*)"', tag)
        rid = re.search(rb'\s\w+:id="([^"]*)"', tag)
        if named and rid and _xml_text(named.group(1)) == sheet_name:
            relation = rid.group(1)
            break
    if relation is None:
        return None
    for tag in _XML_RELATIONSHIP_TAG.findall(archive.read("xl/_rels/workbook.xml.rels")):
        rid = re.search(rb'\sId="([^"]*)"', tag)
        target = re.search(rb'\sTarget="([^"]*)"', tag)
        if rid and target and rid.group(1) == relation:
            path = _xml_text(target.group(1))
            return path.lstrip("/") if path.startswith("/") else f"xl/{path}"
    return None


def _xml_text(raw: bytes) -> str:
    """Decode XML character data: the five named entities and numeric references."""
    text = raw.decode("utf-8", errors="replace")
    if "&" not in text:
        return text
    text = _XML_NUMERIC_ENTITY.sub(_xml_char, text)
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


def _xml_char(match: re.Match[str]) -> str:
    """Return the character a numeric reference (&#65; or &#x41;) names, or U+FFFD."""
    number = match.group(1)
    code = int(number[1:], 16) if number[0] in "xX" else int(number)
    return chr(code) if code <= 0x10FFFF else "\ufffd"


def _column_index(letters: str) -> int:
    """Return the 0-based position of Excel column ``letters`` (A -> 0, AA -> 26)."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _cell_text(value: object) -> str:
    """Render one workbook cell value as the text Excel would show, trimmed."""
    if isinstance(value, str):
        return value.strip(_TRIM)
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        # A duration as Excel's [h]:mm:ss shows it.
        seconds = round(value.total_seconds())
        sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
        hours, rest = divmod(seconds, 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value).strip(_TRIM)


def _pad(cells: list[str], width: int) -> list[str]:
    """Extend ``cells`` with "" up to ``width``."""
    return cells + [""] * (width - len(cells))
