"""The whole-column forms of the cell rules agree with the per-cell forms, cell for cell."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_enroll import validator
from batch_enroll.client import login_key, login_keys
from batch_enroll.ids import (
    course_key,
    course_keys,
    fold,
    folds,
    parse_guid,
    session_guids,
    session_guids_column,
)
from batch_enroll.validator import _LOGIN, check_offline, fullmatches

LOGINS = [
    "ann@contoso.com",
    "Ann@Contoso.COM",
    "  ann@contoso.com\t",
    "i:0#.f|membership|ann@contoso.com",
    "I:0#.F|MEMBERSHIP|Ann@Contoso.com",
    "i:0#.F|Membership|ann@contoso.com",
    " \u00a0I:0#.f|membership|ann@contoso.com ",
    "i:0#.f|membership|i:0#.f|membership|ann@contoso.com",
    "c:0t.c|tenant|6f2ac0d4-0000-4000-8000-000000000001",
    "C:0-.F|ROLEMANAGER|Spectrumgroup",
    "Sales Team",
    "sales-team",
    "O'Brien&Co",
    "ann @contoso.com",
    "ann@contoso.com\nbob@contoso.com",
    "\n",
    "",
    " ",
    "#N/A",
    "membership|ann@contoso.com",
    "ÅSA@Örebro.SE",
    "İstanbul@example.com",
    "ΟΔΥΣΣΕΥΣ@example.gr",
    "ann@contoso",
    "ann@@contoso.com",
    "a|b|c",
    "i:0#.f|membership|",
]


def _column(cells: list[str]) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(cells, dtype=object)


def test_login_keys_agree_with_login_key_on_varied_logins() -> None:
    assert login_keys(_column(LOGINS)).tolist() == [login_key(cell) for cell in LOGINS]


def test_login_keys_drop_the_claims_prefix_in_any_case() -> None:
    keys = login_keys(_column(["I:0#.F|Membership|Ann@X.com", " ann@x.com ", "Sales Team"]))
    assert keys.tolist() == ["ann@x.com", "ann@x.com", "sales team"]


def test_fullmatches_agree_with_fullmatch_on_varied_logins() -> None:
    for cells in (LOGINS, LOGINS[::-1], LOGINS[13:], ["bad cell"], ["ok@x.com"], []):
        expected = [_LOGIN.fullmatch(cell) is not None for cell in cells]
        assert fullmatches(_LOGIN, _column(cells)).tolist() == expected


# Pieces rather than characters, so claims prefixes in any case turn up often.
login_text = st.lists(
    st.sampled_from(
        [*"aB9@.|:#-_'& \t\n\u00a0İΣ", "i:0#.f|membership|", "I:0#.F|MEMBERSHIP|", "@x.com"]
    ),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(login_text, max_size=20))
def test_the_column_forms_agree_with_the_cell_forms(cells: list[str]) -> None:
    assert login_keys(_column(cells)).tolist() == [login_key(cell) for cell in cells]
    expected = [_LOGIN.fullmatch(cell) is not None for cell in cells]
    assert fullmatches(_LOGIN, _column(cells)).tolist() == expected


def test_fullmatches_take_any_pattern_that_never_matches_a_line_break() -> None:
    digits = re.compile(r"[0-9]+|x")
    cells = ["12", "", "1a", "x", "3\n4", "007"]
    assert fullmatches(digits, _column(cells)).tolist() == [True, False, False, True, False, True]


def test_check_offline_gives_each_row_its_login_verdict_and_key() -> None:
    frame = pd.DataFrame(
        {
            "row": [2, 3, 4, 5, 6],
            "course_id": ["101"] * 5,
            "user_login_name": [
                "I:0#.F|Membership|Ann@X.com",
                "bob smith@x.com",
                "not|a login",
                "ann@x.com",
                "Bad|Login",
            ],
            "course_session_ids": ["", "", "", "", ""],
        }
    )
    checked = check_offline(frame)
    assert checked["status"].tolist() == ["ok", "invalid", "invalid", "duplicate", "invalid"]
    assert checked["error_message"][1] == 'the login name "bob smith@x.com" contains spaces'
    assert checked["error_message"][2] == 'the login name "not|a login" contains spaces'
    assert checked["error_message"][4].startswith('"Bad|Login" is not an e-mail address')
    assert checked["_login_key"][0] == checked["_login_key"][3] == "ann@x.com"


G1 = "6F2AC0D4-1111-4000-8000-00000000000A"
G2 = "6f2ac0d4-2222-4000-8000-00000000000b"
SESSION_CELLS = [
    "",
    "  ",
    G1,
    f"{{{G1}}}",
    f"{{{G1}",
    f"{G1}}}",
    f"{G1};{G2}",
    f" {G1} , {G2} | {G1} ",
    f"{G1}\n{G2}",
    f"{G1}\r\n{{{G2}}}",
    f";;{G2};",
    f"{G1}{G2}",
    f"{{{G1}}}{{{G2}}}",
    f"{G1};Morning",
    "Morning, Oslo",
    "2027-03-01 09:00",
    f"{G1}\u00a0{G2}",
    "#N/A",
    G1[:-1],
    G1 + "0",
]


def _guids_by_cell(cells: list[str]) -> tuple[list[bool], list[str]]:
    found = [session_guids(cell) for cell in cells]
    return [ids is not None for ids in found], [";".join(ids or []) for ids in found]


def test_session_guids_column_agrees_with_session_guids() -> None:
    for cells in (SESSION_CELLS, SESSION_CELLS[::-1], SESSION_CELLS[11:], []):
        only, joined = session_guids_column(_column(cells))
        assert (only.tolist(), joined.tolist()) == _guids_by_cell(cells)


session_text = st.lists(
    st.sampled_from([G1, G2, G1.lower(), "{", "}", ";", ",", "|", " ", "\n", "\t", "x", "-"]),
    max_size=8,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(session_text, max_size=12))
def test_session_columns_agree_with_session_cells(cells: list[str]) -> None:
    only, joined = session_guids_column(_column(cells))
    assert (only.tolist(), joined.tolist()) == _guids_by_cell(cells)


def test_folds_agree_with_fold() -> None:
    cells = ["SAF-101", " saf-101 ", "Safety  first\tA", "STRASSE", "Straße", "", " \n ", "ΣΑΣ"]
    assert folds(_column(cells)).tolist() == [fold(cell) for cell in cells]


def test_a_duplicate_is_found_among_rows_of_distinct_people() -> None:
    frame = pd.DataFrame(
        {
            "row": [2, 3, 4, 5, 6],
            "course_id": ["SAF-101", "SAF-101", " saf-101 ", "SAF-101", "SAF-102"],
            "user_login_name": [
                "ann@x.com",
                "bob@x.com",
                "I:0#.F|Membership|ANN@x.com",
                "cy@x.com",
                "ann@x.com",
            ],
            "course_session_ids": [f"{G1};{G2}", "", f"{G2},{{{G1}}}", "", f"{G1};{G2}"],
        }
    )
    checked = check_offline(frame)
    assert checked["status"].tolist() == ["ok", "ok", "duplicate", "ok", "ok"]
    assert checked["error_message"][2] == "the same course, user and sessions as row 2"


def test_course_keys_agree_with_course_key_and_parse_guid() -> None:
    cells = [
        "101",
        " 101.0 ",
        "-7.00",
        "+3.0",
        "101.5",
        "1.0e3",
        "SAF-101",
        "  Safety  first ",
        G1,
        f" {{{G1}}} ",
        f"{{{G1}",
        f"{G1}}}",
        f"{{{{{G1}}}}}",
        "",
        "\u00a0",
        "#N/A",
        "100.0",
    ]
    for column in (cells, cells[::-1], []):
        keys, guids = course_keys(_column(column))
        assert keys.tolist() == [course_key(cell) for cell in column]
        assert guids.tolist() == [parse_guid(course_key(cell)) or "" for cell in column]


def test_a_column_of_distinct_cells_gets_the_verdicts_a_repeating_one_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = 12_000
    logins = [f"{'I:0#.F|Membership|' if i % 3 == 0 else ''}U{i}@x.com" for i in range(rows)]
    logins[5], logins[7000], logins[11_000] = "bad login", "", "U11@X.COM"
    frame = pd.DataFrame(
        {
            "row": range(2, rows + 2),
            "course_id": [("SAF-101", f"{{{G1}}}", " 101.0 ")[i % 3] for i in range(rows)],
            "user_login_name": logins,
            "course_session_ids": [(f"{G2};{G1}", "", f"Room {i}")[i % 3] for i in range(rows)],
        }
    )
    frame.loc[11_000, "course_session_ids"] = " room  11"  # row 13's, as retyped
    sampled = check_offline(frame.copy())
    assert sampled["status"][11_000] == "duplicate"
    assert sampled["error_message"][11_000].endswith("as row 13")
    assert (sampled["error_code"][5], sampled["error_code"][7000]) == (
        "InvalidLogin",
        "MissingLogin",
    )
    monkeypatch.setattr(validator, "_SAMPLE", 10**9)  # always find the distinct cells first
    pd.testing.assert_frame_equal(sampled, check_offline(frame.copy()))


def test_flag_cells_are_read_as_parse_bool_reads_them() -> None:
    cells = ["true", " YES ", "y", "1", "x", "False", "no", "N", "0", "", "maybe", "ja", "2"]
    frame = pd.DataFrame(
        {
            "row": range(2, len(cells) + 2),
            "course_id": [str(100 + i) for i in range(len(cells))],
            "user_login_name": ["ann@x.com"] * len(cells),
            "course_session_ids": [""] * len(cells),
            "ignore_max_attendees": cells,
        }
    )
    checked = check_offline(frame)
    invalid = [code == "InvalidFlag" for code in checked["error_code"]]
    assert invalid == [validator.parse_bool(cell) is None for cell in cells]
    assert invalid.count(True) == 3
