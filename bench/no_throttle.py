"""No throttle, no added latency: how fast does a whole sheet go, end to end?

Target: a 20,000-row sheet at >= 1,500 enrollments per second end to end (load,
validate, send, report: the summary's ``elapsed_seconds``), with the ratio to a
raw aiohttp loop sending the same 20,000 requests to a fresh server beside it.
The raw loop validates nothing, retries nothing and writes nothing: it is the
most this machine and this server allow, not a fair competitor.
"""

from __future__ import annotations

from baselines import pairs, raw_loop
from common import Row, log, run_cli, sheet_path, simulator, table

ROWS = 20_000
TARGET = 1500.0
CONCURRENCY = 64


def run(rows: int = ROWS) -> list[Row]:
    """Measure our CLI, then the raw loop, each on a fresh server."""
    sheet = sheet_path(rows)
    log(f"no throttle: batch-enroll run, {rows} rows")
    with simulator() as server:
        ours = run_cli(sheet, server, name="no-throttle")
    ours.check(rows)
    log(f"no throttle: baseline, raw aiohttp loop, {rows} requests")
    with simulator() as server:
        raw = raw_loop(server.base_url, pairs(rows), concurrency=CONCURRENCY)
    elapsed = float(ours.summary["elapsed_seconds"])
    end_to_end = ours.enrolled / elapsed
    return [
        Row(
            scenario=f"no throttle, {rows:,} rows, end to end",
            ours=(
                f"{end_to_end:,.0f} enrollments/s ({elapsed:.1f} s;"
                f" sending {ours.sending_rate:,.0f}/s)"
            ),
            baseline=f"raw aiohttp loop: {raw.ok_per_second:,.0f}/s",
            ratio=f"{end_to_end / raw.ok_per_second:.2f} of raw",
            target=f">= {TARGET:,.0f}/s",
            met=end_to_end >= TARGET and raw.ok == rows,
            data={
                "rows": rows,
                "ours": ours.summary,
                "ours_wall_seconds": ours.process.wall_seconds,
                "ours_cpu_seconds": ours.process.cpu_seconds,
                "raw": {"ok": raw.ok, "seconds": raw.seconds, "by_status": dict(raw.by_status)},
            },
        )
    ]


if __name__ == "__main__":
    print(table(run()))
