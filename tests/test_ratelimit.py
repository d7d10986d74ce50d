"""The shared rate limiter, on virtual time: no test here waits on a real clock.

Single-task tests drive a fake clock through the limiter's ``sleep``; tests with
many workers run on an event loop whose clock jumps straight to the next timer,
so thirty seconds of throttled traffic take a fraction of a second and come out
the same every time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import selectors
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from batch_enroll.ratelimit import (
    FIRST_CUT,
    LATER_CUT,
    LATER_CUT_FLOOR,
    LATER_CUT_PER_429,
    PROBE_MAX_GROWTH,
    PROBE_STEP,
    SLOW_START_INTERVAL,
    SLOW_START_ROUND_TRIPS,
    RateLimiter,
)
from batch_enroll.simulator.throttle import RateSchedule, Throttle


class FakeTime:
    """A clock that moves only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def limiter(time: FakeTime, **kwargs: Any) -> RateLimiter:
    return RateLimiter(clock=time, sleep=time.sleep, **kwargs)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(main)


# -- many workers on virtual time ------------------------------------------------------------


class _JumpingSelector(selectors.DefaultSelector):
    """Poll without blocking; when nothing is ready, jump the loop's clock to its next timer."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("deadlock: no timer and nothing ready")
        self.loop.virtual_now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock only moves when every task is waiting for a timer."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        self.virtual_now = 0.0
        super().__init__(selector=selector)
        selector.loop = self

    def time(self) -> float:
        return self.virtual_now


def run_virtual(main: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(main, backend="asyncio", backend_options={"loop_factory": VirtualTimeLoop})


class TokenBucket:
    """The throttle the simulator applies: a bucket of one second's worth, Retry-After >= 1."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> int:
        """Return 0 when the request passes, else the whole seconds of Retry-After."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


async def drive(
    limiter_for: Callable[[Callable[[], float]], RateLimiter],
    *,
    requests: int,
    workers: int,
    latency: float,
    throttle: float | None = None,
) -> dict[str, Any]:
    """Send ``requests`` as the client does (a 429 is retried) and tally what happened."""
    clock = anyio.current_time
    lim = limiter_for(clock)
    bucket = TokenBucket(throttle, clock()) if throttle else None
    starts: list[float] = []
    tally: dict[str, Any] = {"ok": 0, "throttled": 0, "starts": starts, "limiter": lim}
    rows = iter(range(requests))

    async def worker() -> None:
        for _ in rows:
            while True:
                await lim.acquire()
                starts.append(clock())
                retry_after = bucket.take(clock()) if bucket else 0
                await anyio.sleep(latency)
                if retry_after:
                    tally["throttled"] += 1
                    lim.on_throttle(float(retry_after))
                    continue
                tally["ok"] += 1
                lim.on_answer(latency)
                tally["last"] = clock()
                break

    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    tally["seconds"] = tally["last"] - starts[0]
    tally["found"] = lim.found  # read on the loop: the clock is the loop's
    return tally


# -- construction ----------------------------------------------------------------------------


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate=0)


def test_fixed_limiter_reports_itself() -> None:
    lim = RateLimiter(rate=25)
    assert lim.rate == 25
    assert not lim.adaptive
    assert lim.max_rate == 25
    assert (lim.requests, lim.throttled) == (0, 0)


# -- pacing ----------------------------------------------------------------------------------


def test_requests_start_one_slot_apart() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, burst_seconds=0)
    seen: list[float] = []

    async def main() -> None:
        for _ in range(5):
            await lim.acquire()
            seen.append(time.now)

    run(main)
    gaps = [round(b - a, 9) for a, b in itertools.pairwise(seen)]
    assert gaps == [0.1] * 4
    assert lim.requests == 5


def test_fixed_rate_is_a_hard_ceiling() -> None:
    """Answers never raise a fixed rate, and no second holds more than its share."""

    async def main() -> dict[str, Any]:
        return await drive(
            lambda clock: RateLimiter(rate=50, clock=clock),
            requests=500,
            workers=64,
            latency=0.0,
        )

    tally = run_virtual(main)
    lim: RateLimiter = tally["limiter"]
    assert lim.rate == 50
    starts: list[float] = tally["starts"]
    for i, start in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < start + 1.0)
        # The burst allowance (50 ms) may start 2-3 requests early after idling.
        assert in_window <= 50 * (1.0 + 0.05) + 1
    assert tally["seconds"] >= (499 - 50 * 0.05) / 50 - 1e-9


def test_fixed_rate_ignores_throttling_but_pauses() -> None:
    time = FakeTime()
    lim = limiter(time, rate=100)
    lim.on_throttle(2.0)
    assert lim.rate == 100
    assert lim.throttled == 1

    async def main() -> None:
        await lim.acquire()

    start = time.now
    run(main)
    assert time.now >= start + 2.0


# -- Retry-After -----------------------------------------------------------------------------


def test_retry_after_pauses_every_worker() -> None:
    """A 429 seen by one worker holds the others, including those already waiting."""

    async def main() -> list[float]:
        lim = RateLimiter(rate=1000, clock=anyio.current_time)
        starts: list[float] = []

        async def worker() -> None:
            for _ in range(3):
                await lim.acquire()
                starts.append(anyio.current_time())
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(worker)
            await anyio.sleep(0.005)
            lim.on_throttle(3.0)  # announced while the workers wait for answers
        return starts

    starts = run_virtual(main)
    early = [s for s in starts if s < 0.005]
    late = [s for s in starts if s >= 0.005]
    assert len(early) == 8
    assert len(late) == 16
    assert min(late) >= 3.005 - 1e-9


def test_a_later_retry_after_extends_the_pause_a_shorter_one_does_not() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10)
    lim.pause(5.0)
    lim.pause(1.0)
    assert lim.paused_until == pytest.approx(time.now + 5.0)
    time.now += 1.0
    lim.pause(10.0)
    assert lim.paused_until == pytest.approx(time.now + 10.0)


def test_a_pause_announced_while_waiting_holds_the_waiter() -> None:
    time = FakeTime()
    lim = limiter(time, rate=1, burst_seconds=0, max_wait=0.05)
    granted: list[float] = []

    async def sleep_and_pause(seconds: float) -> None:
        # The first nap of the waiting request is when the 429 arrives.
        if not granted or (len(granted) == 1 and lim.paused_until < time.now):
            lim.pause(4.0)
        await time.sleep(seconds)

    lim.pacer._sleep = sleep_and_pause

    async def main() -> None:
        await lim.acquire()
        granted.append(time.now)
        await lim.acquire()
        granted.append(time.now)

    run(main)
    assert granted[1] >= granted[0] + 4.0


# -- auto: slow start ------------------------------------------------------------------------


def _pace_and_answer(time: FakeTime, lim: RateLimiter, seconds: float) -> list[float]:
    """Send and get instant answers for ``seconds``; return the rate after each answer."""
    rates: list[float] = []
    end = time.now + seconds

    async def main() -> None:
        while time.now < end:
            await lim.acquire()
            lim.on_answer()
            rates.append(lim.rate)

    run(main)
    return rates


def test_slow_start_doubles_while_no_429_comes() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True, max_rate=1e9)
    rates = _pace_and_answer(time, lim, 1.2)
    distinct = sorted(set(rates))
    assert distinct[:4] == [10, 20, 40, 80]
    assert len(distinct) >= 6
    assert all(b == 2 * a for a, b in itertools.pairwise(distinct))


def test_slow_start_waits_at_least_its_interval_between_doublings() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    changes: list[float] = []
    last = lim.rate

    async def main() -> None:
        nonlocal last
        while time.now < 1000.0 + 1.5:
            await lim.acquire()
            lim.on_answer()
            if lim.rate != last:
                changes.append(time.now)
                last = lim.rate

    run(main)
    assert len(changes) >= 3
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert min(gaps) >= SLOW_START_INTERVAL - 1e-9


def test_slow_start_doubles_once_per_two_round_trips_on_a_slow_server() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    changes: list[float] = []
    last = lim.rate

    async def main() -> None:
        nonlocal last
        while time.now < 1000.0 + 3.0:
            await lim.acquire()
            lim.on_answer(0.4)  # what the client measured
            if lim.rate != last:
                changes.append(time.now)
                last = lim.rate

    run(main)
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert len(changes) >= 2
    assert min(gaps) >= SLOW_START_ROUND_TRIPS * 0.4 - 1e-9


def test_an_unused_rate_is_not_raised() -> None:
    """Answers without requests to pace (every worker busy) are no reason to go faster."""
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    for _ in range(50):
        time.now += 0.1
        lim.on_answer()
    assert lim.rate == 10


def test_adaptive_rate_stops_at_max_rate() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True, max_rate=60)
    _pace_and_answer(time, lim, 3.0)
    assert lim.rate == 60
    assert lim.peak_rate == 60


# -- auto: the first 429, then AIMD ---------------------------------------------------------


def _slow_start_to(time: FakeTime, lim: RateLimiter, rate: float) -> None:
    async def main() -> None:
        while lim.rate < rate:
            await lim.acquire()
            lim.on_answer()

    run(main)
    # Keep sending at this rate for a moment, so the send rate is measured.
    _pace_and_answer(time, lim, 0.01)


def test_first_429_ends_slow_start_and_cuts() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 160)
    sent = lim.rate
    lim.on_throttle(1.0)
    assert lim.throttled == 1
    assert lim.episodes == 1
    assert FIRST_CUT[0] * sent <= lim.rate <= FIRST_CUT[1] * sent
    # No more doubling every round trip: after the pause the probe starts with small steps.
    time.now = lim.paused_until
    before = lim.rate
    rates = _pace_and_answer(time, lim, 2.0)
    assert max(rates) < 1.25 * before


def test_the_cut_follows_the_share_of_answers_that_got_through() -> None:
    """Of the answers in flight at the first 429, the share admitted sets the new rate."""
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 320)
    lim.on_throttle(1.0)
    episode = lim.control._episode if lim.control else None
    sent = episode.sent_rate if episode else 0.0
    for _ in range(29):
        time.now += 0.001
        lim.on_throttle(1.0)
    for _ in range(9):
        time.now += 0.001
        lim.on_answer()
    # 9 admitted of 39 answers (plus one for the prior): 10/40 of what was sent.
    assert lim.rate == pytest.approx(sent * 10 / 40)
    assert lim.episodes == 1


def test_429s_of_one_burst_cut_once() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 80)
    for _ in range(20):
        lim.on_throttle(1.0)
        time.now += 0.01
    assert lim.episodes == 1
    assert lim.throttled == 20


def _probe_steps(time: FakeTime, lim: RateLimiter, seconds: int) -> list[float]:
    """Return how much the rate rose in each of ``seconds`` seconds of instant answers."""
    marks = [lim.rate]
    for _ in range(seconds):
        _pace_and_answer(time, lim, 1.0)
        marks.append(lim.rate)
    return [b - a for a, b in itertools.pairwise(marks)]


def test_the_probe_starts_small_and_doubles_its_step_every_quiet_second() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 160)
    lim.on_throttle(1.0)
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 0.01)  # the first answer after the pause closes the burst
    start = lim.rate
    steps = _probe_steps(time, lim, 4)
    # The first second adds about PROBE_STEP (the rate is small): no overshoot right after a cut.
    assert PROBE_STEP <= steps[0] <= 2.5 * PROBE_STEP
    for before, after in itertools.pairwise(steps):
        assert 1.6 * before <= after <= 2.4 * before
    assert lim.rate > start
    # Multiplicative decrease on the next 429: the same share of the send rate, whatever got
    # through, so two runs on one key lose the same share of what each sends.
    sending = lim.rate
    lim.on_throttle(1.0)
    assert lim.episodes == 2
    assert lim.rate == pytest.approx(LATER_CUT * sending, rel=0.1)
    lim.on_throttle(1.0)
    lim.on_answer()
    assert lim.episodes == 2
    assert lim.rate == pytest.approx(LATER_CUT * sending, rel=0.1)
    # And the next probe starts small again.
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 0.01)
    assert _probe_steps(time, lim, 1)[0] <= 2.5 * PROBE_STEP


def test_a_later_burst_cuts_more_for_each_429_it_draws() -> None:
    """Runs on one key draw a burst's 429s in proportion to what they send: more 429s, more cut."""
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 160)
    lim.on_throttle(1.0)
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 2.0)
    lim.on_throttle(1.0)
    assert lim.control is not None
    assert lim.control._episode is not None
    sent = lim.control._episode.sent_rate
    kept = [lim.rate / sent]
    for _ in range(38):
        lim.on_throttle(1.0)
        kept.append(lim.rate / sent)
    assert lim.episodes == 2
    assert kept[0] == pytest.approx(LATER_CUT)
    assert kept[4] == pytest.approx(LATER_CUT * LATER_CUT_PER_429**4)
    assert all(b <= a for a, b in itertools.pairwise(kept))
    assert kept[-1] == pytest.approx(LATER_CUT_FLOOR)


def test_the_probe_never_more_than_doubles_the_rate_in_a_second() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True, max_rate=1e9)
    _slow_start_to(time, lim, 40)
    lim.on_throttle(1.0)
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 0.01)
    steps = _probe_steps(time, lim, 12)
    rates = [lim.rate - sum(steps[i:]) for i in range(len(steps))]
    for rate, step in zip(rates, steps, strict=True):
        assert step <= PROBE_MAX_GROWTH * rate * 1.2 + 1e-9


def test_found_is_the_settled_rate_until_answers_measure_the_ceiling() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 160)
    assert lim.found == lim.rate  # no 429 yet: nothing found beyond the rate itself
    lim.on_throttle(1.0)
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 0.01)  # the first answer after the pause closes the burst
    settled = lim.rate
    _pace_and_answer(time, lim, 1.0)
    assert lim.rate > settled  # probing upward again
    assert lim.found == pytest.approx(settled)
    # Seconds later, the answers themselves say what gets through.
    _pace_and_answer(time, lim, 3.0)
    assert settled < lim.found <= lim.rate  # the mean of a rate that grew all along


def test_429_without_retry_after_cuts_without_pausing() -> None:
    time = FakeTime()
    lim = limiter(time, rate=10, adaptive=True)
    _slow_start_to(time, lim, 80)
    before = lim.rate
    lim.on_throttle(None)
    assert lim.rate < before
    assert lim.paused_until < time.now


# -- auto against a token bucket, end to end on virtual time ----------------------------------


@pytest.mark.parametrize("ceiling", [20, 100, 400])
def test_auto_finds_an_unknown_ceiling(ceiling: float) -> None:
    """Thirty seconds against the simulator's throttle: >= 90% of it, <= 3% answered 429."""

    async def main() -> dict[str, Any]:
        return await drive(
            lambda clock: RateLimiter(rate=10, adaptive=True, clock=clock),
            requests=int(ceiling * 30),
            workers=64,
            latency=0.05,
            throttle=ceiling,
        )

    tally = run_virtual(main)
    throughput = tally["ok"] / tally["seconds"]
    assert throughput >= 0.9 * ceiling
    assert tally["throttled"] <= 0.03 * (tally["ok"] + tally["throttled"])
    lim: RateLimiter = tally["limiter"]
    # The probe accelerates between bursts, so the last rate may sit well above the ceiling.
    assert 0.75 * ceiling <= lim.rate <= 2.0 * ceiling
    # The ceiling reported is what got through, not the probe above it.
    assert 0.9 * ceiling <= tally["found"] <= 1.05 * ceiling


def test_auto_without_a_throttle_fills_the_workers() -> None:
    """No throttle: in-flight requests follow the rate up to the worker count."""

    async def main() -> dict[str, Any]:
        return await drive(
            lambda clock: RateLimiter(rate=10, adaptive=True, clock=clock),
            requests=3200,
            workers=32,
            latency=0.2,
        )

    tally = run_virtual(main)
    # 32 in flight for 0.2 s each is 160/s at most; slow start costs about a second.
    assert tally["ok"] / tally["seconds"] >= 0.9 * 32 / 0.2
    assert tally["throttled"] == 0


def test_a_fixed_rate_backs_off_under_a_stricter_throttle_and_climbs_back_to_it() -> None:
    """What --rate R builds: R is the ceiling, never exceeded, left only to back off."""
    time = FakeTime()
    lim = limiter(time, rate=200, adaptive=True, max_rate=200)
    _pace_and_answer(time, lim, 1.0)
    assert lim.rate == 200  # starts at R, not from a slow start
    lim.on_throttle(1.0)
    time.now = lim.paused_until
    _pace_and_answer(time, lim, 0.01)
    assert lim.rate < 200
    for _ in range(60):
        _pace_and_answer(time, lim, 1.0)
        assert lim.rate <= 200
    assert lim.rate == 200


# -- auto against a ceiling that moves, and two runs on one key --------------------------------


async def drive_key(
    *,
    schedule: str,
    runs: list[tuple[float, int]],
    workers: int = 64,
    latency: float = 0.05,
) -> tuple[list[dict[str, Any]], float]:
    """Start each run (delay, rows) with its own limiter against one key of the simulator's
    throttle; return each run's tally (answer times, 429s) and the throttle's first request."""
    clock = anyio.current_time
    throttle = Throttle()
    rates = RateSchedule.parse(schedule)
    tallies: list[dict[str, Any]] = []

    async def run_one(delay: float, requests: int) -> None:
        await anyio.sleep(delay)
        lim = RateLimiter(rate=10, adaptive=True, clock=clock)
        tally: dict[str, Any] = {"ok": [], "throttled": 0}
        tallies.append(tally)
        rows = iter(range(requests))

        async def worker() -> None:
            for _ in rows:
                while True:
                    await lim.acquire()
                    retry_after = throttle.take(
                        b"key", clock(), rate_limit=None, schedule=rates, burst=None
                    )
                    await anyio.sleep(latency)
                    if retry_after:
                        tally["throttled"] += 1
                        lim.on_throttle(float(retry_after))
                        continue
                    tally["ok"].append(clock())
                    lim.on_answer(latency)
                    break

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)

    async with anyio.create_task_group() as group:
        for delay, requests in runs:
            group.start_soon(run_one, delay, requests)
    assert throttle._origin is not None
    return tallies, throttle._origin


def _throttled_share(tallies: list[dict[str, Any]]) -> float:
    throttled = sum(t["throttled"] for t in tallies)
    return throttled / (throttled + sum(len(t["ok"]) for t in tallies))


def test_auto_follows_a_ceiling_that_drops_and_recovers() -> None:
    """100/s, 40/s from 15 s, 100/s from 30 s: each phase from 5 s after its change to its
    end at >= 90% of its ceiling, and <= 3% of all requests answered 429."""

    async def main() -> tuple[list[dict[str, Any]], float]:
        return await drive_key(schedule="0:100,15:40,30:100", runs=[(0.0, 3600)])

    tallies, origin = run_virtual(main)
    answers = [t - origin for t in tallies[0]["ok"]]
    end = max(answers)
    assert end > 40  # the last phase lasts long enough to measure
    for begins, ends, ceiling in ((0.0, 15.0, 100), (20.0, 30.0, 40), (35.0, end, 100)):
        got = sum(1 for t in answers if begins <= t < ends) / (ends - begins)
        assert got >= 0.9 * ceiling, (begins, got)
    assert _throttled_share(tallies) <= 0.03


@pytest.mark.parametrize("late", [0.0, 0.3, 1.0])
def test_two_runs_on_one_key_share_it_fairly(late: float) -> None:
    """Two runs, the second started ``late`` seconds after the first, each with its own
    limiter, against one key of 100/s: together >= 90%, neither below 35%, <= 3% 429."""

    async def main() -> tuple[list[dict[str, Any]], float]:
        return await drive_key(schedule="0:100", runs=[(0.0, 2000), (late, 2000)])

    tallies, _ = run_virtual(main)
    # While both run: from the later first answer to the earlier last one.
    begins = max(min(t["ok"]) for t in tallies)
    ends = min(max(t["ok"]) for t in tallies)
    assert ends - begins > 20
    shares = [
        sum(1 for a in t["ok"] if begins <= a < ends) / (ends - begins) / 100 for t in tallies
    ]
    assert sum(shares) >= 0.9
    assert min(shares) >= 0.35, shares
    assert _throttled_share(tallies) <= 0.03
