"""For any sheet: exactly one result row per data row, in input order, none lost or added."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_enroll import RunOptions, run_sheet
from batch_enroll.simulator import Catalog, create_app, load_catalog
from tests.conftest import FULL_KEY, SAMPLE_CATALOG

CATALOG: Catalog = load_catalog(SAMPLE_CATALOG)

courses = st.sampled_from(
    [
        "SAF-101",
        "workplace safety basics",
        "101.0",
        "FLT-201",
        "CUS-300",
        "{C5505FEC-6BEA-4400-8961-ED16F3B27CA6}",
        "XLS-200",
        "DEV-100",
        "SAF-999",
        "",
        "#N/A",
        "=1+1",
    ]
)
logins = st.sampled_from(
    [
        "liam.patel@contoso.com",
        "noah.kim@contoso.com",
        "i:0#.f|membership|sofia.garcia@contoso.com",
        "ghost@contoso.com",
        "kay smith@contoso.com",
        "",
        "#N/A",
        "bea8e523-eadb-4441-a38e-8073a99db125",
    ]
)
sessions = st.sampled_from(
    [
        "",
        "592dbabc-4fcb-4c80-8095-50b6e2a5cc99",
        "Morning, Bergen",
        "2028-03-06 13:00",
        "2028-03-06",
        "Part 1: Listening; Part 2: Difficult calls",
        "Full series",
        "not a session",
    ]
)
# Any printable text, with the characters that trouble CSV; NUL bytes are refused by design.
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('\n\t",;|'),
    max_size=12,
)
row = st.one_of(
    st.tuples(courses, logins, sessions, free_text),
    st.just(("", "", "", "")),  # a blank line in the sheet
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rows=st.lists(row, max_size=25))
def test_results_hold_one_row_per_data_row_in_order(rows: list[tuple[str, str, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sheet = Path(tmp) / "sheet.csv"
        with sheet.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["course_id", "user_login_name", "course_session_ids", "note"])
            writer.writerows(rows)
        app = create_app(CATALOG)
        out = Path(tmp) / "results.csv"
        summary = run_sheet(
            sheet,
            out=out,
            options=RunOptions(
                base_url="http://lms.test",
                api_key=FULL_KEY,
                transport=httpx.ASGITransport(app=app),
                rate=10_000.0,
            ),
        )
        with out.open(newline="", encoding="utf-8") as handle:
            got = list(csv.DictReader(handle))
    expected_rows = [n for n, cells in enumerate(rows, start=2) if any(c.strip() for c in cells)]
    assert [int(r["row"]) for r in got] == expected_rows
    assert summary.rows == len(expected_rows)
    assert all(r["status"] != "not_attempted" for r in got)
    # Nobody enrolled twice, and every enrolled row is one LMS365 enrollment.
    assert all(count == 1 for count in app.creations.values())
    assert sum(r["status"] == "enrolled" for r in got) == app.stats.to_dict()["enrollments_created"]
