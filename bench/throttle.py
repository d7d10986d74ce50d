"""Throttled tenant: does ``--rate auto`` find a ceiling it is not told, and stay polite?

Target, for a throttle of R = 20, 100 and 400 requests/s with 50 ms latency:
over a 30-second run (first request to last answer) at least 90% of R, and at
most 3% of requests answered 429. The sheet holds R x 30 rows, so a client at
the ceiling needs 30 s.

Baseline, on a fresh server with the same throttle: the naive script, every
row at once through ``asyncio.gather`` with no rate control and no retries.
The ratio is rows enrolled by us over rows enrolled by it in one pass.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from baselines import pairs, unbounded_gather
from common import Row, log, run_cli, sheet_path, simulator, table

CEILINGS = (20, 100, 400)
LATENCY_MS = 50.0
SECONDS = 30
MIN_SHARE = 0.90
MAX_THROTTLED = 0.03


def scenario(ceiling: float) -> Row:
    """Measure one throttle, ours then the baseline, each on a fresh server."""
    rows = int(ceiling * SECONDS)
    sheet = sheet_path(rows)
    log(f"throttle {ceiling:g}/s: batch-enroll run, {rows} rows (~{SECONDS} s)")
    with simulator(latency_ms=LATENCY_MS, rate_limit=ceiling) as server:
        ours = run_cli(sheet, server, name=f"throttle-{ceiling:g}", timeout=SECONDS * 6)
        served = server.stats()
    ours.check(rows)
    log(f"throttle {ceiling:g}/s: baseline, unbounded asyncio.gather")
    with simulator(latency_ms=LATENCY_MS, rate_limit=ceiling) as server:
        naive = unbounded_gather(server.base_url, pairs(rows))
    rate = ours.sending_rate
    share = rate / ceiling
    throttled = ours.throttled_share
    met = share >= MIN_SHARE and throttled <= MAX_THROTTLED
    naive_share = naive.throttled / naive.requests if naive.requests else 0.0
    return Row(
        scenario=f"throttle {ceiling:g}/s, 50 ms, auto",
        ours=(
            f"{rate:.1f}/s = {share:.0%} of R, {throttled:.1%} 429"
            f" (found {ours.summary.get('rate_found')}/s)"
        ),
        baseline=(
            f"gather: {naive.ok}/{rows} enrolled, {naive_share:.0%} 429, {naive.failures} failed"
        ),
        ratio=f"{ours.enrolled / max(1, naive.ok):.1f}x rows enrolled",
        target=f">= {MIN_SHARE:.0%} of R, <= {MAX_THROTTLED:.0%} 429",
        met=met,
        data={
            "ceiling": ceiling,
            "rows": rows,
            "ours": ours.summary,
            "ours_cpu_seconds": ours.process.cpu_seconds,
            "server_stats": served,
            "baseline": {
                "ok": naive.ok,
                "throttled": naive.throttled,
                "failures": naive.failures,
                "requests": naive.requests,
                "seconds": naive.seconds,
            },
        },
    )


def run(ceilings: Sequence[float] = CEILINGS) -> list[Row]:
    """Measure every ceiling."""
    return [scenario(ceiling) for ceiling in ceilings]


if __name__ == "__main__":
    chosen = [float(arg) for arg in sys.argv[1:]] or list(CEILINGS)
    print(table(run(chosen)))
