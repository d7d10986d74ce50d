"""A slow server: does latency cap us, or do in-flight requests follow the rate?

Target: no throttle, 200 ms added to every answer, at least 90% of
max-concurrency / latency (64 / 0.2 s = 320 enrollments/s), measured from the
first request to the last answer of a 10,000-row sheet (about 30 s).

Baseline, on a fresh server: the raw aiohttp loop with the same 64 connections,
which is that ceiling as this machine reaches it.
"""

from __future__ import annotations

from baselines import pairs, raw_loop
from common import Row, log, run_cli, sheet_path, simulator, table

ROWS = 10_000
BASELINE_ROWS = 3_200
LATENCY_MS = 200.0
CONCURRENCY = 64
MIN_SHARE = 0.90


def run(rows: int = ROWS) -> list[Row]:
    """Measure our CLI, then the raw loop, each on a fresh server."""
    ceiling = CONCURRENCY / (LATENCY_MS / 1000)
    sheet = sheet_path(rows)
    log(f"latency 200 ms: batch-enroll run, {rows} rows (~{rows / ceiling:.0f} s)")
    with simulator(latency_ms=LATENCY_MS) as server:
        ours = run_cli(
            sheet, server, name="latency", extra_args=["--max-concurrency", str(CONCURRENCY)]
        )
    ours.check(rows)
    log(f"latency 200 ms: baseline, raw aiohttp loop, {BASELINE_ROWS} requests")
    with simulator(latency_ms=LATENCY_MS) as server:
        raw = raw_loop(server.base_url, pairs(BASELINE_ROWS), concurrency=CONCURRENCY)
    rate = ours.sending_rate
    return [
        Row(
            scenario=f"no throttle, 200 ms latency, {CONCURRENCY} max in flight",
            ours=f"{rate:.0f}/s = {rate / ceiling:.0%} of {ceiling:.0f}/s",
            baseline=f"raw aiohttp loop: {raw.ok_per_second:.0f}/s",
            ratio=f"{rate / raw.ok_per_second:.2f} of raw",
            target=f">= {MIN_SHARE:.0%} of {CONCURRENCY}/0.2 s",
            met=rate >= MIN_SHARE * ceiling,
            data={
                "rows": rows,
                "ours": ours.summary,
                "raw": {"ok": raw.ok, "seconds": raw.seconds},
            },
        )
    ]


if __name__ == "__main__":
    print(table(run()))
