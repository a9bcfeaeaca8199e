"""Time lag from the log end offset lookup table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.lag.timelag import LogEndPoint, TimeLagEstimator

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return the moment ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def table_of(points: list[tuple[int, float]], size: int = 60) -> TimeLagEstimator:
    """Build an estimator by recording (offset, seconds after T0) in order."""
    estimator = TimeLagEstimator(size)
    for offset, seconds in points:
        estimator.record(offset, at(seconds))
    return estimator


# Log end at 100 (0 s), 200 (10 s), 500 (20 s): 10/s, then 30/s; 20/s overall.
_RISING = [(100, 0.0), (200, 10.0), (500, 20.0)]


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        pytest.param(500, 0.0, id="at-log-end-is-zero"),
        pytest.param(600, 0.0, id="past-log-end-is-zero"),
        pytest.param(100, 30.0, id="oldest-point"),
        pytest.param(150, 25.0, id="inside-first-segment"),
        pytest.param(200, 20.0, id="middle-point"),
        pytest.param(350, 15.0, id="inside-second-segment"),
        pytest.param(440, 12.0, id="late-in-second-segment"),
        pytest.param(60, 32.0, id="extrapolated-before-table"),
        pytest.param(0, 35.0, id="extrapolated-to-offset-zero"),
    ],
)
def test_lag_seconds_interpolates_between_points(
    committed: int, expected: float
) -> None:
    """Time lag is now minus when the log end passed the committed offset."""
    estimator = table_of(_RISING)

    assert estimator.lag_seconds(committed, at(30)) == expected


def test_flat_run_keeps_its_first_and_last_points() -> None:
    """An idle log end moves the newest point instead of adding new ones."""
    estimator = table_of([(100, 0), (100, 4), (100, 8), (200, 10)])

    assert estimator.points == (
        LogEndPoint(100, at(0)),
        LogEndPoint(100, at(8)),
        LogEndPoint(200, at(10)),
    )


@pytest.mark.parametrize(
    ("committed", "expected"),
    [
        pytest.param(100, 12.0, id="passed-when-idle-ended"),
        pytest.param(150, 11.0, id="inside-rise-after-idle"),
        pytest.param(99, 20.1, id="extrapolated-at-overall-rate"),
    ],
)
def test_flat_run_dates_a_record_by_when_the_idle_ended(
    committed: int, expected: float
) -> None:
    """Record 100 was written after the idle spell, not when it began."""
    estimator = table_of([(100, 0), (100, 4), (100, 8), (200, 10)])

    assert estimator.lag_seconds(committed, at(20)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("points", "committed", "expected"),
    [
        pytest.param([(100, 0.0)], 100, 0.0, id="one-point-at-log-end"),
        pytest.param([(100, 0.0)], 50, 20.0, id="one-point-clamps-to-it"),
        pytest.param([(100, 0.0), (100, 8.0)], 50, 20.0, id="flat-table-clamps"),
    ],
)
def test_table_without_rate_clamps_to_oldest_point(
    points: list[tuple[int, float]], committed: int, expected: float
) -> None:
    """With no growth to extrapolate from, the oldest point is a lower bound."""
    estimator = table_of(points)

    assert estimator.lag_seconds(committed, at(20)) == expected


def test_out_of_order_points_are_ignored() -> None:
    """A point no newer than the newest one does not enter the table."""
    estimator = table_of([(100, 10), (200, 5), (300, 10)])

    assert estimator.points == (LogEndPoint(100, at(10)),)


def test_log_end_going_back_restarts_the_table() -> None:
    """A truncated or recreated log makes the old points meaningless."""
    estimator = table_of([(100, 0), (200, 10), (50, 12)])

    assert estimator.points == (LogEndPoint(50, at(12)),)
    assert estimator.log_end_offset == 50
    assert estimator.lag_seconds(40, at(20)) == 8.0


def test_table_keeps_the_newest_size_points() -> None:
    """The table drops its oldest point once it holds ``size`` of them."""
    estimator = table_of([(100 * k, k) for k in range(5)], size=3)

    assert [point.offset for point in estimator.points] == [200, 300, 400]


def test_now_before_the_table_gives_zero() -> None:
    """The time lag is never negative."""
    estimator = table_of(_RISING)

    assert estimator.lag_seconds(150, at(1)) == 0.0


def test_empty_table_cannot_estimate() -> None:
    """Before any log end offset is recorded there is nothing to measure."""
    with pytest.raises(ValueError, match="no log end offset"):
        TimeLagEstimator().lag_seconds(10, at(0))


@pytest.mark.parametrize(
    ("offset", "moment"),
    [
        pytest.param(-1, at(0), id="negative-offset"),
        pytest.param(1, datetime(2024, 9, 2, 8), id="naive-time"),
    ],
)
def test_record_rejects_bad_points(offset: int, moment: datetime) -> None:
    """Negative offsets and naive times are caller errors."""
    estimator = TimeLagEstimator()

    with pytest.raises(ValueError, match="must be"):
        estimator.record(offset, moment)

    assert estimator.points == ()


# Steps of (offset change, milliseconds later); either may go backwards so the
# table's out-of-order and restart rules are exercised too.
_steps = st.lists(
    st.tuples(st.integers(-30, 60), st.integers(-2_000, 20_000)),
    min_size=1,
    max_size=80,
)


def _estimator_from(steps: list[tuple[int, int]], size: int) -> TimeLagEstimator:
    estimator = TimeLagEstimator(size)
    offset, millis = 0, 0
    for offset_step, millis_step in steps:
        offset = max(0, offset + offset_step)
        millis += millis_step
        estimator.record(offset, T0 + timedelta(milliseconds=millis))
    return estimator


@given(
    steps=_steps,
    size=st.integers(2, 60),
    wait_millis=st.integers(0, 10_000_000),
)
def test_lag_seconds_is_monotone_and_zero_at_log_end(
    steps: list[tuple[int, int]], size: int, wait_millis: int
) -> None:
    """Time lag never grows with the committed offset and is 0 at the end."""
    estimator = _estimator_from(steps, size)
    end = estimator.log_end_offset
    assert end is not None
    now = estimator.points[-1].at + timedelta(milliseconds=wait_millis)

    lags = [estimator.lag_seconds(offset, now) for offset in range(end + 3)]

    assert all(earlier >= later for earlier, later in pairwise(lags))
    assert lags[end] == 0.0
    assert min(lags) >= 0.0


@given(steps=_steps, size=st.integers(2, 60))
def test_table_stays_bounded_and_ordered(
    steps: list[tuple[int, int]], size: int
) -> None:
    """Points stay within ``size``, in strictly rising time and rising offset."""
    estimator = _estimator_from(steps, size)
    points = estimator.points

    assert 1 <= len(points) <= size
    assert all(a.at < b.at and a.offset <= b.offset for a, b in pairwise(points))
