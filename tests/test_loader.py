"""The loader: encodings, delimiters, aliases, row numbers, trimming and .xlsx twins."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from batch_enroll import loader
from batch_enroll.loader import OPTIONAL, REQUIRED, LoadError, Sheet, load_sheet


def write(tmp_path: Path, content: bytes | str, name: str = "input.csv") -> Path:
    """Write ``content`` (str as UTF-8) to ``tmp_path / name`` and return the path."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def records(sheet: Sheet) -> list[dict[str, object]]:
    """Return the frame as plain dicts, for whole-value comparisons."""
    return [
        {str(key): value for key, value in row.items()} for row in sheet.frame.to_dict("records")
    ]


def error_of(path: Path) -> str:
    """Return the LoadError message ``load_sheet(path)`` raises."""
    with pytest.raises(LoadError) as caught:
        load_sheet(path)
    return str(caught.value)


# ------------------------------------------------------------------------ shape


def test_plain_csv_gives_the_documented_shape(tmp_path: Path) -> None:
    content = (
        b"course_id,user_login_name,action\n101,ann@contoso.com,enroll\n102,bob@contoso.com,\n"
    )
    path = write(tmp_path, content)

    sheet = load_sheet(str(path))

    assert sheet.path == path
    assert sheet.sha256 == hashlib.sha256(content).hexdigest()
    assert list(sheet.frame.columns) == [
        "row",
        "course_id",
        "user_login_name",
        "course_session_ids",
        "action",
    ]
    assert isinstance(sheet.frame.index, pd.RangeIndex)
    assert list(sheet.frame.index) == [0, 1]
    assert sheet.frame["row"].dtype == "int64"
    assert records(sheet) == [
        {
            "row": 2,
            "course_id": "101",
            "user_login_name": "ann@contoso.com",
            "course_session_ids": "",
            "action": "enroll",
        },
        {
            "row": 3,
            "course_id": "102",
            "user_login_name": "bob@contoso.com",
            "course_session_ids": "",
            "action": "",
        },
    ]
    assert sheet.extra_columns == ()
    assert dict(sheet.header_map) == {
        "course_id": "course_id",
        "user_login_name": "user_login_name",
        "action": "action",
    }


def test_every_cell_is_a_str_never_nan(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id,user_login_name,note\n1,,NA\n,b,null\n3,c,\n")

    frame = load_sheet(path).frame

    for column in ("course_id", "user_login_name", "course_session_ids", "note"):
        assert all(type(value) is str for value in frame[column])
    assert frame["note"].tolist() == ["NA", "null", ""]
    assert frame["course_id"].tolist() == ["1", "", "3"]


def test_all_optional_columns_come_in_canonical_order(tmp_path: Path) -> None:
    header = "Ignore Enrollment Flow,message,x,ignore_max_attendees,action,session_ids,upn,course"
    path = write(tmp_path, f"{header}\ntrue,hi,X,false,enroll,s1,u@x,c1\n")

    sheet = load_sheet(path)

    assert list(sheet.frame.columns) == ["row", *REQUIRED, *OPTIONAL, "x"]
    assert records(sheet)[0] == {
        "row": 2,
        "course_id": "c1",
        "user_login_name": "u@x",
        "course_session_ids": "s1",
        "action": "enroll",
        "message": "hi",
        "ignore_max_attendees": "false",
        "ignore_enrollment_flow": "true",
        "x": "X",
    }
    assert sheet.header_map["ignore_enrollment_flow"] == "Ignore Enrollment Flow"


def test_header_only_gives_zero_rows_with_all_columns(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id,user_login_name,note\n"))

    assert len(sheet.frame) == 0
    assert list(sheet.frame.columns) == [
        "row",
        "course_id",
        "user_login_name",
        "course_session_ids",
        "note",
    ]
    assert sheet.frame["row"].dtype == "int64"
    assert sheet.extra_columns == ("note",)


# ------------------------------------------------------------------------ encodings


def test_utf8_bom_is_not_part_of_the_first_header(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + "course_id,user_login_name\n1,zoë@x.com\n".encode())

    sheet = load_sheet(path)

    assert sheet.header_map["course_id"] == "course_id"
    assert records(sheet) == [
        {"row": 2, "course_id": "1", "user_login_name": "zoë@x.com", "course_session_ids": ""}
    ]


def test_utf8_bom_before_a_quoted_header(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b'"course_id","E-Mail"\r\n"1","a@x.com"\r\n')

    sheet = load_sheet(path)

    assert dict(sheet.header_map) == {"course_id": "course_id", "user_login_name": "E-Mail"}
    assert sheet.frame["user_login_name"].tolist() == ["a@x.com"]


def test_cp1252_bytes_are_decoded(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id,user_login_name,name\n1,zoe@x.com,Zoë\n".encode("cp1252"))

    sheet = load_sheet(path)

    assert sheet.frame["name"].tolist() == ["Zoë"]
    assert sheet.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_utf16_unicode_text_export_is_read(tmp_path: Path) -> None:
    text = "course_id\tuser_login_name\tname\r\n1\tzoe@x.com\tZoë\r\n"
    path = write(tmp_path, text.encode("utf-16"), name="unicode.txt")

    sheet = load_sheet(path)

    assert records(sheet) == [
        {
            "row": 2,
            "course_id": "1",
            "user_login_name": "zoe@x.com",
            "course_session_ids": "",
            "name": "Zoë",
        }
    ]


def test_byte_undefined_in_cp1252_is_reported_with_its_offset(tmp_path: Path) -> None:
    path = write(tmp_path, b"course_id,user_login_name\n1,a\x8db@x.com\n")

    message = error_of(path)

    assert message == (
        f"{path}: unknown text encoding: byte 0x8D at offset 29 (line 2) is neither UTF-8 "
        "nor Windows-1252; save the file as CSV UTF-8"
    )


def test_offset_counts_the_bom(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"course_id,user\n1,\x81\n")

    assert "byte 0x81 at offset 20 (line 2)" in error_of(path)


def test_trim_set_is_all_white_space_plus_invisibles() -> None:
    spaces = {chr(c) for c in range(0x110000) if chr(c).isspace()}

    assert set(loader._TRIM) == spaces | {"\u200b", "\ufeff"}


# ------------------------------------------------------------------------ delimiters


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    # Values hold the other candidates, so only the header can tell them apart.
    others = "".join(d for d in ",;\t|" if d != delimiter)
    lines = [["course_id", "user_login_name", "message"], ["1", "a@x.com", f'"x{others}y"']]
    path = write(tmp_path, "\n".join(delimiter.join(line) for line in lines) + "\n")

    sheet = load_sheet(path)

    assert sheet.frame["course_id"].tolist() == ["1"]
    assert sheet.frame["message"].tolist() == [f"x{others}y"]


def test_delimiters_inside_quoted_headers_do_not_count(tmp_path: Path) -> None:
    path = write(tmp_path, '"Course ID";"E-Mail";"a, b, c, d"\n1;a@x.com;"x, y"\n')

    sheet = load_sheet(path)

    assert dict(sheet.header_map) == {"course_id": "Course ID", "user_login_name": "E-Mail"}
    assert sheet.extra_columns == ("a, b, c, d",)
    assert sheet.frame["a, b, c, d"].tolist() == ["x, y"]


def test_delimiter_tie_in_header_is_broken_by_the_data(tmp_path: Path) -> None:
    # One comma and one semicolon in the header; the rows use semicolons.
    path = write(tmp_path, "course_id;user_login_name;a,b\n1;u@x;q\n2;v@x;r\n")

    sheet = load_sheet(path)

    assert sheet.extra_columns == ("a,b",)
    assert sheet.frame["user_login_name"].tolist() == ["u@x", "v@x"]


def test_delimiter_tie_with_no_evidence_falls_back_to_comma(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id,user_login_name,a;b;c\n")

    sheet = load_sheet(path)

    assert sheet.extra_columns == ("a;b;c",)
    assert len(sheet.frame) == 0


# ------------------------------------------------------------------------ headers


def test_aliases_map_to_canonical_names(tmp_path: Path) -> None:
    path = write(tmp_path, "Course ID,E-Mail,Session,Operation\n7,a@x.com,s1,enroll\n")

    sheet = load_sheet(path)

    assert dict(sheet.header_map) == {
        "course_id": "Course ID",
        "user_login_name": "E-Mail",
        "course_session_ids": "Session",
        "action": "Operation",
    }
    assert records(sheet) == [
        {
            "row": 2,
            "course_id": "7",
            "user_login_name": "a@x.com",
            "course_session_ids": "s1",
            "action": "enroll",
        }
    ]


@pytest.mark.parametrize(
    ("header", "canonical"),
    [
        ("COURSEID", "course_id"),
        ("course", "course_id"),
        ("User Login Name", "user_login_name"),
        ("login-name", "user_login_name"),
        ("Login", "user_login_name"),
        ("user", "user_login_name"),
        ("EMAIL", "user_login_name"),
        ("UPN", "user_login_name"),
        ("Course Session IDs", "course_session_ids"),
        ("course_session_id", "course_session_ids"),
        ("Session ID", "course_session_ids"),
        ("sessions", "course_session_ids"),
        ("Unenroll Message", "message"),
        ("IGNORE-MAX-ATTENDEES", "ignore_max_attendees"),
    ],
)
def test_each_alias_is_recognised(tmp_path: Path, header: str, canonical: str) -> None:
    columns = {"course_id": "course_id", "user_login_name": "user_login_name"}
    columns[canonical] = header
    path = write(tmp_path, ",".join(columns.values()) + "\n" + ",".join("v" for _ in columns))

    sheet = load_sheet(path)

    assert sheet.header_map[canonical] == header
    assert sheet.frame[canonical].tolist() == ["v"]


def test_missing_required_column_names_it_and_its_aliases(tmp_path: Path) -> None:
    path = write(tmp_path, "email,name\na@x.com,Ann\n")

    assert error_of(path) == (
        f"{path}: missing required column 'course_id' "
        '(accepted headers: course_id, courseid, course); row 1 has "email", "name"'
    )


def test_two_columns_for_one_canonical_name_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id,Email,Login\n1,a@x.com,a\n")

    assert error_of(path) == (
        f'{path}: columns "Email" (B) and "Login" (C) both mean user_login_name; keep one'
    )


def test_extra_columns_are_kept_in_input_order_with_duplicates_numbered(tmp_path: Path) -> None:
    path = write(tmp_path, "Dept,course_id,Note,user,Note,,Cost\nHR,1,a,u,b,,9\nIT,2,c,v,d,x,\n")

    sheet = load_sheet(path)

    assert sheet.extra_columns == ("Dept", "Note", "Note (2)", "column_F", "Cost")
    assert list(sheet.frame.columns) == [
        "row",
        "course_id",
        "user_login_name",
        "course_session_ids",
        "Dept",
        "Note",
        "Note (2)",
        "column_F",
        "Cost",
    ]
    assert sheet.frame["Note (2)"].tolist() == ["b", "d"]
    assert sheet.frame["column_F"].tolist() == ["", "x"]
    assert sheet.frame["Cost"].tolist() == ["9", ""]


def test_empty_header_over_an_empty_column_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id,user_login_name,,\n1,a,,\n2,b,,\n")

    sheet = load_sheet(path)

    assert sheet.extra_columns == ()
    assert len(sheet.frame) == 2


def test_column_letters_go_past_z() -> None:
    assert [loader._column_letter(i) for i in (0, 25, 26, 27, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
        "XFD",
    ]


# ------------------------------------------------------------------------ rows


def test_blank_lines_are_skipped_but_keep_their_row_numbers(tmp_path: Path) -> None:
    content = "course_id,user_login_name\n\n1,a\n , \n,\n\t\n2,b\n\n"
    sheet = load_sheet(write(tmp_path, content))

    assert sheet.frame["row"].tolist() == [3, 7]
    assert sheet.frame["user_login_name"].tolist() == ["a", "b"]


def test_blank_lines_before_the_header_shift_row_numbers(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "\r\n;;\r\ncourse_id;user\r\n1;a\r\n"))

    assert sheet.frame["row"].tolist() == [4]
    assert sheet.frame["course_id"].tolist() == ["1"]


def test_quoted_newline_counts_as_one_row(tmp_path: Path) -> None:
    content = (
        'course_id,user_login_name,message\n1,a,"two\nlines"\n2,b,"three\r\nmore\nlines"\n3,c,x\n'
    )
    sheet = load_sheet(write(tmp_path, content))

    assert sheet.frame["row"].tolist() == [2, 3, 4]
    assert sheet.frame["message"].tolist() == ["two\nlines", "three\r\nmore\nlines", "x"]


def test_cr_only_line_endings(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id,user\r1,a\r\r2,b\r"))

    assert sheet.frame["row"].tolist() == [2, 4]
    assert sheet.frame["course_id"].tolist() == ["1", "2"]


def test_short_records_are_padded(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id,user,action,note\n1,a\n2,b,enroll\n"))

    assert sheet.frame["action"].tolist() == ["", "enroll"]
    assert sheet.frame["note"].tolist() == ["", ""]


def test_long_record_is_marked_for_the_validator_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'course_id,user\n1,"a\nb"\n\n2,b,c\n3,c,  \n4;x,d\n')

    sheet = load_sheet(path)

    assert sheet.frame["row"].tolist() == [2, 4, 5, 6]
    assert sheet.frame["user_login_name"].tolist() == ["a\nb", "b", "c", "d"]
    # Cells beyond the header that are empty (or only white space) lose nothing.
    assert sheet.frame[loader.RAGGED_COLUMN].tolist() == [
        "",
        "row 4 has 3 cells, the header has 2: is there an unquoted comma in it?",
        "",
        "",
    ]


def test_long_record_message_names_the_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path, "course_id;user;note\n1;a;x\n2;b;Smith; Jr;;\n")

    sheet = load_sheet(path)

    assert sheet.frame[loader.RAGGED_COLUMN].tolist() == [
        "",
        "row 3 has 4 cells, the header has 3: is there an unquoted semicolon in it?",
    ]
    assert sheet.frame["note"].tolist() == ["x", "Smith"]


def test_rows_of_growing_width_are_all_marked(tmp_path: Path) -> None:
    rows = "".join(f"{i},u{i}{',x' * i}\n" for i in range(1, 30))
    sheet = load_sheet(write(tmp_path, "course_id,user\n" + rows))

    messages = sheet.frame[loader.RAGGED_COLUMN].tolist()
    assert len(messages) == 29
    assert (
        messages[-1] == "row 30 has 31 cells, the header has 2: is there an unquoted comma in it?"
    )


def test_unclosed_quote_names_the_row_it_opens(tmp_path: Path) -> None:
    path = write(tmp_path, 'course_id,user\n1,a\n\n2,"b\n3,c\n')

    assert error_of(path) == f'{path}: row 4: a quote (") opens a cell but is never closed'


def test_large_file_keeps_row_numbers(tmp_path: Path) -> None:
    # Over pandas' threshold for parsing a file in parallel chunks; blank lines and
    # quoted newlines must still come out at the right rows.
    lines = ["course_id,user_login_name,message"]
    expected: list[tuple[int, str, str]] = []
    for i in range(130_000):
        if i % 997 == 5:
            lines.append(",,")
            continue
        message = f"two\nlines {i}" if i % 1_003 == 7 else f"message number {i}"
        quoted = f'"{message}"' if "\n" in message else message
        lines.append(f"{i},user{i}@contoso.com,{quoted}")
        expected.append((len(lines), str(i), message))
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size > 6 * 1024 * 1024

    frame = load_sheet(path).frame

    got = list(zip(frame["row"], frame["course_id"], frame["message"], strict=True))
    assert got == expected


def test_file_changing_during_the_read_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "course_id,user\n1,a\n")
    real_read_csv = pd.read_csv

    def read_then_touch(*args: object, **kwargs: object) -> pd.DataFrame:
        frame = real_read_csv(*args, **kwargs)  # type: ignore[call-overload]
        path.write_bytes(b"course_id,user\n1,a\n2,b\n")
        return frame  # type: ignore[no-any-return]

    monkeypatch.setattr(pd, "read_csv", read_then_touch)

    assert error_of(path) == f"{path}: the file changed while it was being read; try again"


# ------------------------------------------------------------------------ trimming


def test_cells_are_trimmed_including_nbsp(tmp_path: Path) -> None:
    content = 'course_id,user_login_name,note\n  1\u00a0, a@x.com\t," in side "\n'
    sheet = load_sheet(write(tmp_path, content))

    assert records(sheet) == [
        {
            "row": 2,
            "course_id": "1",
            "user_login_name": "a@x.com",
            "course_session_ids": "",
            "note": "in side",
        }
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('course_id,user\r\na,"\nb"\r\n"x\r",y\r\n', [("a", "b"), ("x", "y")]),
        ('course_id\tuser\n"\t1"\t"b\t"\n', [("1", "b")]),
        ("course_id|user\n1 |\x0bb\n", [("1", "b")]),
    ],
)
def test_ascii_files_are_trimmed_at_every_kind_of_cell_edge(
    tmp_path: Path, content: str, expected: list[tuple[str, str]]
) -> None:
    frame = load_sheet(write(tmp_path, content)).frame

    assert list(zip(frame["course_id"], frame["user_login_name"], strict=True)) == expected


def test_trim_check_sees_a_space_on_a_scan_block_boundary() -> None:
    block = loader._TRIM_SCAN_BLOCK

    assert loader._needs_trim(b"x" * (block - 1) + b" ,y\n", ",")
    assert loader._needs_trim(b"x" * block + b"\n y\n", ",")
    assert not loader._needs_trim(b"x" * (block - 1) + b"a b,y\n", ",")


def test_zero_width_space_and_stray_bom_are_trimmed(tmp_path: Path) -> None:
    content = "course_id,user_login_name\n\u200b1\ufeff,\u2003a@x.com\u200b\n"
    sheet = load_sheet(write(tmp_path, content))

    assert sheet.frame[["course_id", "user_login_name"]].values.tolist() == [["1", "a@x.com"]]


def test_inner_spaces_survive_when_no_trim_is_needed(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id,user,message\n1,a,hello there world\n"))

    assert sheet.frame["message"].tolist() == ["hello there world"]


def test_headers_are_trimmed_before_matching(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "  Course ID ,\u00a0E-mail\u00a0, Note \n1,a,n\n"))

    assert dict(sheet.header_map) == {"course_id": "Course ID", "user_login_name": "E-mail"}
    assert sheet.extra_columns == ("Note",)


def test_csv_floats_stay_text(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id,user\n42.0,a\n007,b\n"))

    assert sheet.frame["course_id"].tolist() == ["42.0", "007"]


# ------------------------------------------------------------------------ xlsx


def write_xlsx(path: Path, rows: Sequence[Sequence[object]]) -> Path:
    """Write ``rows`` to the first sheet of a new workbook at ``path``."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


TWIN_ROWS = [
    ["Course ID", "E-Mail", "Session", "Note", "Note"],
    ["1", "ann@contoso.com", "s1", "first", "a"],
    [],
    ["2", " bob@contoso.com ", "", "", "b"],
    ["3", "cy@contoso.com", "s2;s3", "line\nbreak", ""],
]


def test_xlsx_twin_equals_the_csv(tmp_path: Path) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(TWIN_ROWS)
    from_csv = load_sheet(write(tmp_path, buffer.getvalue()))
    from_xlsx = load_sheet(write_xlsx(tmp_path / "twin.xlsx", TWIN_ROWS))

    pd.testing.assert_frame_equal(from_xlsx.frame, from_csv.frame)
    assert from_xlsx.extra_columns == from_csv.extra_columns == ("Note", "Note (2)")
    assert dict(from_xlsx.header_map) == dict(from_csv.header_map)
    assert from_csv.frame["row"].tolist() == [2, 4, 5]


def test_xlsx_values_are_rendered_as_text(tmp_path: Path) -> None:
    day, morning = dt.datetime(2026, 11, 27), dt.datetime(2026, 11, 27, 9)
    date, moment = dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, 13, 5, 7)
    rows: list[list[object]] = [
        ["course_id", "user", "float", "bool", "date", "datetime", "int", "error"],
        [42.0, "a@x", 3.5, True, day, morning, 7, "#N/A"],
        [1e16, "b@x", -0.25, False, date, moment, 0, "#REF!"],
    ]
    sheet = load_sheet(write_xlsx(tmp_path / "values.xlsx", rows))

    assert sheet.frame.drop(columns="row").to_dict("records") == [
        {
            "course_id": "42",
            "user_login_name": "a@x",
            "course_session_ids": "",
            "float": "3.5",
            "bool": "true",
            "date": "2026-11-27",
            "datetime": "2026-11-27T09:00:00",
            "int": "7",
            "error": "#N/A",
        },
        {
            "course_id": "10000000000000000",
            "user_login_name": "b@x",
            "course_session_ids": "",
            "float": "-0.25",
            "bool": "false",
            "date": "2026-01-02",
            "datetime": "2026-01-02T13:05:07",
            "int": "0",
            "error": "#REF!",
        },
    ]


def test_xlsx_rows_are_real_sheet_rows(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet["B3"], sheet["C3"] = "course", "user"
    sheet["B4"], sheet["C4"] = 5, "a"
    sheet["B9"], sheet["C9"] = 6, "b"
    sheet["E7"] = "   "  # white space only: a blank row
    path = tmp_path / "offset.xlsx"
    book.save(path)

    loaded = load_sheet(path)

    assert loaded.frame["row"].tolist() == [4, 9]
    assert loaded.frame["course_id"].tolist() == ["5", "6"]
    assert loaded.extra_columns == ()


def test_xlsx_times_durations_and_big_numbers_read_as_excel_shows_them(tmp_path: Path) -> None:
    rows: list[list[object]] = [
        ["course", "user", "time", "duration", "negative", "share"],
        [1, "a@x", dt.time(9, 30), dt.timedelta(hours=30, minutes=5), -3.0, 0.125],
    ]

    sheet = load_sheet(write_xlsx(tmp_path / "values.xlsx", rows))

    assert sheet.frame.iloc[0][["time", "duration", "negative", "share"]].tolist() == [
        "09:30:00",
        "30:05:00",
        "-3",
        "0.125",
    ]


def test_xlsx_reads_the_first_sheet_with_a_header_and_only_it(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.append(["course", "user"])
    first.append([1, "a"])
    second = book.create_sheet("Other")
    second.append(["x"])
    book.save(tmp_path / "two.xlsx")

    assert load_sheet(tmp_path / "two.xlsx").frame["user_login_name"].tolist() == ["a"]


def test_a_csv_that_is_really_an_xlsx_is_read_as_xlsx(tmp_path: Path) -> None:
    xlsx_path = write_xlsx(tmp_path / "real.xlsx", [["course_id", "upn"], [12.0, "a@x"]])
    disguised = write(tmp_path, xlsx_path.read_bytes(), name="export.csv")

    sheet = load_sheet(disguised)

    assert records(sheet) == [
        {"row": 2, "course_id": "12", "user_login_name": "a@x", "course_session_ids": ""}
    ]


def test_an_xlsx_that_is_really_csv_text_is_read_as_csv(tmp_path: Path) -> None:
    sheet = load_sheet(write(tmp_path, "course_id;user\n1;a\n", name="named.xlsx"))

    assert sheet.frame["user_login_name"].tolist() == ["a"]


# ------------------------------------------------------------------------ paths


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"

    assert error_of(path) == f"{path}: cannot read the file: No such file or directory"


def test_directory_is_a_load_error(tmp_path: Path) -> None:
    assert error_of(tmp_path) == (
        f"{tmp_path}: this is a folder, not a regular file;"
        " save the sheet as a file and give its path"
    )
