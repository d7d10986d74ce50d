"""Throttle the simulator's API keys: one token bucket per key, at a rate that may move.

A tenant's ceiling is shared with its other integrations, so it drops when they get busy and
recovers when they finish. A ``RateSchedule`` plays that: ``"0:100,15:40,30:100"`` means 100
requests per second from the first request on, 40 from 15 s after it, 100 again from 30 s.
Every key's bucket refills at the schedule's rate of the moment and holds one second's worth
of it (or ``burst`` tokens), so a drop also shrinks what a full bucket can absorb.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["RateSchedule", "Throttle"]

# A bucket table keyed by arbitrary client headers must not grow without bound.
_MAX_BUCKETS: Final = 4096


@dataclass(frozen=True)
class RateSchedule:
    """Requests per second by seconds since the first request: ``(start, rate)`` phases."""

    phases: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("rate_schedule needs at least one SECONDS:RATE phase")
        if self.phases[0][0] != 0:
            raise ValueError("rate_schedule must start at 0 s (the first request)")
        for start, rate in self.phases:
            if not (math.isfinite(start) and math.isfinite(rate)):
                raise ValueError("rate_schedule holds a number that is not finite")
            if not rate > 0:
                raise ValueError(f"rate_schedule rate at {start:g} s must be above 0")
        starts = [start for start, _ in self.phases]
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError("rate_schedule phase starts must increase")

    @classmethod
    def parse(cls, text: str) -> RateSchedule:
        """Read ``"SECONDS:RATE,SECONDS:RATE,..."``; raise ``ValueError`` naming the bad part."""
        phases: list[tuple[float, float]] = []
        for part in text.split(","):
            seconds, colon, rate = part.partition(":")
            try:
                if not colon:
                    raise ValueError
                phases.append((float(seconds), float(rate)))
            except ValueError:
                raise ValueError(
                    f"rate_schedule phase {part.strip()!r} is not SECONDS:RATE, e.g. 15:40"
                ) from None
        return cls(tuple(phases))

    @classmethod
    def of(cls, value: str | Sequence[tuple[float, float]] | RateSchedule) -> RateSchedule:
        """Return a schedule from its text, its ``(start, rate)`` pairs, or itself."""
        if isinstance(value, RateSchedule):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(tuple((float(start), float(rate)) for start, rate in value))

    def rate_at(self, elapsed: float) -> float:
        """Return the rate in force ``elapsed`` seconds after the first request."""
        index = bisect.bisect_right(self.phases, elapsed, key=lambda phase: phase[0]) - 1
        return self.phases[max(0, index)][1]

    def tokens_between(self, start: float, end: float) -> float:
        """Return the tokens the schedule grants from ``start`` to ``end`` seconds."""
        total = 0.0
        phases = self.phases
        for i, (begins, rate) in enumerate(phases):
            ends = phases[i + 1][0] if i + 1 < len(phases) else math.inf
            overlap = min(end, ends) - max(start, begins)
            if overlap > 0:
                total += overlap * rate
        return total

    def __str__(self) -> str:
        return ",".join(f"{start:g}:{rate:g}" for start, rate in self.phases)


class Throttle:
    """Token buckets per key; the schedule's clock starts at the first request of any key."""

    def __init__(self) -> None:
        self._buckets: dict[bytes, list[float]] = {}
        self._origin: float | None = None

    def take(
        self,
        identity: bytes,
        now: float,
        *,
        rate_limit: float | None,
        schedule: RateSchedule | None,
        burst: float | None,
    ) -> int:
        """Spend a token of this key's bucket; return 0, or whole seconds until one is there."""
        origin = 0.0
        if schedule is None:
            if rate_limit is None:
                return 0
            rate = rate_limit
        else:
            if self._origin is None:
                self._origin = now
            origin = self._origin
            rate = schedule.rate_at(now - origin)
        capacity = burst if burst is not None else max(1.0, rate)
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[identity] = [capacity, now]
        if schedule is None:
            refill = (now - bucket[1]) * rate
        else:
            refill = schedule.tokens_between(bucket[1] - origin, now - origin)
        tokens = min(capacity, bucket[0] + refill)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / rate))
