"""Time lag: how long ago the oldest record a group has not consumed was written.

Duties:

- keep a bounded table of (log end offset, time) points for one partition;
- estimate the time lag of a committed offset from that table.

The method is kafka-lag-exporter's lookup table. Every poll records the
partition's log end offset and when it was read. The time lag of committed
offset ``c`` is ``now`` minus the moment the log end offset passed ``c``,
which is when record ``c``, the first one the group has not consumed, was
written. That moment is interpolated linearly between the last point at or
below ``c`` and the first point above it.

Table upkeep
------------
- A point no newer than the newest one is ignored (out of order).
- While the log end offset stands still the newest point moves forward in
  time instead of a new point being added, so an idle partition keeps one
  flat segment (its first and last points) rather than filling the table.
- The table keeps ``size`` points (60 by default, as kafka-lag-exporter) and
  drops the oldest.
- A log end offset below the newest point means the log was truncated or
  recreated; the embedded broker keeps topics in memory and loses them on a
  restart. The old points describe another log, so the table starts again
  from the new point. (kafka-lag-exporter ignores such points, which would
  leave the table stale until the new log grew past the old end.)

Edges
-----
- ``c`` at or past the newest log end offset: 0. The log end has not passed
  ``c``, which also covers every partition with zero offset lag.
- ``c`` below the oldest point: the log end passed ``c`` before the table
  begins. The moment is extrapolated back along the table's overall rate
  (oldest to newest point), as kafka-lag-exporter does, because clamping to
  the oldest point would understate a far-behind group by the whole gap.
  A table that shows no growth (one point, or one flat segment) has no rate;
  then the oldest point's time is used, a lower bound on the time lag.
- The result is never negative: a ``now`` earlier than the table gives 0.

These choices keep the time lag non-increasing as the committed offset grows
and zero at the end offset.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from datetime import datetime

# kafka-lag-exporter's default lookup table size.
TABLE_SIZE = 60


@dataclass(frozen=True, slots=True)
class LogEndPoint:
    """The partition's log end offset as read at one moment."""

    offset: int
    at: datetime


class TimeLagEstimator:
    """Lookup table of log end offsets over time for one partition."""

    def __init__(self, size: int = TABLE_SIZE) -> None:
        if size < 2:
            raise ValueError("a lookup table needs room for at least two points")

        self._points: deque[LogEndPoint] = deque(maxlen=size)

    @property
    def points(self) -> tuple[LogEndPoint, ...]:
        """Points in the table, oldest first."""
        return tuple(self._points)

    @property
    def log_end_offset(self) -> int | None:
        """The newest recorded log end offset, or None before the first."""
        return self._points[-1].offset if self._points else None

    def record(self, log_end_offset: int, at: datetime) -> None:
        """Add one reading of the log end offset, keeping the table's rules."""
        if log_end_offset < 0:
            raise ValueError("offsets must be zero or more")
        if at.utcoffset() is None:
            raise ValueError("times must be timezone-aware")

        point = LogEndPoint(log_end_offset, at)
        if not self._points:
            self._points.append(point)
            return

        newest = self._points[-1]
        if at <= newest.at:
            return
        if log_end_offset < newest.offset:
            self._points.clear()
            self._points.append(point)
        elif self._extends_flat_segment(log_end_offset):
            self._points[-1] = point
        else:
            self._points.append(point)

    def lag_seconds(self, committed_offset: int, now: datetime) -> float:
        """Return the estimated time lag of ``committed_offset`` at ``now``.

        Raises ValueError before the first recorded point: with no log end
        offset there is nothing to measure against.
        """
        if not self._points:
            raise ValueError("no log end offset recorded yet")

        passed_at = self._passed_at(committed_offset)
        if passed_at is None:
            return 0.0
        return max(0.0, now.timestamp() - passed_at)

    def _extends_flat_segment(self, offset: int) -> bool:
        points = self._points
        return len(points) >= 2 and points[-1].offset == offset == points[-2].offset

    def _passed_at(self, offset: int) -> float | None:
        # The first point strictly above the offset closes the segment in
        # which the log end passed it.
        above = bisect_right(self._points, offset, key=lambda point: point.offset)
        if above == len(self._points):
            return None
        if above == 0:
            return self._extrapolate(offset)
        return _interpolate(self._points[above - 1], self._points[above], offset)

    def _extrapolate(self, offset: int) -> float:
        oldest, newest = self._points[0], self._points[-1]
        if newest.offset == oldest.offset:
            return oldest.at.timestamp()

        start = oldest.at.timestamp()
        seconds_per_offset = (newest.at.timestamp() - start) / (
            newest.offset - oldest.offset
        )
        return start - (oldest.offset - offset) * seconds_per_offset


def _interpolate(left: LogEndPoint, right: LogEndPoint, offset: int) -> float:
    start = left.at.timestamp()
    elapsed = right.at.timestamp() - start
    return start + (offset - left.offset) * elapsed / (right.offset - left.offset)
