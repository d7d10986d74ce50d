"""The simulator's throttle: a schedule of rates, parsed, integrated and served on a fake clock."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from click.testing import CliRunner

from batch_enroll.cli import main
from batch_enroll.simulator import Simulator
from batch_enroll.simulator.throttle import RateSchedule, Throttle
from tests.conftest import FULL_KEY

MakeApp = Callable[..., Simulator]


# -- the schedule ------------------------------------------------------------------------------


def test_schedule_parses_phases_and_says_which_rate_is_in_force() -> None:
    schedule = RateSchedule.parse(" 0:100, 15:40 ,30:100")
    assert schedule.phases == ((0.0, 100.0), (15.0, 40.0), (30.0, 100.0))
    assert [schedule.rate_at(t) for t in (0, 14.99, 15, 29.9, 30, 1e6)] == [
        100,
        100,
        40,
        40,
        100,
        100,
    ]
    assert str(schedule) == "0:100,15:40,30:100"
    assert RateSchedule.of([(0, 5), (2.5, 7)]).phases == ((0.0, 5.0), (2.5, 7.0))
    assert RateSchedule.of(schedule) is schedule


def test_schedule_integrates_tokens_across_phases() -> None:
    schedule = RateSchedule.parse("0:100,15:40,30:100")
    assert schedule.tokens_between(0, 10) == pytest.approx(1000)
    assert schedule.tokens_between(14, 16) == pytest.approx(100 + 40)
    assert schedule.tokens_between(10, 35) == pytest.approx(500 + 600 + 500)
    assert schedule.tokens_between(5, 5) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not SECONDS:RATE"),
        ("0:100,15", "'15' is not SECONDS:RATE"),
        ("0:100,x:40", "'x:40' is not SECONDS:RATE"),
        ("5:100", "must start at 0 s"),
        ("0:100,10:0", "at 10 s must be above 0"),
        ("0:100,10:40,10:50", "starts must increase"),
        ("0:inf", "not finite"),
    ],
)
def test_schedule_rejects_what_it_cannot_serve(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateSchedule.parse(text)


# -- the buckets -------------------------------------------------------------------------------


def test_bucket_follows_the_rate_of_the_moment() -> None:
    """A drop shrinks the bucket and slows the refill; a rise refills at the new rate."""
    schedule = RateSchedule.parse("0:10,1:2,3:10")
    throttle = Throttle()

    def take(now: float, key: bytes = b"a") -> int:
        return throttle.take(key, now, rate_limit=None, schedule=schedule, burst=None)

    # From the first request: a full bucket of 10, then empty.
    assert [take(100.0) for _ in range(11)] == [0] * 10 + [1]
    # At 1.5 s the bucket refilled 10 (first second) + 1 (half a second at 2/s), capped at 2.
    assert [take(101.5) for _ in range(3)] == [0, 0, 1]
    # At 2.0 s one more token at 2/s; the next needs 0.5 s, so Retry-After says 1.
    assert [take(102.0) for _ in range(2)] == [0, 1]
    # From 3 s at 10/s again: 0.5 s of it is 5 tokens, plus the 2 earned at 2/s from 2 s to 3 s.
    assert [take(103.5) for _ in range(8)] == [0] * 7 + [1]
    # Another key has its own bucket, on the same clock: full at the rate of the moment.
    assert [take(103.5, b"b") for _ in range(11)] == [0] * 10 + [1]


def test_a_fixed_rate_is_unchanged_by_the_schedule_machinery() -> None:
    throttle = Throttle()
    taken = [throttle.take(b"a", 0.0, rate_limit=0.5, schedule=None, burst=2) for _ in range(3)]
    assert taken == [0, 0, 2]
    assert throttle.take(b"a", 0.0, rate_limit=None, schedule=None, burst=None) == 0


# -- the app and the command -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_app_throttles_on_its_schedule_from_the_first_request(sim_app: MakeApp) -> None:
    app = sim_app(rate_schedule="0:3,10:1")
    clock = Clock()
    app._clock = clock
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://lms.test", auth=("api", FULL_KEY)
    ) as http:

        async def statuses(count: int) -> list[int]:
            return [(await http.get("/odata/v2/Users")).status_code for _ in range(count)]

        assert await statuses(4) == [200, 200, 200, 429]
        clock.now += 10.0  # the second phase: one token a second, a bucket of one
        assert await statuses(2) == [200, 429]
        app.reset()  # a reset starts the schedule over, at the next first request
        clock.now += 100.0
        assert await statuses(4) == [200, 200, 200, 429]
    assert app.stats.throttled == 1


def test_create_app_takes_a_schedule_or_a_rate_not_both(sim_app: MakeApp) -> None:
    assert sim_app(rate_schedule=[(0, 5)]).rate_schedule == RateSchedule(((0.0, 5.0),))
    with pytest.raises(ValueError, match="rate_schedule replaces rate_limit"):
        sim_app(rate_schedule="0:5", rate_limit=5)
    with pytest.raises(ValueError, match="rate_schedule"):
        sim_app(rate_schedule="0:5,1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate-schedule", "0:100,soon:40"], "--rate-schedule: rate_schedule phase 'soon:40'"),
        (["--rate-schedule", "0:100", "--rate-limit", "50"], "not both"),
    ],
)
def test_simulate_rejects_a_bad_schedule_in_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", "--port", "0", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
