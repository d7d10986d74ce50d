"""Run every benchmark scenario and print one table (``make bench``).

Each scenario measures our CLI and its baseline in the same run, each against
a fresh simulator process on 127.0.0.1. The table goes to stdout, progress to
stderr; the table and the raw figures also go to ``bench/out/results.md`` and
``bench/out/results.json``. Exit status 1 when a target is missed.

Usage: ``python bench/run_all.py [scenario ...]`` with scenarios from ``million
million_distinct excel no_throttle latency sequential throttle moving_ceiling shared_key
startup`` (default: all, about 8 min).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable

# Run as a script, this directory is first on sys.path: the scenarios import as modules.
import excel
import latency
import million
import moving_ceiling
import no_throttle
import sequential
import shared_key
import startup
import throttle
from common import OUT, Row, log, machine, table

SCENARIOS: dict[str, Callable[[], list[Row]]] = {
    "million": million.run,
    "million_distinct": million.run_distinct,
    "excel": excel.run,
    "no_throttle": no_throttle.run,
    "latency": latency.run,
    "sequential": sequential.run,
    "throttle": throttle.run,
    "moving_ceiling": moving_ceiling.run,
    "shared_key": shared_key.run,
    "startup": startup.run,
}


def main(names: list[str]) -> int:
    """Run the chosen scenarios; return the exit status."""
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    about = machine()
    load = os.getloadavg()[0]
    log(f"machine: {about['nproc']} CPUs, {about['cpu']}, Python {about['python']}")
    if load > 0.5:
        log(f"note: load average {load:.2f} before starting; other work skews the figures")
    started = time.monotonic()
    rows: list[Row] = []
    for name in names or list(SCENARIOS):
        try:
            rows.extend(SCENARIOS[name]())
        except Exception as exc:  # one broken scenario must not hide the others' figures
            traceback.print_exc()
            rows.append(Row(name, f"error: {exc}"[:80], "-", "-", "-", met=False))
    minutes = (time.monotonic() - started) / 60
    rendered = table(rows)
    header = (
        f"{about['nproc']} CPUs ({about['cpu']}), Python {about['python']},"
        f" {minutes:.1f} min, load average before start {load:.2f}"
    )
    print(rendered)
    print(header)
    (OUT / "results.md").write_text(rendered + "\n\n" + header + "\n", encoding="utf-8")
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "machine": about,
                "minutes": round(minutes, 2),
                "load_before": load,
                "rows": [row.__dict__ for row in rows],
            },
            indent=2,
            default=str,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0 if all(row.met for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
