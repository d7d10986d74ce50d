"""Malformed input: the loader returns a Sheet or raises a one-line LoadError, nothing else.

The small cases live in tests/hostile/ (written by tests/hostile/make_corpus.py);
big or odd ones (a 1 MB cell, 10,000 columns, a directory) are built here.
"""

from __future__ import annotations

import csv
import errno
import importlib.util
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_enroll.loader import RAGGED_COLUMN, LoadError, Sheet, load_sheet

CORPUS = Path(__file__).resolve().parent / "hostile"


def _corpus_script() -> ModuleType:
    """Import tests/hostile/make_corpus.py, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Ok:
    """Expect a Sheet with ``rows`` data rows (and, if given, these first-row values)."""

    rows: int
    first: dict[str, str | int] | None = None
    extras: tuple[str, ...] | None = None
    numbers: tuple[int, ...] | None = None
    #: Row number -> the RaggedRow message the loader leaves for the validator.
    ragged: dict[int, str] | None = None
    header_row: int = 1
    sheet_name: str = ""
    notes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Fails:
    """Expect a LoadError whose message contains every one of ``words``."""

    words: tuple[str, ...]


def check(path: Path, expected: Ok | Fails) -> Sheet | str:
    """Load ``path`` and assert the outcome; return the Sheet or the message."""
    if isinstance(expected, Fails):
        with pytest.raises(LoadError) as caught:
            load_sheet(path)
        message = str(caught.value)
        assert_one_line_about(path, message)
        for word in expected.words:
            assert word in message, f"{word!r} not in {message!r}"
        return message
    sheet = load_sheet(path)
    assert len(sheet.frame) == expected.rows
    assert sheet.frame["row"].dtype == "int64"
    for column in sheet.frame.columns[1:]:
        assert all(type(value) is str for value in sheet.frame[column])
    if expected.first is not None:
        first = sheet.frame.iloc[0]
        assert {key: first[key] for key in expected.first} == expected.first
    if expected.extras is not None:
        assert sheet.extra_columns == expected.extras
    if expected.numbers is not None:
        assert tuple(sheet.frame["row"]) == expected.numbers
    if expected.ragged is not None:
        assert ragged_of(sheet) == expected.ragged
    assert sheet.header_row == expected.header_row
    assert sheet.sheet_name == expected.sheet_name
    if expected.notes is not None:
        assert sheet.notes == expected.notes
    return sheet


def ragged_of(sheet: Sheet) -> dict[int, str]:
    """Map each row the loader found longer than its header to the message it left."""
    if RAGGED_COLUMN not in sheet.frame.columns:
        return {}
    marked = sheet.frame[sheet.frame[RAGGED_COLUMN] != ""]
    return dict(zip(marked["row"].tolist(), marked[RAGGED_COLUMN].tolist(), strict=True))


def assert_one_line_about(path: Path, message: str) -> None:
    """Assert ``message`` is one line, names ``path`` first, and is no traceback."""
    assert "\n" not in message
    assert "\r" not in message
    assert message.startswith(f"{path}")
    assert len(message) <= 200
    for leak in ("Traceback", 'File "', "Error tokenizing", "C error", "pandas"):
        assert leak not in message


EMPTY = Fails(("the file is empty",))
NOT_TEXT = Fails(("does not look like a CSV or Excel file",))
OLE2 = Fails(("not a readable .xls workbook",))

CORPUS_EXPECTATIONS: dict[str, Ok | Fails] = {
    "empty.csv": EMPTY,
    "whitespace_only.csv": EMPTY,
    "bom_only.csv": EMPTY,
    "bom_and_blank_lines.csv": EMPTY,
    "only_delimiters.csv": EMPTY,
    "header_only.csv": Ok(0, extras=()),
    "header_only_no_newline.csv": Ok(0, extras=()),
    "nul_bytes.csv": Fails(("does not look like a CSV or Excel file", "NUL")),
    "random_bytes.csv": NOT_TEXT,
    "random_bytes_no_nul.csv": Fails(("does not look like a CSV or Excel file", "binary")),
    "png_named.csv": NOT_TEXT,
    "gzip_named.csv": NOT_TEXT,
    "cp1252.csv": Ok(1, {"row": 2, "name": "Zoë"}),
    "utf16_bom_tabs.txt": Ok(2, {"user_login_name": "zoe@contoso.com", "name": "Zoë"}),
    "utf16le_no_bom.csv": Ok(1, {"course_id": "7", "user_login_name": "zoe@contoso.com"}),
    "undefined_cp1252_byte.csv": Fails(
        ("byte 0x81 at offset 30 (line 2)", "neither UTF-8 nor Windows-1252")
    ),
    "mixed_encodings.csv": Fails(("mixed text encodings", "byte 0xEB", "line 3")),
    "unbalanced_quote.csv": Fails(("row 3:", "never closed")),
    "unbalanced_quote_header.csv": Fails(("row 1:", "never closed")),
    "too_many_cells.csv": Ok(
        2,
        {"row": 2, "note": "x"},
        ragged={3: "row 3 has 4 cells, the header has 3: is there an unquoted comma in it?"},
    ),
    "too_many_after_quoted_newline.csv": Ok(
        2,
        {"user_login_name": "ann\nsmith"},
        numbers=(2, 4),
        ragged={4: "row 4 has 3 cells, the header has 2: is there an unquoted comma in it?"},
    ),
    "fewer_cells.csv": Ok(2, {"row": 2, "action": "", "note": ""}, extras=("note",)),
    "crlf.csv": Ok(2, {"user_login_name": "ann"}, numbers=(2, 4)),
    "cr_only.csv": Ok(2, {"user_login_name": "ann"}, numbers=(2, 4)),
    "mixed_line_endings.csv": Ok(3, {"user_login_name": "ann"}, numbers=(2, 3, 5)),
    "leading_blank_lines.csv": Ok(1, {"course_id": "1"}, numbers=(5,), header_row=4),
    "quoted_newlines.csv": Ok(2, {"message": "line one\nline two"}, numbers=(2, 3)),
    "duplicate_extra_headers.csv": Ok(
        1, {"note": "x", "note (2)": "y", "note (3)": "z"}, extras=("note", "note (2)", "note (3)")
    ),
    "ambiguous_user_aliases.csv": Fails(('"E-Mail" (B)', '"UPN" (C)', "user_login_name")),
    "ambiguous_course_aliases.csv": Fails(('"Course ID" (A)', '"course_id" (B)', "course_id")),
    "unknown_headers_only.csv": Fails(
        ("missing required columns 'course_id' and 'user_login_name'", "rows 1-2", '"foo"')
    ),
    "missing_user.csv": Fails(("missing required column 'user_login_name'", "e-mail, upn")),
    "empty_header_cells.csv": Ok(2, {"column_D": "x"}, extras=("column_D",)),
    "header_named_row.csv": Ok(1, {"row": 2, "row (2)": "9"}, extras=("row (2)",)),
    "formula_headers.csv": Ok(
        1, {"=Notes": "=1+1", "-Cost": "-3"}, extras=("=Notes", "@Manager", "+Phone", "-Cost")
    ),
    "html_named.csv": Fails(("missing required columns 'course_id' and 'user_login_name'",)),
    "excel_error_values.csv": Ok(2, {"course_id": "#N/A", "user_login_name": "ann"}),
    "floats_as_text.csv": Ok(2, {"course_id": "42.0"}),
    "nbsp_and_spaces.csv": Ok(1, {"course_id": "1", "user_login_name": "ann@x.com"}),
    "xlsx_no_sheets.xlsx": Fails(("no worksheets",)),
    "xlsx_empty_sheet.xlsx": Fails(('the worksheet "Sheet1" is empty',)),
    "xlsx_values.xlsx": Ok(
        2,
        {"row": 4, "course_id": "42", "Score": "3.5", "Flag": "true", "Check": "#N/A"},
        extras=("Score", "Flag", "Check"),
        header_row=3,
        sheet_name="Sheet1",
    ),
    "xlsx_formulas.xlsx": Ok(
        1,
        {"row": 2, "course_id": "101", "user_login_name": "ann@contoso.com", "Due": "#N/A"},
        extras=("Due", "Cost"),
        sheet_name="Sheet1",
    ),
    "xlsx_stray_far_cell.xlsx": Fails(
        ("spans 1,048,576 rows by 16,384 columns", "delete stray cells far from the table")
    ),
    "xlsx_named.csv": Ok(
        2, {"row": 2, "course_id": "42", "note": "first"}, extras=("note",), sheet_name="Sheet1"
    ),
    "truncated.xlsx": Fails(("damaged or truncated",)),
    "zip_not_xlsx.xlsx": Fails(("zip archive, not an .xlsx or .ods workbook",)),
    "opendocument.ods": Fails(("OpenDocument spreadsheet",)),
    "encrypted.xlsx": Fails(("password-protected", "save it as CSV")),
    "title_rows.csv": Ok(
        2,
        {
            "row": 5,
            "course_id": "7",
            "user_login_name": "ann@contoso.com",
            "Start date": "2026-12-01",
        },
        extras=("Start date",),
        numbers=(5, 6),
        header_row=4,
        notes=("Header on row 4; rows 1-3 skipped",),
    ),
    "title_rows_semicolons.csv": Ok(
        1, {"row": 4, "department": "Sales, EMEA"}, header_row=3, extras=("department",)
    ),
    "header_below_row_20.csv": Fails(
        ("missing required columns", "(looked at rows 1-20)", 'row 1 has "note 1"')
    ),
    "header_under_many_blank_lines.csv": Ok(1, {"row": 63}, header_row=62),
    "ragged_unquoted_address.csv": Ok(
        3,
        {"address": "Main Street 1"},
        numbers=(2, 3, 4),
        ragged={3: "row 3 has 4 cells, the header has 3: is there an unquoted comma in it?"},
    ),
    "many_unknown_headers.csv": Fails(("missing required columns", "and 59 more")),
    "xlsx_hr_workbook.xlsx": Ok(
        2,
        {"row": 5, "course_id": "7", "user_login_name": "ann@contoso.com", "Check": "#N/A"},
        extras=("Start date", "Check"),
        numbers=(5, 7),
        header_row=4,
        sheet_name="Hires",
        notes=(
            'Read sheet "Hires" (2 of 4); header on row 4; rows 1-3 skipped',
            'Passed over sheet "Instructions": no header in the first 20 rows',
            'Sheet "Old hires" also holds a header; read another with --sheet NAME or --sheet N',
        ),
    ),
    "xlsx_header_only_on_hidden_sheet.xlsx": Fails(
        ('no visible sheet has a header row, but the hidden sheet "Data" does', "--sheet")
    ),
    "legacy_hires.xls": Ok(
        1,
        {"row": 4, "course_id": "7", "user_login_name": "ann@contoso.com"},
        header_row=3,
        sheet_name="Hires",
        notes=(
            'Read sheet "Hires" (2 of 3); header on row 3; rows 1-2 skipped',
            'Passed over sheet "Read me": no header in the first 20 rows',
        ),
    ),
    "opendocument_hires.ods": Ok(1, {"row": 4, "course_id": "7"}, header_row=3, sheet_name="Hires"),
    "legacy.xls": OLE2,
}


def test_corpus_matches_its_script() -> None:
    built = _corpus_script().build()

    assert set(built) == set(CORPUS_EXPECTATIONS)
    on_disk = {
        p.name
        for p in CORPUS.iterdir()
        if p.is_file() and p.suffix != ".py" and not p.name.startswith(".")
    }
    assert on_disk == set(built)
    stale = [name for name, content in built.items() if (CORPUS / name).read_bytes() != content]
    assert stale == [], "run: python tests/hostile/make_corpus.py"


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTATIONS))
def test_corpus_file(name: str) -> None:
    check(CORPUS / name, CORPUS_EXPECTATIONS[name])


def test_second_row_values_of_the_xlsx_corpus_file() -> None:
    sheet = load_sheet(CORPUS / "xlsx_values.xlsx")

    assert sheet.frame.iloc[1].to_dict() == {
        "row": 6,
        "course_id": "43",
        "user_login_name": "bob@contoso.com",
        "course_session_ids": "",
        "Score": "7.25",
        "Flag": "false",
        "Check": "#REF!",
    }


# ------------------------------------------------------------------ built at test time


def _one_mb_cell(tmp: Path) -> Path:
    path = tmp / "big_cell.csv"
    path.write_text(f'course_id,user_login_name,message\n1,a,"{"x" * 1_000_000}"\n')
    return path


def _ten_thousand_columns(tmp: Path) -> Path:
    path = tmp / "wide.csv"
    header = ["course_id", "user_login_name", *(f"c{i}" for i in range(9_998))]
    values = [str(i) for i in range(10_000)]
    path.write_text(",".join(header) + "\n" + ",".join(values) + "\n")
    return path


def _ten_thousand_columns_too_wide(tmp: Path) -> Path:
    path = tmp / "too_wide.csv"
    path.write_text("course_id,user_login_name\n" + ",".join(["v"] * 10_000) + "\n")
    return path


def _very_long_line(tmp: Path) -> Path:
    path = tmp / "long_line.csv"
    path.write_text("course_id,user_login_name\n1," + "a" * 3_000_000 + "\n")
    return path


def _huge_header_name(tmp: Path) -> Path:
    path = tmp / "huge_header.csv"
    path.write_text(f"course_id,{'h' * 100_000}\n1,a\n")
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "folder.csv"
    path.mkdir()
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "does_not_exist.csv"


def _newline_in_file_name(tmp: Path) -> Path:
    path = tmp / "odd\nname.csv"
    path.write_bytes(b"")
    return path


BUILT: dict[str, tuple[Callable[[Path], Path], Ok | Fails]] = {
    "1 MB cell": (_one_mb_cell, Ok(1)),
    "10,000 columns": (_ten_thousand_columns, Ok(1, {"course_id": "0", "c9997": "9999"})),
    "10,000 cells under a 2-column header": (
        _ten_thousand_columns_too_wide,
        Ok(
            1,
            ragged={
                2: "row 2 has 10000 cells, the header has 2: is there an unquoted comma in it?"
            },
        ),
    ),
    "3 MB line": (_very_long_line, Ok(1)),
    "100 kB header name": (_huge_header_name, Fails(("missing required column", "…"))),
    "directory": (_directory, Fails(("this is a folder, not a regular file",))),
    "missing file": (_missing, Fails(("cannot read the file", "No such file"))),
}


@pytest.mark.parametrize("case", sorted(BUILT))
def test_built_case(case: str, tmp_path: Path) -> None:
    build, expected = BUILT[case]
    check(build(tmp_path), expected)


def test_big_cell_and_wide_sheet_keep_their_values(tmp_path: Path) -> None:
    big = load_sheet(_one_mb_cell(tmp_path))
    wide = load_sheet(_ten_thousand_columns(tmp_path))

    assert big.frame["message"].iloc[0] == "x" * 1_000_000
    assert len(wide.extra_columns) == 9_998
    assert wide.extra_columns[:2] == ("c0", "c1")
    assert wide.frame.shape == (1, 10_002)  # row, 2 required, sessions, 9,998 extras


def test_control_characters_in_the_file_name_stay_on_one_line(tmp_path: Path) -> None:
    path = _newline_in_file_name(tmp_path)

    with pytest.raises(LoadError) as caught:
        load_sheet(path)

    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("odd\\nname.csv: the file is empty")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.csv"
    path.write_text("course_id,user\n1,a\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file, so refuse the way the OS would
        real_open = Path.open

        def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == path:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)

    check(path, Fails(("cannot read the file: Permission denied",)))


# ------------------------------------------------------------------ property


# Cells mix the characters that break naive CSV handling with arbitrary text.
_SPECIAL = list(',;\t|"\r\n \u00a0\u200b\ufeff\u2028\x0b\x0c\\é😀')
_cell = st.text(
    alphabet=st.one_of(
        st.sampled_from(_SPECIAL),
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
    ),
    max_size=8,
)
# ASCII-only cells take the loader's other path, where it decides whether to trim.
_ascii_cell = st.text(alphabet=st.sampled_from(list(' ,;\t|"\r\nab\x0b\x0c')), max_size=6)
_TRIM = "".join(chr(c) for c in range(0x110000) if chr(c).isspace()) + "\u200b\ufeff"


@st.composite
def _sheets(draw: st.DrawFn) -> tuple[list[str], list[list[str]], str, str, str]:
    extras = draw(st.integers(min_value=0, max_value=3))
    header = ["course_id", "user_login_name", *(f"extra{i}" for i in range(extras))]
    width = len(header)
    blank = st.lists(st.sampled_from(["", " ", "\u00a0", "\t"]), min_size=width, max_size=width)
    cell = draw(st.sampled_from([_cell, _ascii_cell]))
    row = st.lists(cell, min_size=width, max_size=width)
    rows = draw(st.lists(st.one_of(row, blank), max_size=12))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\r\n", "\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig"]))
    if newline == "\n":
        # The csv module leaves a lone CR unquoted when it is not part of the line
        # terminator, and every CSV reader takes that CR as a line break.
        rows = [[cell.replace("\r", "") for cell in cells] for cells in rows]
    return header, rows, delimiter, newline, encoding


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_sheets())
def test_any_csv_written_by_the_csv_module_round_trips(
    sheet: tuple[list[str], list[list[str]], str, str, str],
) -> None:
    header, rows, delimiter, newline, encoding = sheet
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows([header, *rows])
    expected = [
        (number, [cell.strip(_TRIM) for cell in cells])
        for number, cells in enumerate(rows, start=2)
        if any(cell.strip(_TRIM) for cell in cells)
    ]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.csv"
        path.write_bytes(buffer.getvalue().encode(encoding))
        loaded = load_sheet(path)

    frame = loaded.frame
    columns = ["course_id", "user_login_name", *header[2:]]
    got = [
        (int(number), [str(value) for value in values])
        for number, values in zip(frame["row"], frame[columns].to_numpy().tolist(), strict=True)
    ]
    assert got == expected
    assert loaded.extra_columns == tuple(header[2:])
    assert frame["course_session_ids"].tolist() == [""] * len(expected)
