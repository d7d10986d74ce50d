"""Against a Postman collection runner: one request at a time, on a 200/s, 50 ms server.

Target: at least 8x the sequential client's throughput. Ours sends a 4,000-row
sheet (about 20 s at the ceiling, slow start and the first 429 included); the
sequential client sends for 10 s on a fresh server with the same throttle.
"""

from __future__ import annotations

from baselines import pairs, sequential
from common import Row, log, run_cli, sheet_path, simulator, table

CEILING = 200.0
LATENCY_MS = 50.0
ROWS = 4_000
BASELINE_SECONDS = 10.0
TARGET = 8.0


def run(rows: int = ROWS) -> list[Row]:
    """Measure our CLI, then the sequential client, each on a fresh server."""
    sheet = sheet_path(rows)
    log(f"vs sequential: batch-enroll run, {rows} rows on {CEILING:g}/s, 50 ms")
    with simulator(latency_ms=LATENCY_MS, rate_limit=CEILING) as server:
        ours = run_cli(sheet, server, name="vs-sequential")
    ours.check(rows)
    log(f"vs sequential: baseline, one request at a time for {BASELINE_SECONDS:g} s")
    with simulator(latency_ms=LATENCY_MS, rate_limit=CEILING) as server:
        one = sequential(server.base_url, pairs(rows), max_seconds=BASELINE_SECONDS)
    rate = ours.sending_rate
    ratio = rate / one.ok_per_second
    return [
        Row(
            scenario=f"vs sequential client, {CEILING:g}/s, 50 ms",
            ours=f"{rate:.0f}/s, {ours.throttled_share:.1%} 429",
            baseline=f"sequential: {one.ok_per_second:.1f}/s",
            ratio=f"{ratio:.1f}x",
            target=f">= {TARGET:g}x",
            met=ratio >= TARGET,
            data={
                "rows": rows,
                "ours": ours.summary,
                "sequential": {
                    "ok": one.ok,
                    "seconds": one.seconds,
                    "statuses": dict(one.by_status),
                },
            },
        )
    ]


if __name__ == "__main__":
    print(table(run()))
