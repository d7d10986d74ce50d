"""Tell a caller how sending goes: rows done, rows to do, outcomes so far, pace."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["Progress", "ProgressFeed"]

#: Least seconds between two reports, so a fast run does not spend its time reporting.
MIN_INTERVAL = 0.1


@dataclass(frozen=True)
class Progress:
    """Where a run's sending stands.

    ``total`` is the rows this run sends (not those the validator refused or an
    earlier run finished), ``done`` how many of them have an outcome, ``counts``
    those outcomes by status, and ``rate`` rows finished per second since sending began.
    """

    done: int
    total: int
    counts: Mapping[str, int]
    rate: float


class ProgressFeed:
    """Count finished rows and report them to a callback, about ten times a second at most."""

    def __init__(self, callback: Callable[[Progress], None] | None) -> None:
        self._callback = callback
        self._counts: Counter[str] = Counter()
        self._done = 0
        self._total = 0
        self._started = time.monotonic()
        self._last = 0.0

    def begin(self, total: int) -> None:
        """Start the clock for ``total`` rows to send, and report that."""
        self._total = total
        self._started = self._last = time.monotonic()
        self._report()

    def finished(self, status: str) -> None:
        """Count one finished row; report if the last report is old enough."""
        self._done += 1
        self._counts[status] += 1
        if self._callback is not None and time.monotonic() - self._last >= MIN_INTERVAL:
            self._report()

    def end(self) -> None:
        """Report the final standing, always, so a caller sees where the run stopped."""
        self._report()

    def _report(self) -> None:
        if self._callback is None:
            return
        now = time.monotonic()
        self._last = now
        elapsed = now - self._started
        rate = self._done / elapsed if elapsed > 0 else 0.0
        counts = MappingProxyType(dict(self._counts))
        self._callback(Progress(self._done, self._total, counts, rate))
