"""Instant start: ``--help`` and ``--version`` against ``python -c "import click"``.

Targets: ``batch-enroll --help`` and ``--version`` within 2.5x the time Python
takes to start and import click, measured in the same run and environment; and
``validate --offline`` of the 50-row sample sheet, with its report, in at most 1 s.
Each command runs several times, interleaved with the others so that a burst of
load hits them alike; the median counts.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from common import CLI, OUT, ROOT, Row, log, table

RUNS = 15
HELP_TARGET = 2.5
VALIDATE_TARGET_S = 1.0
SAMPLE = ROOT / "sample_data" / "onboarding.csv"


def _seconds(argv: Sequence[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    # The sample sheet holds invalid rows on purpose: validate exits 1 for them.
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    return elapsed


def _validate_argv() -> list[str]:
    report = OUT / "startup-report.csv"
    return [*CLI, "validate", str(SAMPLE), "--offline", "--report", str(report)]


def run(runs: int = RUNS) -> list[Row]:
    """Time the baseline and our three commands, interleaved, ``runs`` times each."""
    OUT.mkdir(parents=True, exist_ok=True)
    commands = {
        "import click": [sys.executable, "-c", "import click"],
        "--help": [*CLI, "--help"],
        "--version": [*CLI, "--version"],
        "validate": _validate_argv(),
    }
    log(f"startup: {len(commands)} commands x {runs} runs")
    for argv in commands.values():
        _seconds(argv)  # warm the file cache; not counted
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(_seconds(argv))
    median = {name: statistics.median(values) for name, values in times.items()}
    base = median["import click"]
    rows = []
    for name in ("--help", "--version"):
        ratio = median[name] / base
        rows.append(
            Row(
                scenario=f"batch-enroll {name}",
                ours=f"{median[name] * 1000:.0f} ms",
                baseline=f'python -c "import click": {base * 1000:.0f} ms',
                ratio=f"{ratio:.2f}x",
                target=f"<= {HELP_TARGET:g}x",
                met=ratio <= HELP_TARGET,
                data={"runs": runs, "ours_s": times[name], "baseline_s": times["import click"]},
            )
        )
    validate = median["validate"]
    rows.append(
        Row(
            scenario="validate --offline, 50-row sample",
            ours=f"{validate * 1000:.0f} ms",
            baseline=f'python -c "import click": {base * 1000:.0f} ms',
            ratio=f"{validate / base:.1f}x",
            target=f"<= {VALIDATE_TARGET_S:g} s",
            met=validate <= VALIDATE_TARGET_S,
            data={"runs": runs, "ours_s": times["validate"]},
        )
    )
    return rows


if __name__ == "__main__":
    print(table(run()))
