"""The dashboard's history: points per poll, pruned by age, aligned series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.lag.flows import FlowRate
from consumers.lag.history import History
from consumers.lag.model import GroupLag, PartitionLag, Status
from consumers.lag.view import LagView

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)


def view_at(
    seconds: float, lags: dict[tuple[str, int], int], status: Status = Status.OK
) -> LagView:
    """A view of group "notify" with the given lag per (topic, partition)."""
    partitions = tuple(
        PartitionLag("notify", topic, partition, 0, lag, lag, 0.0, status)
        for (topic, partition), lag in sorted(lags.items())
    )
    group = GroupLag(
        "notify",
        status,
        len(partitions),
        max(lags.values(), default=0),
        0.0,
        sum(lags.values()),
    )
    flow = FlowRate("growth", 10, 5, 1, 2.0, 1.0, 0.0)
    return LagView(
        T0 + timedelta(seconds=seconds),
        5.0,
        partitions,
        (group,) if partitions else (),
        (flow,),
    )


def test_series_align_with_times_and_fill_gaps_with_null() -> None:
    """A partition missing from a poll shows null at that poll's index."""
    history = History(span_s=60)
    history.append(view_at(0, {("a", 0): 5}))
    history.append(view_at(5, {("a", 0): 7, ("a", 1): 2}, Status.WARN))

    document = history.to_dict()

    start = round(T0.timestamp() * 1000)
    assert document["times"] == [start, start + 5000]
    assert document["groups"]["notify"] == {
        "status": ["OK", "WARN"],
        "sum_lag": [5, 9],
        "partitions": {"a/0": [5, 7], "a/1": [None, 2]},
    }
    assert document["flows"]["growth"] == {
        "in_per_s": [2.0, 2.0],
        "out_per_s": [1.0, 1.0],
        "dead_letters": [1, 1],
    }
    assert document["span_s"] == 60


def test_points_older_than_the_span_are_dropped() -> None:
    """Only polls within the span before the newest one are kept."""
    history = History(span_s=10)
    for seconds in (0, 4, 8, 12, 16):
        history.append(view_at(seconds, {("a", 0): int(seconds)}))

    kept = [point.at - T0 for point in history.points]

    assert kept == [timedelta(seconds=s) for s in (8, 12, 16)]


def test_a_group_that_left_keeps_its_past() -> None:
    """A group gone from the newest poll still draws its earlier points."""
    history = History(span_s=60)
    history.append(view_at(0, {("a", 0): 3}))
    history.append(view_at(5, {}))

    groups = history.to_dict()["groups"]

    assert groups["notify"]["status"] == ["OK", None]
    assert groups["notify"]["partitions"] == {"a/0": [3, None]}


def test_span_must_be_positive() -> None:
    """A history with no span is refused."""
    with pytest.raises(ValueError, match="positive span"):
        History(span_s=0)
