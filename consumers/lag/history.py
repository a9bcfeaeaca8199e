"""The last minutes of polls, for the dashboard's charts.

Duties:

- keep a compact point per poll and drop points older than the span
  (``History.append``);
- render the points as aligned series (``History.to_dict``), the document
  ``GET /api/history`` serves::

    span_s   seconds of history kept
    times    poll times, epoch milliseconds, oldest first
    groups   {group: {"status": [...], "sum_lag": [...],
                      "partitions": {"topic/partition": [lag, ...]}}}
    flows    {flow: {"in_per_s": [...], "out_per_s": [...],
                     "dead_letters": [...]}}

Every series has one entry per time; ``null`` where a group or partition
was not seen at that poll.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from consumers.lag.flows import FlowRate
from consumers.lag.model import Status
from consumers.lag.view import LagView

_PartitionKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """What the charts need from one poll."""

    at: datetime
    lags: dict[_PartitionKey, int]
    statuses: dict[str, Status]
    sum_lags: dict[str, int]
    flows: dict[str, FlowRate]


class History:
    """Points of the last ``span_s`` seconds, oldest first."""

    def __init__(self, span_s: float) -> None:
        if span_s <= 0:
            raise ValueError("a history needs a positive span")

        self._span = timedelta(seconds=span_s)
        self._points: deque[HistoryPoint] = deque()

    @property
    def points(self) -> tuple[HistoryPoint, ...]:
        """Points kept, oldest first."""
        return tuple(self._points)

    def append(self, view: LagView) -> None:
        """Add the view's point and drop points older than the span."""
        self._points.append(_point(view))

        horizon = view.at - self._span
        while self._points and self._points[0].at < horizon:
            self._points.popleft()

    def to_dict(self) -> dict[str, Any]:
        """Return the aligned series described in the module docstring."""
        points = list(self._points)
        return {
            "span_s": self._span.total_seconds(),
            "times": [round(point.at.timestamp() * 1000) for point in points],
            "groups": _group_series(points),
            "flows": _flow_series(points),
        }


def _point(view: LagView) -> HistoryPoint:
    return HistoryPoint(
        at=view.at,
        lags={
            (reading.group, reading.topic, reading.partition): reading.lag
            for reading in view.partitions
        },
        statuses={group.group: group.status for group in view.groups},
        sum_lags={group.group: group.sum_lag for group in view.groups},
        flows={flow.flow: flow for flow in view.flows},
    )


def _group_series(points: list[HistoryPoint]) -> dict[str, Any]:
    groups = sorted({group for point in points for group in point.statuses})
    keys = sorted({key for point in points for key in point.lags})

    series: dict[str, Any] = {}
    for group in groups:
        status = [point.statuses.get(group) for point in points]
        series[group] = {
            "status": [None if value is None else str(value) for value in status],
            "sum_lag": [point.sum_lags.get(group) for point in points],
            "partitions": {
                f"{topic}/{partition}": [
                    point.lags.get((group, topic, partition)) for point in points
                ]
                for key_group, topic, partition in keys
                if key_group == group
            },
        }
    return series


def _flow_series(points: list[HistoryPoint]) -> dict[str, Any]:
    flows = sorted({flow for point in points for flow in point.flows})

    def values(flow: str, field: str) -> list[float | int | None]:
        found = [point.flows.get(flow) for point in points]
        return [None if rate is None else getattr(rate, field) for rate in found]

    return {
        flow: {
            "in_per_s": values(flow, "in_per_s"),
            "out_per_s": values(flow, "out_per_s"),
            "dead_letters": values(flow, "dead_letters"),
        }
        for flow in flows
    }
