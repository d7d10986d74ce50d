"""Sheets as people keep them: the header row, the sheet, header cells, through loader and CLI.

Workbooks are written here with openpyxl, which can hide sheets and wrap cells;
each case has a CSV twin where CSV can say the same thing.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_enroll.cli import main
from batch_enroll.loader import HEADER_SEARCH_ROWS, LoadError, Sheet, load_sheet

Rows = Sequence[Sequence[object]]

# A title, a note, an empty row, then a header with a wrapped and a padded cell.
HR_ROWS: list[list[object]] = [
    ["Onboarding December 2026"],
    ["Note: send to IT, by Friday"],
    [],
    ["Course\nID", "\u00a0E-mail  ", "Start\n  date", "Manager"],
    [7, "ann@contoso.com", "2026-12-01", "kay@contoso.com"],
    [],
    [8, "bob@contoso.com", "2026-12-02", ""],
]


def csv_file(path: Path, rows: Rows) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def workbook(path: Path, sheets: dict[str, Rows], *, hidden: Sequence[str] = ()) -> Path:
    """Write one sheet per entry, in order; those named in ``hidden`` are hidden."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
        if title in hidden:
            sheet.sheet_state = "hidden"
    book.save(path)
    return path


def error_of(path: Path, **kwargs: str) -> str:
    with pytest.raises(LoadError) as caught:
        load_sheet(path, **kwargs)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) <= 200, message
    return message


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def data_of(sheet: Sheet) -> list[tuple[int, str, str]]:
    frame = sheet.frame
    return list(zip(frame["row"], frame["course_id"], frame["user_login_name"], strict=True))


# ------------------------------------------------------------------ the header row


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_title_note_and_empty_rows_above_the_header_are_skipped(tmp_path: Path, kind: str) -> None:
    path = (
        csv_file(tmp_path / "hires.csv", HR_ROWS)
        if kind == "csv"
        else workbook(tmp_path / "hires.xlsx", {"Hires": HR_ROWS})
    )

    sheet = load_sheet(path)

    assert sheet.header_row == 4
    assert sheet.skipped_rows == (1, 2)
    # Row numbers are the spreadsheet's: the empty row 6 is no data row, but counts.
    assert data_of(sheet) == [(5, "7", "ann@contoso.com"), (7, "8", "bob@contoso.com")]
    assert dict(sheet.header_map) == {"course_id": "Course ID", "user_login_name": "E-mail"}
    assert sheet.extra_columns == ("Start date", "Manager")
    assert sheet.frame["Start date"].tolist() == ["2026-12-01", "2026-12-02"]
    assert "header on row 4; rows 1-3 skipped" in sheet.notes[0].lower()


def test_csv_and_xlsx_twins_with_title_rows_read_the_same(tmp_path: Path) -> None:
    from_csv = load_sheet(csv_file(tmp_path / "hires.csv", HR_ROWS))
    from_xlsx = load_sheet(workbook(tmp_path / "hires.xlsx", {"Hires": HR_ROWS}))

    pd.testing.assert_frame_equal(from_csv.frame, from_xlsx.frame)


def test_a_header_on_row_1_adds_no_note(tmp_path: Path) -> None:
    sheet = load_sheet(csv_file(tmp_path / "plain.csv", [["course", "user"], [1, "a@x.com"]]))

    assert (sheet.header_row, sheet.skipped_rows, sheet.notes) == (1, (), ())
    assert sheet.sheet_name == ""


def test_a_row_naming_only_one_required_column_is_not_the_header(tmp_path: Path) -> None:
    rows = [["Course", "December"], ["course", "user"], [1, "a@x.com"]]

    sheet = load_sheet(csv_file(tmp_path / "s.csv", rows))

    assert sheet.header_row == 2
    assert data_of(sheet) == [(3, "1", "a@x.com")]


def test_the_header_is_found_in_the_last_searched_row_and_not_after(tmp_path: Path) -> None:
    notes = [[f"note {n}"] for n in range(1, HEADER_SEARCH_ROWS)]
    found = csv_file(tmp_path / "found.csv", [*notes, [], ["course", "user"], [1, "a@x.com"]])
    too_low = csv_file(
        tmp_path / "low.csv", [*notes, ["one more note"], ["course", "user"], [1, "a@x.com"]]
    )

    # Empty rows do not count towards the twenty.
    assert load_sheet(found).header_row == HEADER_SEARCH_ROWS + 1
    message = error_of(too_low)
    assert f"(looked at rows 1-{HEADER_SEARCH_ROWS})" in message
    assert 'row 1 has "note 1"' in message


def test_a_header_missing_its_user_column_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the path as a person types it, not pytest's long one
    path = csv_file(Path("s.csv"), [["Hires"], ["Course ID", "Name"], [1, "Ann"]])

    message = error_of(path)

    assert message == (
        f"{path}: missing required column 'user_login_name' (accepted headers: user_login_name,"
        ' userloginname, login_name, login, user, email, e-mail, upn); row 2 has "Course ID",'
        ' "Name"'
    )


def test_a_long_list_of_headers_is_cut_with_and_n_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    header = [f"Department cost centre {n}" for n in range(40)]
    path = csv_file(Path("wide.csv"), [header, ["x"] * 40])

    message = error_of(path)

    assert message.endswith('"Department cost centre 2" and 37 more'), message
    assert '"Department cost centre 0"' in message


def test_a_very_long_path_still_gives_one_short_line(tmp_path: Path) -> None:
    folder = tmp_path / ("deep" * 40)
    folder.mkdir()
    path = csv_file(folder / "s.csv", [["a", "b"], [1, 2]])

    message = error_of(path)

    assert message.startswith(str(path)[:100])
    assert len(message) == 200


def test_two_headers_meaning_one_column_keep_the_message_short(tmp_path: Path) -> None:
    long = "Course " + "x" * 300
    path = csv_file(tmp_path / "s.csv", [["course_id", "user", long.replace("x", "")], [1, "a", 2]])
    assert "both mean course_id" in error_of(path)
    path = csv_file(tmp_path / "t.csv", [["course", "user", "c o u r s e"], [1, "a", 2]])
    assert error_of(path) == (
        f'{path}: columns "course" (A) and "c o u r s e" (C) both mean course_id; keep one'
    )


def test_header_cells_with_breaks_nbsp_and_space_runs_read_as_one_space(tmp_path: Path) -> None:
    header = [
        "Course\r\nID",
        "User\u00a0\u00a0Login\tName",
        "Start \n\n date",
        " Cost\u2003centre ",
    ]
    path = csv_file(tmp_path / "s.csv", [header, [1, "a@x.com", "d", "c"]])

    sheet = load_sheet(path)

    assert dict(sheet.header_map) == {
        "course_id": "Course ID",
        "user_login_name": "User Login Name",
    }
    assert sheet.extra_columns == ("Start date", "Cost centre")


# ------------------------------------------------------------------ the sheet


def test_an_instructions_sheet_is_passed_over(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {"Instructions": [["Fill in the Hires sheet"]], "Hires": HR_ROWS},
    )

    sheet = load_sheet(path)

    assert sheet.sheet_name == "Hires"
    assert sheet.passed_over == ("Instructions",)
    assert sheet.sheet_names == ("Instructions", "Hires")
    assert sheet.notes == (
        'Read sheet "Hires" (2 of 2); header on row 4; rows 1-3 skipped',
        'Passed over sheet "Instructions": no header in the first 20 rows',
    )


def test_a_hidden_sheet_is_read_only_when_asked_for(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            "Lists": [["course", "user"], [99, "hidden@x.com"]],
            "Hires": [["course", "user"], [1, "a@x.com"]],
        },
        hidden=["Lists"],
    )

    default = load_sheet(path)
    asked = load_sheet(path, sheet="Lists")

    assert default.sheet_name == "Hires"
    assert default.hidden_sheets == ("Lists",)
    assert default.other_sheets == ()  # a hidden sheet is not offered
    assert data_of(asked) == [(2, "99", "hidden@x.com")]
    assert asked.notes == ('Read sheet "Lists" (1 of 2, hidden)',)


def test_two_data_sheets_read_the_first_and_name_the_other(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            "December": [["course", "user"], [1, "dec@x.com"]],
            "January": [["Hires"], ["course", "user"], [2, "jan@x.com"]],
        },
    )

    sheet = load_sheet(path)

    assert data_of(sheet) == [(2, "1", "dec@x.com")]
    assert sheet.other_sheets == ("January",)
    assert sheet.notes[-1] == (
        'Sheet "January" also holds a header; read another with --sheet NAME or --sheet N'
    )


def test_sheet_by_name_in_any_case_and_by_number(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            "December": [["course", "user"], [1, "dec@x.com"]],
            "January": [["course", "user"], [2, "jan@x.com"]],
        },
    )

    assert load_sheet(path, sheet="January").sheet_name == "January"
    assert load_sheet(path, sheet=" january ").sheet_name == "January"
    assert load_sheet(path, sheet="2").sheet_name == "January"
    assert load_sheet(path, sheet="1").sheet_name == "December"


def test_a_sheet_named_like_a_number_wins_over_the_position(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            "2025": [["course", "user"], [1, "old@x.com"]],
            "1": [["course", "user"], [2, "named-one@x.com"]],
        },
    )

    assert data_of(load_sheet(path, sheet="1")) == [(2, "2", "named-one@x.com")]
    assert data_of(load_sheet(path, sheet="2")) == [(2, "2", "named-one@x.com")]


def test_a_missing_sheet_names_the_sheets_there_are(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {"Instructions": [["x"]], "Hires": HR_ROWS, "Lists": [["y"]]},
        hidden=["Lists"],
    )

    for wanted in ("Hirse", "4", "0"):
        assert error_of(path, sheet=wanted) == (
            f'{path}: no sheet "{wanted}" (by name or number); the sheets are "Instructions",'
            ' "Hires", "Lists (hidden)"'
        )


def test_a_sheet_asked_for_without_a_header_says_so(tmp_path: Path) -> None:
    path = workbook(tmp_path / "hr.xlsx", {"Instructions": [["Read me"]], "Hires": HR_ROWS})

    assert error_of(path, sheet="Instructions") == (
        f"{path} (sheet \"Instructions\"): missing required columns 'course_id' and"
        " 'user_login_name' (looked at row 1); row 1 has \"Read me\""
    )


def test_no_sheet_with_a_header_names_the_sheets_looked_at(tmp_path: Path) -> None:
    path = workbook(tmp_path / "hr.xlsx", {"Read me": [["a"]], "Lists": [["b", "c"]]})

    assert error_of(path) == (
        f"{path}: no sheet has a header row naming a course and a user column in its first 20"
        ' rows (sheets "Read me", "Lists")'
    )


def test_sheet_on_a_csv_file(tmp_path: Path) -> None:
    path = csv_file(tmp_path / "s.csv", [["course", "user"], [1, "a@x.com"]])

    assert len(load_sheet(path, sheet="1").frame) == 1
    assert "this is a CSV file, which has only one" in error_of(path, sheet="Hires")


# ------------------------------------------------------------------ through the CLI


def test_validate_prints_what_was_read_and_keeps_row_numbers(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {"Instructions": [["Read me"]], "Hires": HR_ROWS, "Old": [["course", "user"]]},
    )
    report, summary = tmp_path / "report.csv", tmp_path / "summary.json"

    result = invoke(
        "validate", str(path), "--offline", "--report", str(report), "--summary-json", str(summary)
    )

    assert result.exit_code == 0, result.output
    assert 'Read sheet "Hires" (2 of 3); header on row 4; rows 1-3 skipped' in result.output
    assert 'Sheet "Old" also holds a header; read another with --sheet' in result.output
    with report.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row"], r["course_id"], r["Start date"]) for r in rows] == [
        ("5", "7", "2026-12-01"),
        ("7", "8", "2026-12-02"),
    ]
    assert any("header on row 4" in note for note in json.loads(summary.read_text())["notes"])


@pytest.mark.parametrize("option", [["--sheet", "Old"], ["--sheet", "3"]])
def test_validate_reads_the_sheet_asked_for(tmp_path: Path, option: list[str]) -> None:
    path = workbook(
        tmp_path / "hr.xlsx",
        {
            "Instructions": [["Read me"]],
            "Hires": HR_ROWS,
            "Old": [["course", "user"], [3, "c@x.co"]],
        },
    )
    report = tmp_path / "report.csv"

    result = invoke("validate", str(path), "--offline", "--report", str(report), *option)

    assert result.exit_code == 0, result.output
    assert 'Read sheet "Old" (3 of 3)' in result.output
    assert report.read_text(encoding="utf-8").splitlines()[1].startswith("2,3,c@x.co,")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_missing_sheet_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    path = workbook(tmp_path / "hr.xlsx", {"Hires": HR_ROWS})
    extra = ["--api-key", "k", "--base-url", "http://127.0.0.1:9"] if command == "run" else []

    result = (
        invoke(command, str(path), "--offline", "--sheet", "Nope", *extra)
        if (command == "validate")
        else invoke(command, str(path), "--sheet", "Nope", *extra)
    )

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f'batch-enroll: error: {path}: no sheet "Nope" (by name or number); the sheets are "Hires"'
    ]


# ------------------------------------------------------------------ property

_title_cell = st.text(
    alphabet=st.sampled_from(list("abcdefgh ,;:\"'\n\u00a0.-")), max_size=12
).filter(lambda text: _loader_key(text) not in _ALIAS_KEYS)


def _loader_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_ALIAS_KEYS = {"course", "courseid", "user", "email", "login", "upn", "loginname"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    titles=st.lists(st.lists(_title_cell, min_size=0, max_size=4), max_size=HEADER_SEARCH_ROWS - 1),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_any_rows_above_the_header_are_skipped_and_rows_keep_their_numbers(
    titles: list[list[str]], delimiter: str
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerows(titles)
    writer.writerows(
        [["Course ID", "E-mail", "Note"], ["1", "a@x.com", "n1"], ["2", "b@x.com", ""]]
    )
    header_row = len(titles) + 1

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        sheet = load_sheet(path)

    assert sheet.header_row == header_row
    assert data_of(sheet) == [(header_row + 1, "1", "a@x.com"), (header_row + 2, "2", "b@x.com")]
    assert sheet.frame["Note"].tolist() == ["n1", ""]


# ------------------------------------------------------------------ other workbook formats

CORPUS = Path(__file__).resolve().parent / "hostile"


def test_a_legacy_xls_hides_and_shows_sheets_like_an_xlsx() -> None:
    path = CORPUS / "legacy_hires.xls"

    default = load_sheet(path)
    hidden = load_sheet(path, sheet="Lists")

    assert default.hidden_sheets == ("Lists",)
    assert data_of(default) == [(4, "7", "ann@contoso.com")]
    assert data_of(hidden) == [(2, "9", "lists@contoso.com")]


def test_an_opendocument_spreadsheet_by_number() -> None:
    sheet = load_sheet(CORPUS / "opendocument_hires.ods", sheet="2")

    assert (sheet.sheet_name, sheet.header_row) == ("Hires", 3)
    assert data_of(sheet) == [(4, "7", "ann@contoso.com")]


def test_a_workbook_that_unpacks_too_large_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_enroll import workbook as reader

    path = workbook(tmp_path / "hr.xlsx", {"Hires": HR_ROWS})
    monkeypatch.setattr(reader, "_MAX_UNPACKED", 1 << 10)  # a real bomb is too slow to build

    message = error_of(path)

    assert "bytes, more than the 1,024 bytes a sheet can be read from; save it as CSV" in message
