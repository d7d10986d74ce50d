"""Progress reports: cheap for a fast run, and always a final one."""

from __future__ import annotations

import pytest

from batch_enroll import Progress
from batch_enroll import progress as progress_module
from batch_enroll.progress import ProgressFeed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", fake)
    return fake


def test_a_fast_run_is_reported_about_ten_times_a_second(clock: Clock) -> None:
    seen: list[Progress] = []
    feed = ProgressFeed(seen.append)
    feed.begin(2000)
    for n in range(2000):
        clock.now += 0.001  # a row a millisecond: 2 s in all
        feed.finished("enrolled" if n % 4 else "failed")
    feed.end()
    assert 20 <= len(seen) <= 23  # the start, ten a second, the end
    assert seen[0].done == 0
    last = seen[-1]
    assert (last.done, last.total) == (2000, 2000)
    assert dict(last.counts) == {"enrolled": 1500, "failed": 500}
    assert last.rate == pytest.approx(1000, rel=0.01)


def test_the_end_is_reported_even_right_after_another_report(clock: Clock) -> None:
    seen: list[Progress] = []
    feed = ProgressFeed(seen.append)
    feed.begin(1)
    clock.now += 1
    feed.finished("enrolled")
    feed.end()
    assert [p.done for p in seen] == [0, 1, 1]


def test_a_progress_cannot_be_changed_by_its_listener(clock: Clock) -> None:
    seen: list[Progress] = []
    feed = ProgressFeed(seen.append)
    feed.begin(1)
    feed.finished("enrolled")
    feed.end()
    with pytest.raises(TypeError):
        seen[-1].counts["enrolled"] = 5  # type: ignore[index]
