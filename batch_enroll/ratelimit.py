"""One rate limiter shared by every request of a run, retries included.

Two parts meet here. ``Pacer`` is the pacing: requests start in order, each at
its own slot of the current rate, never during a ``Retry-After`` pause; a
waiting request re-reads the rate and the pause at least every ``max_wait``
seconds, so a rate found or a pause announced while it waits applies to it too.
``AdaptiveRate`` is the control: it moves the pacer's rate on what the answers
say. ``RateLimiter`` joins them behind the four calls the client makes.

The tenant's throttle is unpublished, so in ``auto`` mode the control finds it.
A slow start doubles the rate while the throttle stays silent. The first 429
opens a throttle *episode*: everyone pauses for ``Retry-After`` (the throttle
counts the tenant, not one worker), and the answers still in flight tell how
much of what was sent got through; the rate is cut to that share of the send
rate, within multiplicative bounds. Later episodes cut the send rate by a
fixed factor, a little more for each 429 (multiplicative decrease). Between
them a probe raises the rate: its step starts small and doubles every second
without a 429 (additive increase that accelerates), and every episode sets it
back to the start.

Why the cut aims at the ceiling rather than far below it: a throttle that
answers 429 with ``Retry-After`` refills while everyone waits, so running a
little above its ceiling costs a short pause now and then, while running below
it wastes capacity every second.

Why the probe accelerates: the ceiling is shared with the tenant's other
integrations and moves when they come and go. Right after a cut the rate
creeps, so it does not overshoot the ceiling it just found; a ceiling that
rose is reached within a few seconds.

Why two runs on one key end up with fair shares, though neither knows of the
other: both see the same throttle, a later cut takes at least the same share off
each (more off the one that drew more of the burst's 429s), and the probe's
first steps are the same number of requests per second for a small run as for
a large one. That is AIMD, which converges to equal shares; a share measured
from a small run's few answers, or a step proportional to the rate, would keep
whatever split the two started with.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

__all__ = ["AdaptiveRate", "Clock", "Pacer", "RateLimiter", "Sleep"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Seconds between doublings in slow start, at least; the rate must also be in use.
#: The bucket behind a throttle hides it until it runs dry, so the first 429s come
#: late, and the faster the doubling, the further past the ceiling they find it.
SLOW_START_INTERVAL = 0.2
#: Round trips between doublings in slow start: the 429 that ends it takes one
#: round trip to come back, and what is sent meanwhile is what gets refused.
SLOW_START_ROUND_TRIPS = 2.0
#: The probe's first step, in requests per second per second: the larger of a
#: number that is the same for every run on a key and a share of the rate.
PROBE_STEP = 2.0
PROBE_SHARE = 0.01
#: Seconds without a 429 that double the probe's step.
PROBE_DOUBLING = 1.0
#: The most the probe raises the rate per second, as a share of the rate.
PROBE_MAX_GROWTH = 1.0
#: Bounds of the first cut, as shares of the rate that was being sent: slow start
#: overshoots by a factor nobody knows, so what got through decides.
FIRST_CUT = (0.125, 0.9)
#: Later cuts, as the share of the rate being sent that is kept at a burst's first
#: 429, the share each further 429 of the burst keeps of that, and the least kept.
LATER_CUT = 0.8
LATER_CUT_PER_429 = 0.97
LATER_CUT_FLOOR = 0.5
#: Seconds of recent request starts that measure the send rate at a 429.
SEND_WINDOW = 0.2
#: Seconds an episode listens for answers when the 429 gave no ``Retry-After``.
MIN_EPISODE = 0.25
#: Seconds of answers after the first 429s before they measure the ceiling found.
MEASURE_SECONDS = 3.0
#: Units in the last place of the clock within which a slot is now: float rounding must
#: not leave a waiter sleeping for less than the clock can tell apart.
SLOT_ULPS = 4


# -- pacing -----------------------------------------------------------------------------------


class Pacer:
    """Start requests one slot of ``rate`` apart, in arrival order, never during a pause."""

    def __init__(
        self,
        *,
        rate: float,
        burst_seconds: float = 0.05,
        max_wait: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        #: Requests per second; the control may change it at any time.
        self.rate = rate
        #: Requests started so far.
        self.requests = 0
        self._burst_seconds = burst_seconds
        self._max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._lock: anyio.Lock | None = None
        self._last_start = -math.inf
        self._paused_until = -math.inf
        # Start times of the last SEND_WINDOW seconds, to measure the send rate.
        self._recent: deque[float] = deque()

    @property
    def paused_until(self) -> float:
        """Return the clock time before which no request starts."""
        return self._paused_until

    def now(self) -> float:
        """Return the pacer's clock time."""
        return self._clock()

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now; a shorter pause never shortens one."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until

    def send_rate(self, now: float) -> float:
        """Return the rate requests actually started at lately, at most the rate set."""
        recent = self._recent
        while recent and recent[0] < now - SEND_WINDOW:
            recent.popleft()
        measured = len(recent) / SEND_WINDOW
        return min(self.rate, measured) if measured > 0 else self.rate

    def _slot(self, now: float) -> float:
        # The burst allowance keeps a late wake-up from lowering the average rate;
        # it never lets a request start during a pause.
        return max(
            self._last_start + 1.0 / self.rate, now - self._burst_seconds, self._paused_until
        )

    def _grant(self, start: float, now: float) -> None:
        self._last_start = start
        self.requests += 1
        recent = self._recent
        recent.append(now)
        while recent[0] < now - SEND_WINDOW:
            recent.popleft()

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        lock = self._lock
        if lock is None:
            lock = self._lock = anyio.Lock(fast_acquire=True)
        if not lock.locked():
            now = self._clock()
            start = self._slot(now)
            if start <= now + SLOT_ULPS * math.ulp(now):
                self._grant(start, now)
                return
        # One waiter at a time, in arrival order, holds the next slot.
        async with lock:
            while True:
                now = self._clock()
                start = self._slot(now)
                if start <= now + SLOT_ULPS * math.ulp(now):
                    self._grant(start, now)
                    return
                await self._sleep(min(start - now, self._max_wait))


# -- adaptive control -------------------------------------------------------------------------


@dataclass
class _Episode:
    """A burst of 429s: what was being sent, and how much of it got through."""

    started: float
    ends: float
    sent_rate: float
    bounds: tuple[float, float] | None
    admitted: int = 0
    throttled: int = 0


class AdaptiveRate:
    """Move a pacer's rate on answers and 429s: slow start, then cut and additive increase."""

    def __init__(self, pacer: Pacer, *, max_rate: float, min_rate: float) -> None:
        self.pacer = pacer
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.episodes = 0
        self.peak_rate = pacer.rate
        self._slow_start = True
        now = pacer.now()
        self._last_change = now
        self._requests_at_change = pacer.requests
        self._answers_since_change = 0
        self._latency = 0.0
        self._step = 0.0
        self._quiet_since = now
        self._episode: _Episode | None = None
        self._settled: float | None = None
        # Answers since the first burst of 429s ended: what the throttle lets through.
        self._measured_since: float | None = None
        self._measured = 0

    @property
    def found(self) -> float:
        """Return the ceiling found: what the throttle let through since it first spoke.

        Between bursts of 429s the rate probes a little above the ceiling and each
        cut lands a little below it, so neither is the answer; the answers per
        second since the first burst are (pauses included). Until a few seconds of
        them exist, this is the rate the last burst settled on, and before any 429,
        when no ceiling is known, the current rate.
        """
        since = self._measured_since
        if since is not None:
            window = self.pacer.now() - since
            if window >= MEASURE_SECONDS:
                return self._measured / window
        if self._episode is not None or self._settled is None:
            return self.pacer.rate  # mid-burst, the rate is the estimate being refined
        return self._settled

    def _restart_count(self, now: float) -> None:
        self._last_change = now
        self._requests_at_change = self.pacer.requests
        self._answers_since_change = 0

    def _set_rate(self, rate: float, now: float) -> None:
        rate = max(self.min_rate, min(self.max_rate, rate))
        self.pacer.rate = rate
        self.peak_rate = max(self.peak_rate, rate)
        self._restart_count(now)

    def _in_use(self, now: float) -> bool:
        """Tell whether requests kept up with the rate since it last changed.

        A rate the client does not reach (its workers are all waiting for
        answers) says nothing about the throttle; raising it would only make the
        next cut start from a number nobody sent.
        """
        started = self.pacer.requests - self._requests_at_change
        return started >= 0.5 * self.pacer.rate * (now - self._last_change)

    def _close_episode(self, now: float) -> None:
        episode = self._episode
        if episode is None or now < episode.ends:
            return
        self._episode = None
        rate = self.pacer.rate
        self._settled = rate
        resume = max(now, self.pacer.paused_until)
        if self._measured_since is None:
            self._measured_since = resume
        self._last_change = resume
        self._requests_at_change = self.pacer.requests
        self._step = max(PROBE_STEP, rate * PROBE_SHARE)
        self._quiet_since = resume

    def _estimate(self, episode: _Episode) -> None:
        """Set the rate to the share of the send rate that got through, within bounds.

        An episode without bounds keeps ``LATER_CUT`` of the send rate, a little
        less for each further 429 it draws: runs sharing a key draw a burst's 429s
        in proportion to what they send, so the larger gives way more.
        """
        if episode.bounds is None:
            kept = LATER_CUT * LATER_CUT_PER_429 ** (episode.throttled - 1)
            self._set_rate(episode.sent_rate * max(LATER_CUT_FLOOR, kept), self.pacer.now())
            return
        # Requests that left after the throttle ran dry come back mostly 429;
        # the add-one keeps a few answers from reading as "nothing gets through".
        share = (episode.admitted + 1) / (episode.admitted + episode.throttled + 1)
        low, high = episode.bounds
        share = max(low, min(high, share))
        self._set_rate(episode.sent_rate * share, self.pacer.now())

    def on_answer(self, latency: float | None = None) -> None:
        """Count an answer the throttle let through; grow the rate."""
        if self._measured_since is not None:
            self._measured += 1
        if latency is not None:
            # A smoothed round trip; the first answer sets it outright.
            self._latency += (0.1 if self._latency else 1.0) * (latency - self._latency)
        now = self.pacer.now()
        episode = self._episode
        if episode is not None:
            if now < episode.ends:
                episode.admitted += 1
                self._estimate(episode)
                return
            self._close_episode(now)
        if now < self.pacer.paused_until:
            return
        self._answers_since_change += 1
        elapsed = now - self._last_change
        rate = self.pacer.rate
        if self._slow_start:
            # Like TCP, double once per few round trips, and only when most of what
            # went out at this rate has been answered: a slow server is not flooded blind.
            interval = max(SLOW_START_INTERVAL, SLOW_START_ROUND_TRIPS * self._latency)
            started = self.pacer.requests - self._requests_at_change
            if elapsed >= interval and 2 * self._answers_since_change >= started:
                if self._in_use(now):
                    self._set_rate(rate * 2, now)
                else:
                    self._restart_count(now)
        elif elapsed >= 0.1:
            if self._in_use(now):
                quiet = now - self._quiet_since
                step = self._step * 2 ** (quiet / PROBE_DOUBLING)
                step = min(step, rate * PROBE_MAX_GROWTH)
                self._set_rate(rate + step * elapsed, now)
            else:
                # Idle time earns no increase: the throttle was not probed.
                self._last_change = now
                self._requests_at_change = self.pacer.requests

    def on_throttle(self) -> None:
        """Cut the rate after a 429 (the pause is already announced to the pacer)."""
        now = self.pacer.now()
        episode = self._episode
        if episode is not None and now >= episode.ends:
            self._close_episode(now)
            episode = None
        if episode is None:
            bounds = FIRST_CUT if self._slow_start else None
            self._slow_start = False
            self.episodes += 1
            episode = self._episode = _Episode(
                started=now,
                ends=max(self.pacer.paused_until, now + MIN_EPISODE),
                sent_rate=self.pacer.send_rate(now),
                bounds=bounds,
            )
        else:
            # A longer Retry-After within the episode stretches it.
            episode.ends = max(episode.ends, self.pacer.paused_until)
        episode.throttled += 1
        self._estimate(episode)


# -- the two together -------------------------------------------------------------------------


class RateLimiter:
    """Pace request starts; adapt to throttling when ``adaptive`` is set."""

    def __init__(
        self,
        *,
        rate: float,
        adaptive: bool = False,
        max_rate: float = 5000.0,
        min_rate: float = 1.0,
        burst_seconds: float = 0.05,
        max_wait: float = 0.05,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.pacer = Pacer(
            rate=rate, burst_seconds=burst_seconds, max_wait=max_wait, clock=clock, sleep=sleep
        )
        self.adaptive = adaptive
        self.max_rate = max(max_rate, rate) if adaptive else rate
        self.min_rate = min(min_rate, rate)
        self.control = (
            AdaptiveRate(self.pacer, max_rate=self.max_rate, min_rate=self.min_rate)
            if adaptive
            else None
        )
        self.throttled = 0

    @property
    def rate(self) -> float:
        """Return the current rate in requests per second."""
        return self.pacer.rate

    @property
    def requests(self) -> int:
        """Return the requests started so far."""
        return self.pacer.requests

    @property
    def episodes(self) -> int:
        """Return the bursts of 429s the rate was cut for."""
        return self.control.episodes if self.control else 0

    @property
    def peak_rate(self) -> float:
        """Return the highest rate set."""
        return self.control.peak_rate if self.control else self.pacer.rate

    @property
    def found(self) -> float:
        """Return the ceiling found (see ``AdaptiveRate.found``); a fixed rate is its own."""
        return self.control.found if self.control else self.pacer.rate

    @property
    def paused_until(self) -> float:
        """Return the clock time before which no request starts."""
        return self.pacer.paused_until

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        await self.pacer.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now."""
        self.pacer.pause(seconds)

    def on_answer(self, latency: float | None = None) -> None:
        """Record an answer the throttle let through; grow the rate in auto mode.

        ``latency`` is the request's round trip in seconds, when the caller knows it.
        """
        if self.control is not None:
            self.control.on_answer(latency)

    def on_throttle(self, retry_after: float | None) -> None:
        """Back off after a 429 and pause everyone for ``Retry-After``."""
        self.throttled += 1
        if retry_after:
            self.pacer.pause(retry_after)
        if self.control is not None:
            self.control.on_throttle()
