"""Two runs, one key: do two ``batch-enroll run`` processes share a throttle fairly?

One simulator throttles the key at R = 100 requests/s with 50 ms latency. Two
``batch-enroll run`` processes, started together, each send their own sheet of
2,000 rows (no pair in both) with the same key and ``--rate auto``; neither knows
of the other, each sees only its own 429s and ``Retry-After``. Each logs every
answer (``--log-file``).

Target, while both run (from the later first request to the earlier last answer):
together 90% or more of R, neither below 35% of R; at most 3% of all requests
answered 429. The baseline is R itself, and the fair share R/2: the ratio is the
smaller run's share of its fair share.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from common import OUT, CliRun, Row, answers, log, run_cli, sheet_slice_path, simulator, table

CEILING = 100.0
LATENCY_MS = 50.0
ROWS = 2000
MIN_TOGETHER = 0.90
MIN_EACH = 0.35
MAX_THROTTLED = 0.03


def run(ceiling: float = CEILING) -> list[Row]:
    """Measure two runs on one key."""
    sheets = [sheet_slice_path(i * ROWS, ROWS) for i in range(2)]
    logs = [OUT / f"shared-key-{i}-requests.jsonl" for i in range(2)]
    for path in logs:
        path.unlink(missing_ok=True)
    log(f"shared key {ceiling:g}/s: two batch-enroll runs of {ROWS} rows at once (~40 s)")
    with simulator(latency_ms=LATENCY_MS, rate_limit=ceiling) as server:

        def one(i: int) -> CliRun:
            return run_cli(
                sheets[i],
                server,
                name=f"shared-key-{i}",
                extra_args=["--log-file", str(logs[i])],
                timeout=300,
            )

        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = list(pool.map(one, range(2)))
        served = server.stats()
    for done in runs:
        done.check(ROWS)
    read = [answers(path) for path in logs]
    through = [[ts for ts, status in got if status != 429] for _, got in read]
    begins = max(first for first, _ in read)
    ends = min(max(times) for times in through)
    window = ends - begins
    rates = [sum(1 for t in times if begins <= t < ends) / window for times in through]
    shares = [rate / ceiling for rate in rates]
    requests = sum(int(done.summary.get("requests") or 0) for done in runs)
    throttled = sum(int(done.summary.get("throttled") or 0) for done in runs)
    throttled_share = throttled / requests if requests else 0.0
    met = (
        sum(shares) >= MIN_TOGETHER and min(shares) >= MIN_EACH and throttled_share <= MAX_THROTTLED
    )
    return [
        Row(
            scenario=f"two runs, one key, R = {ceiling:g}/s, 50 ms, auto",
            ours=(
                f"{rates[0]:.1f} + {rates[1]:.1f} = {sum(rates):.1f}/s ({sum(shares):.0%} of R)"
                f" over {window:.0f} s; {throttled_share:.1%} 429"
            ),
            baseline=f"R = {ceiling:g}/s, fair share {ceiling / 2:g}/s",
            ratio=f"{min(rates) / (ceiling / 2):.2f} of a fair share (smaller run)",
            target=(
                f">= {MIN_TOGETHER:.0%} of R together, each >= {MIN_EACH:.0%},"
                f" <= {MAX_THROTTLED:.0%} 429"
            ),
            met=met,
            data={
                "ceiling": ceiling,
                "rows_each": ROWS,
                "window_seconds": window,
                "rates": rates,
                "runs": [done.summary for done in runs],
                "server_stats": served,
            },
        )
    ]


if __name__ == "__main__":
    print(table(run(*(float(arg) for arg in sys.argv[1:2]))))
