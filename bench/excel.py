"""A 100,000-row .xlsx checked offline: the tool against pandas reading it with calamine.

Target: ``batch-enroll validate --offline`` with its report, in at most 1.5x the
time of ``pandas.read_excel(engine="calamine")`` + ``to_csv`` of the same
workbook (both as fresh processes, so both pay their imports). The two
alternate three times; each side's median counts.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from common import CLI, OUT, Row, Spawned, log, sheet_path, spawn, table

ROWS = 100_000
RUNS = 3
MAX_RATIO = 1.5

_PANDAS_ROUND_TRIP = (
    "import sys, pandas as pd;"
    " pd.read_excel(sys.argv[1], engine='calamine').to_csv(sys.argv[2], index=False)"
)


def workbook_path(rows: int) -> Path:
    """Write (once) the bench sheet of ``rows`` rows as an .xlsx; return its path.

    Whole numbers go in as numbers, the way Excel keeps them, so the reader
    renders them back as text like a person typed them.
    """
    import openpyxl  # a dev dependency: only the bench and the tests write workbooks

    path = OUT / f"sheet-{rows}-extra.xlsx"
    if path.exists():
        return path
    source = sheet_path(rows, extra=True)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Hires")
    with source.open(newline="", encoding="utf-8") as handle:
        for number, cells in enumerate(csv.reader(handle)):
            sheet.append([int(c) if number and c.isdigit() else (c or None) for c in cells])
    tmp = path.with_name(path.name + ".tmp.xlsx")
    book.save(tmp)
    tmp.replace(path)
    return path


def _checked(process: Spawned, what: str) -> Spawned:
    # validate exits 1 when rows are invalid; this sheet has none, so anything but 0 is a fault.
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {process.returncode}): {process.stderr[-2000:]}")
    return process


def run(rows: int = ROWS) -> list[Row]:
    """Time both sides, alternating, on the same workbook."""
    log(f"excel: writing a {rows:,}-row .xlsx (once)")
    workbook = workbook_path(rows)
    ours: list[Spawned] = []
    bare: list[Spawned] = []
    for attempt in range(1, RUNS + 1):
        log(f"excel: pandas read_excel + to_csv, then validate --offline ({attempt}/{RUNS})")
        bare.append(
            _checked(
                spawn(
                    [
                        sys.executable,
                        "-c",
                        _PANDAS_ROUND_TRIP,
                        str(workbook),
                        str(OUT / "excel-pandas.csv"),
                    ],
                    timeout=300,
                ),
                "the pandas round trip",
            )
        )
        ours.append(
            _checked(
                spawn(
                    [
                        *CLI,
                        "validate",
                        str(workbook),
                        "--offline",
                        "--report",
                        str(OUT / "excel-report.csv"),
                    ],
                    timeout=300,
                ),
                "batch-enroll validate",
            )
        )
    our_time = statistics.median(p.wall_seconds for p in ours)
    bare_time = statistics.median(p.wall_seconds for p in bare)
    ratio = our_time / bare_time
    return [
        Row(
            scenario=f"validate --offline, {rows:,}-row .xlsx, with report",
            ours=f"{our_time:.2f} s",
            baseline=f"pandas read_excel (calamine) + to_csv: {bare_time:.2f} s",
            ratio=f"{ratio:.2f}x the time",
            target=f"<= {MAX_RATIO:g}x",
            met=ratio <= MAX_RATIO,
            data={
                "rows": rows,
                "ours_seconds": [p.wall_seconds for p in ours],
                "pandas_seconds": [p.wall_seconds for p in bare],
            },
        )
    ]


if __name__ == "__main__":
    print(table(run()))
