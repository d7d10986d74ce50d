"""A million-row sheet checked offline: the tool against pandas doing nothing but I/O.

Target: ``batch-enroll validate --offline`` with its report, in at most twice
the time of a bare pandas ``read_csv`` + ``to_csv`` round trip of the same file
(both as fresh processes, so both pay their imports), and a peak resident set
of at most 1 GiB. The two alternate three times; each side's median counts.

Two sheets: ``run`` the one whose people repeat across the courses, and
``run_distinct`` one where every login is distinct and courses and sessions are
written as HR writes them, so every per-distinct-cell cost is paid per row.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from common import CLI, OUT, Row, Spawned, distinct_sheet_path, log, sheet_path, spawn, table

ROWS = 1_000_000
RUNS = 3
MAX_RATIO = 2.0
MAX_RSS = 1 << 30

_PANDAS_ROUND_TRIP = (
    "import sys, pandas as pd; pd.read_csv(sys.argv[1]).to_csv(sys.argv[2], index=False)"
)


def _checked(process: Spawned, what: str) -> Spawned:
    # validate exits 1 when rows are invalid; this sheet has none, so anything but 0 is a fault.
    if process.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {process.returncode}): {process.stderr[-2000:]}")
    return process


def _measure(sheet: Path, *, rows: int, what: str) -> Row:
    """Time both sides on ``sheet``, alternating, and say whether the target is met."""
    ours: list[Spawned] = []
    bare: list[Spawned] = []
    for attempt in range(1, RUNS + 1):
        log(f"million{what}: pandas round trip, then validate --offline ({attempt}/{RUNS})")
        bare.append(
            _checked(
                spawn(
                    [sys.executable, "-c", _PANDAS_ROUND_TRIP, str(sheet), str(OUT / "pandas.csv")],
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
                        str(sheet),
                        "--offline",
                        "--report",
                        str(OUT / "million-report.csv"),
                        "--summary-json",
                        str(OUT / "million-summary.json"),
                    ],
                    timeout=300,
                ),
                "batch-enroll validate",
            )
        )
    our_time = statistics.median(p.wall_seconds for p in ours)
    bare_time = statistics.median(p.wall_seconds for p in bare)
    peak = max(p.max_rss_bytes for p in ours)
    ratio = our_time / bare_time
    log(f"million{what}: {ratio:.2f}x the time, peak {peak / 2**20:.0f} MiB")
    return Row(
        scenario=f"validate --offline, {rows:,} rows{what}, with report",
        ours=f"{our_time:.2f} s, peak {peak / 2**20:.0f} MiB",
        baseline=f"pandas read_csv + to_csv: {bare_time:.2f} s",
        ratio=f"{ratio:.2f}x the time",
        target=f"<= {MAX_RATIO:g}x, <= 1 GiB",
        met=ratio <= MAX_RATIO and peak <= MAX_RSS,
        data={
            "rows": rows,
            "sheet": sheet.name,
            "ours_seconds": [p.wall_seconds for p in ours],
            "ours_cpu_seconds": [p.cpu_seconds for p in ours],
            "ours_peak_bytes": [p.max_rss_bytes for p in ours],
            "pandas_seconds": [p.wall_seconds for p in bare],
            "pandas_peak_bytes": [p.max_rss_bytes for p in bare],
        },
    )


def run(rows: int = ROWS) -> list[Row]:
    """Time both sides on the sheet whose people repeat across courses."""
    log(f"million: writing a {rows:,}-row sheet")
    return [_measure(sheet_path(rows, extra=True), rows=rows, what="")]


def run_distinct(rows: int = ROWS) -> list[Row]:
    """Time both sides on the sheet whose every login is distinct."""
    log(f"million: writing a {rows:,}-row sheet of distinct logins")
    return [_measure(distinct_sheet_path(rows), rows=rows, what=", every login distinct")]


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["repeated", "distinct"]
    measured = [row for name in chosen for row in (run_distinct() if name == "distinct" else run())]
    print(table(measured))
