"""A ceiling that moves: does ``--rate auto`` follow the tenant's share down and back up?

The simulator throttles on ``--rate-schedule 0:100,15:40,30:100`` (seconds since the
first request : requests per second), with 50 ms latency, as a tenant's share moves
when another integration starts and finishes. One ``batch-enroll run`` of 3,600 rows
(45 s at the ceilings) logs every answer (``--log-file``).

Target: in each phase, from 5 s after its change to its end (the last phase ends
with the last answer), answers let through at 90% or more of that phase's ceiling;
at most 3% of all requests answered 429 over the run. The baseline is the ceiling
itself: the ratio is the worst phase's share of it.
"""

from __future__ import annotations

import sys

from common import OUT, Row, answers, log, run_cli, sheet_path, simulator, table

SCHEDULE = "0:100,15:40,30:100"
LATENCY_MS = 50.0
ROWS = 3600
SETTLE_S = 5.0
MIN_SHARE = 0.90
MAX_THROTTLED = 0.03


def _phases(schedule: str) -> list[tuple[float, float]]:
    return [(float(s), float(r)) for s, r in (p.split(":") for p in schedule.split(","))]


def run(schedule: str = SCHEDULE) -> list[Row]:
    """Measure one run against the schedule."""
    sheet = sheet_path(ROWS)
    log_file = OUT / "moving-ceiling-requests.jsonl"
    log_file.unlink(missing_ok=True)
    log(f"moving ceiling {schedule}: batch-enroll run, {ROWS} rows (~50 s)")
    with simulator(latency_ms=LATENCY_MS, rate_schedule=schedule) as server:
        ours = run_cli(
            sheet,
            server,
            name="moving-ceiling",
            extra_args=["--log-file", str(log_file)],
            timeout=300,
        )
        served = server.stats()
    ours.check(ROWS)
    first, got = answers(log_file)
    through = sorted(ts - first for ts, status in got if status != 429)
    end = through[-1]
    phases = _phases(schedule)
    figures: list[dict[str, float]] = []
    for i, (starts, ceiling) in enumerate(phases):
        ends = phases[i + 1][0] if i + 1 < len(phases) else end
        begins = starts + SETTLE_S
        count = sum(1 for t in through if begins <= t < ends)
        rate = count / (ends - begins) if ends > begins else 0.0
        figures.append(
            {"from": begins, "to": ends, "ceiling": ceiling, "rate": rate, "share": rate / ceiling}
        )
    worst = min(f["share"] for f in figures)
    throttled = ours.throttled_share
    met = worst >= MIN_SHARE and throttled <= MAX_THROTTLED
    shown = ", ".join(f"{f['rate']:.0f}/s ({f['share']:.0%})" for f in figures)
    return [
        Row(
            scenario=f"moving ceiling {schedule}, 50 ms, auto",
            ours=f"{shown}; {throttled:.1%} 429",
            baseline="ceiling " + "/".join(f"{f['ceiling']:g}" for f in figures) + "/s",
            ratio=f"{worst:.2f} of the ceiling (worst phase)",
            target=f">= {MIN_SHARE:.0%} per phase from +{SETTLE_S:g} s, <= {MAX_THROTTLED:.0%} 429",
            met=met,
            data={
                "schedule": schedule,
                "rows": ROWS,
                "phases": figures,
                "ours": ours.summary,
                "ours_cpu_seconds": ours.process.cpu_seconds,
                "server_stats": served,
            },
        )
    ]


if __name__ == "__main__":
    print(table(run(*sys.argv[1:2])))
