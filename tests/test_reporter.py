"""The reporter: results layout, formula neutralising, the summary and exit codes."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from batch_enroll.model import (
    ENROLLED,
    FAILED,
    RESOLVED_COLUMNS,
    RESULT_COLUMNS,
    WAITLISTED,
    RowResult,
)
from batch_enroll.reporter import (
    exit_code_for,
    neutralise,
    neutralise_cell,
    results_frame,
    safe_cells,
    safe_header,
    summarise,
    write_csv,
)
from batch_enroll.resolve import CourseInfo, describe
from batch_enroll.validator import check_offline


def checked(rows: list[dict[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(
        [{"row": n, "course_session_ids": "", **r} for n, r in enumerate(rows, start=2)]
    )
    return check_offline(frame)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=SUM(A1)", "'=SUM(A1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_formula_cells_are_neutralised_without_losing_the_value(cell: str, shown: str) -> None:
    assert neutralise(pd.Series([cell])).tolist() == [shown]


def test_results_keep_input_order_columns_and_extras(tmp_path: Path) -> None:
    frame = checked(
        [
            {"course_id": "1", "user_login_name": "a@contoso.com", "status": "x", "Dept": "=HR"},
            {"course_id": "#N/A", "user_login_name": "b@contoso.com", "status": "y", "Dept": "IT"},
            {"course_id": "2", "user_login_name": "c@contoso.com", "status": "z", "Dept": "Ops"},
        ]
    )
    results = {0: RowResult(0, ENROLLED, 201, "2026-11-27T10:00:00.000Z", "7", 1)}
    out = results_frame(frame, extra_columns=("status", "Dept"), results=results)
    path = tmp_path / "r.csv"
    write_csv(out, path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [*RESULT_COLUMNS, "input_status", "Dept", *RESOLVED_COLUMNS]
    assert [(r["row"], r["status"]) for r in rows] == [
        ("2", "enrolled"),
        ("3", "invalid"),
        ("4", "not_attempted"),
    ]
    assert rows[0]["Dept"] == "'=HR"
    assert rows[0]["input_status"] == "x"
    assert rows[0]["registration_date"] == "2026-11-27T10:00:00.000Z"


def test_an_earlier_outcome_wins_over_a_new_verdict_on_resume() -> None:
    frame = checked([{"course_id": "", "user_login_name": "a@contoso.com"}])
    assert frame.at[0, "status"] == "invalid"
    out = results_frame(frame, extra_columns=(), results={0: RowResult(0, ENROLLED, 201)})
    assert out.at[0, "status"] == ENROLLED


def test_header_only_results_are_just_the_header(tmp_path: Path) -> None:
    frame = check_offline(
        pd.DataFrame(
            {
                "row": pd.Series(dtype="int64"),
                "course_id": pd.Series(dtype=object),
                "user_login_name": pd.Series(dtype=object),
                "course_session_ids": pd.Series(dtype=object),
                "Note": pd.Series(dtype=object),
            }
        )
    )
    path = tmp_path / "r.csv"
    write_csv(results_frame(frame, extra_columns=("Note",), results={}), path)
    assert path.read_text(encoding="utf-8").splitlines() == [
        ",".join([*RESULT_COLUMNS, "Note", *RESOLVED_COLUMNS])
    ]


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ({ENROLLED: 3, "already_enrolled": 1, "duplicate": 2}, 0),
        ({ENROLLED: 3, "skipped_enrolled": 4, "unenrolled": 1}, 0),
        ({WAITLISTED: 2}, 0),
        ({ENROLLED: 3, "invalid": 1}, 1),
        ({ENROLLED: 3, FAILED: 1}, 1),
        ({"not_attempted": 1}, 1),
        ({}, 0),
    ],
)
def test_exit_codes(counts: dict[str, int], code: int) -> None:
    assert exit_code_for(counts) == code


SAF = "65c61b1a-04c1-46e6-9d6e-41576a0ce14f"
MORNING = "3f2b9c1e-0000-4000-8000-000000000001"


def resolved_frame() -> pd.DataFrame:
    frame = checked(
        [
            {"course_id": "{" + SAF.upper() + "}", "user_login_name": "a@contoso.com"},
            {"course_id": "SAF-101", "user_login_name": "b@contoso.com"},
            {"course_id": "101.0", "user_login_name": "c@contoso.com"},
        ]
    )
    # What resolving found: rows 2 and 3 name the same course, row 4 none.
    frame.loc[1, "_course"] = SAF
    frame.loc[[0, 1], "_sessions"] = MORNING
    frame.loc[2, ["status", "error_code"]] = ["invalid", "CourseNotFound"]
    info = CourseInfo(
        SAF,
        True,
        metadata={
            "Title": "Safety 101",
            "CourseSessions": [
                {"Id": MORNING, "Title": "Morning, Oslo", "StartDateLocal": "2026-12-01T09:00:00"}
            ],
        },
    )
    return describe(frame, {SAF: info})


def test_results_show_the_cell_as_written_and_what_it_became() -> None:
    frame = resolved_frame()
    frame["resolved_login_name"] = "i:0#.f|membership|a@contoso.com"
    out = results_frame(frame, extra_columns=(), results={})
    assert list(out.columns) == [*RESULT_COLUMNS, "resolved_login_name", *RESOLVED_COLUMNS]
    assert out["course_id"].tolist() == [SAF, "SAF-101", "101"]
    assert out["course_session_ids"].tolist() == [MORNING, MORNING, ""]
    assert out["lms_course_id"].tolist() == [SAF, SAF, ""]
    assert out["course_title"].tolist() == ["Safety 101", "Safety 101", ""]
    assert out.at[0, "session_titles"] == "Morning, Oslo (2026-12-01 09:00)"


def test_summary_counts_by_the_course_rows_resolved_to() -> None:
    out = results_frame(
        resolved_frame(), extra_columns=(), results={0: RowResult(0, WAITLISTED, 201)}
    )
    summary = summarise(
        out,
        command="run",
        input_path="in.csv",
        input_sha256="0",
        output="out.csv",
        started_at="",
        finished_at="",
        elapsed=1.0,
        exit_code=1,
    )
    assert summary.by_course[SAF] == {
        "title": "Safety 101",
        "written_as": sorted(["SAF-101", SAF]),
        "counts": {WAITLISTED: 1, "not_attempted": 1},
    }
    assert summary.by_course["101"]["counts"] == {"invalid": 1}
    assert summary.counts[WAITLISTED] == 1
    assert any("waiting list" in note for note in summary.notes)


def test_header_cells_are_neutralised_like_every_other_cell(tmp_path: Path) -> None:
    frame = checked(
        [
            {
                "course_id": "1",
                "user_login_name": "a@contoso.com",
                "=Notes": "=1+1",
                "@Manager": "x",
                "-Cost": "-3",
                "Plain": "+44",
            }
        ]
    )
    extras = ("=Notes", "@Manager", "-Cost", "Plain")
    out = results_frame(frame, extra_columns=extras, results={})
    path = tmp_path / "r.csv"
    write_csv(out, path)
    with path.open(newline="", encoding="utf-8") as handle:
        header, first = list(csv.reader(handle))
    extra = slice(len(RESULT_COLUMNS), len(RESULT_COLUMNS) + 4)
    assert header[extra] == ["'=Notes", "'@Manager", "'-Cost", "Plain"]
    assert first[extra] == ["'=1+1", "x", "'-3", "'+44"]
    assert safe_header(out) == header


def test_a_lone_formula_header_is_neutralised_too(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(pd.DataFrame({"=cmd|' /C calc'!A0": ["=2"]}), path)
    assert path.read_text(encoding="utf-8").splitlines() == ["'=cmd|' /C calc'!A0", "'=2"]


@pytest.mark.parametrize("cell", ["=SUM(A1)", "+1", "-2", "@cmd", "\tx", "\rx", "plain", "", "a=b"])
def test_one_cell_and_a_column_are_neutralised_by_the_same_rule(cell: str) -> None:
    assert neutralise_cell(cell) == neutralise(pd.Series([cell])).iloc[0]


def test_cells_are_text_with_the_row_number_kept_as_is() -> None:
    frame = pd.DataFrame({"row": [2, 3], "note": ["=x", "ok"]})
    assert safe_cells(frame) == [["2", "3"], ["'=x", "ok"]]


@pytest.mark.parametrize(
    "empty",
    [(), ("a",), ("b", "c"), ("a", "b"), ("c", "d"), ("a", "b", "c", "d"), ("b", "c", "d")],
)
def test_write_csv_writes_what_csv_writer_writes_around_empty_columns(
    tmp_path: Path, empty: tuple[str, ...]
) -> None:
    columns = {
        "a": ["x", "y, z", 'q"t'],
        "b": ["1", "", "3"],
        "c": ["", "", "line\nbreak"],
        "d": ["=SUM(A1)", "ok", ""],
    }
    frame = pd.DataFrame({k: ([""] * 3 if k in empty else v) for k, v in columns.items()})
    write_csv(frame, tmp_path / "out.csv")
    expected = tmp_path / "expected.csv"
    with expected.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(frame.columns)
        writer.writerows(
            ["'" + c if c[:1] in "=+-@\t\r" and c else c for c in row]
            for row in frame.itertuples(index=False)
        )
    assert (tmp_path / "out.csv").read_bytes() == expected.read_bytes()
