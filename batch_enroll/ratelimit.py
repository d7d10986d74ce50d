"""One rate limiter shared by every request of a run, retries included.

The tenant's throttle is unpublished, so in ``auto`` mode the limiter finds it:
a slow start doubles the rate until the first 429, then additive increase /
multiplicative decrease keeps it just under the ceiling. A ``Retry-After``
pauses everyone, because the throttle counts the tenant, not one worker.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

Clock = Callable[[], float]


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
        clock: Clock = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self.adaptive = adaptive
        self.max_rate = max_rate if adaptive else rate
        self.min_rate = min(min_rate, rate)
        self._burst_seconds = burst_seconds
        self._clock = clock
        self._next_slot = clock()
        self._paused_until = 0.0
        self._slow_start = adaptive
        self._last_change = clock()
        self._last_decrease = 0.0
        # Answers seen in the last second, to estimate what the throttle admits.
        self._admitted: deque[float] = deque()
        self.throttled = 0
        self.requests = 0
        self.peak_rate = rate

    @property
    def rate(self) -> float:
        """Return the current rate in requests per second."""
        return self._rate

    def _set_rate(self, rate: float) -> None:
        self._rate = max(self.min_rate, min(self.max_rate, rate))
        self.peak_rate = max(self.peak_rate, self._rate)
        self._last_change = self._clock()

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        while True:
            now = self._clock()
            start = max(self._next_slot, now - self._burst_seconds, self._paused_until)
            self._next_slot = start + 1.0 / self._rate
            delay = start - now
            if delay > 0:
                await anyio.sleep(delay)
            # A pause announced while we slept holds us too.
            if self._paused_until <= self._clock():
                self.requests += 1
                return

    def pause(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._next_slot = max(self._next_slot, until)

    def on_answer(self) -> None:
        """Record an answer the throttle let through; grow the rate in auto mode."""
        now = self._clock()
        self._admitted.append(now)
        while self._admitted and self._admitted[0] < now - 1.0:
            self._admitted.popleft()
        if not self.adaptive or now < self._paused_until:
            return
        elapsed = now - self._last_change
        if self._slow_start:
            # Double about every quarter second while the throttle stays silent.
            if elapsed >= 0.25:
                self._set_rate(self._rate * 2)
        elif elapsed >= 0.1:
            # Additive increase: about 2% of the rate per second, probing gently.
            self._set_rate(self._rate + max(0.5, self._rate * 0.02) * elapsed)

    def on_throttle(self, retry_after: float | None) -> None:
        """Back off after a 429 and pause everyone for ``Retry-After``."""
        self.throttled += 1
        now = self._clock()
        if retry_after:
            self.pause(retry_after)
        if not self.adaptive:
            return
        # One decrease per burst of 429s: those already in flight carry no news.
        if now - self._last_decrease < 1.0:
            return
        self._last_decrease = now
        admitted = len(self._admitted)
        if self._slow_start:
            self._slow_start = False
            # What came through in the last second is a fair first guess at the ceiling.
            target = min(self._rate / 2, admitted * 0.95) if admitted else self._rate / 2
            self._set_rate(max(target, self._rate / 4))
        else:
            self._set_rate(self._rate * 0.85)
