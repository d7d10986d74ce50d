"""The clients we compare against, run on the same server in the same run.

* ``sequential``: one request after another over one kept-alive connection, as
  a Postman collection runner sends a data file;
* ``unbounded_gather``: the naive script, ``asyncio.gather`` over every row with
  aiohttp's default connection pool and no rate control, nothing retried;
* ``raw_loop``: a bare aiohttp worker loop, no validation, no retries, no
  results: the most this machine can push through the server.

Each sends the same enrollment requests our CLI sends and counts answers by
status; transport failures are counted, not raised.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import httpx
from common import API_KEY, USERS, course_guid, upn

_AUTH = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
_HEADERS = {"Authorization": _AUTH, "Accept": "application/json"}

Pair = tuple[str, str]


@dataclass
class Tally:
    """Answers by status, failures, and the time from first request to last answer."""

    by_status: Counter[int] = field(default_factory=Counter)
    failures: int = 0
    seconds: float = 0.0

    @property
    def requests(self) -> int:
        """Return the requests sent."""
        return sum(self.by_status.values()) + self.failures

    @property
    def ok(self) -> int:
        """Return the requests answered 2xx."""
        return sum(n for status, n in self.by_status.items() if 200 <= status < 300)

    @property
    def throttled(self) -> int:
        """Return the requests answered 429."""
        return self.by_status.get(429, 0)

    @property
    def ok_per_second(self) -> float:
        """Return successful requests per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def pairs(rows: int, *, offset: int = 0, users: int = USERS) -> list[Pair]:
    """Return the (course id, login) of sheet rows ``offset`` .. ``offset + rows``."""
    return [(course_guid(1000 + i // users), upn(i % users)) for i in range(offset, offset + rows)]


def sequential(base_url: str, work: Sequence[Pair], *, max_seconds: float) -> Tally:
    """Send one request at a time, stopping after ``max_seconds``."""
    tally = Tally()
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers=_HEADERS, timeout=30.0) as client:
        for course, login in work:
            try:
                answer = client.post(
                    f"/odata/v2/Courses({course})/Enroll", json={"userLoginName": login}
                )
            except httpx.HTTPError:
                tally.failures += 1
            else:
                tally.by_status[answer.status_code] += 1
            if time.perf_counter() - started > max_seconds:
                break
    tally.seconds = time.perf_counter() - started
    return tally


async def _post(session: aiohttp.ClientSession, pair: Pair, tally: Tally) -> None:
    course, login = pair
    try:
        async with session.post(
            f"/odata/v2/Courses({course})/Enroll", json={"userLoginName": login}
        ) as answer:
            await answer.read()
            tally.by_status[answer.status] += 1
    except (TimeoutError, aiohttp.ClientError, OSError):
        tally.failures += 1


async def _gather(base_url: str, work: Sequence[Pair]) -> Tally:
    tally = Tally()
    async with aiohttp.ClientSession(base_url, headers=_HEADERS) as session:
        started = time.perf_counter()
        await asyncio.gather(*(_post(session, pair, tally) for pair in work))
        tally.seconds = time.perf_counter() - started
    return tally


def unbounded_gather(base_url: str, work: Sequence[Pair]) -> Tally:
    """Fire every request at once, as a naive script does."""
    return asyncio.run(_gather(base_url, work))


async def _raw(base_url: str, work: Sequence[Pair], concurrency: int) -> Tally:
    tally = Tally()
    queue = iter(work)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, headers=_HEADERS, connector=connector) as session:

        async def worker() -> None:
            for pair in queue:  # one shared iterator: each pair is taken once
                await _post(session, pair, tally)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        tally.seconds = time.perf_counter() - started
    return tally


def raw_loop(base_url: str, work: Sequence[Pair], *, concurrency: int = 64) -> Tally:
    """Send every request from ``concurrency`` bare aiohttp workers."""
    return asyncio.run(_raw(base_url, work, concurrency))
