"""The lag monitor's state for every group and partition it watches.

Duties:

- keep one commit window per group and partition, and one lookup table per
  topic partition;
- take the poller's readings (``LagMonitor.observe``);
- report every partition's lag, time lag and status (``LagMonitor.report``);
- summarise partitions into one line per group (``summarise``).

The lookup table belongs to the topic partition, not to a group: every group
reading the partition measures against the same log end offset history.
Nothing here does I/O; the poller calls ``observe`` for each group and
partition it reads, then ``report`` when it publishes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from consumers.lag.burrow import WINDOW_SIZE, PartitionWindow, evaluate, group_status
from consumers.lag.model import GroupLag, PartitionLag
from consumers.lag.timelag import TABLE_SIZE, TimeLagEstimator

_GroupPartition = tuple[str, str, int]
_TopicPartition = tuple[str, int]


class LagMonitor:
    """Windows and lookup tables for every group and partition seen so far."""

    def __init__(
        self, window_size: int = WINDOW_SIZE, table_size: int = TABLE_SIZE
    ) -> None:
        self._window_size = window_size
        self._table_size = table_size
        self._windows: dict[_GroupPartition, PartitionWindow] = {}
        self._tables: dict[_TopicPartition, TimeLagEstimator] = {}

    def observe(
        self,
        group: str,
        topic: str,
        partition: int,
        *,
        committed_offset: int,
        log_end_offset: int,
        observed_at: datetime,
        committed_at: datetime | None = None,
    ) -> None:
        """Record one poll's reading for one group on one partition."""
        window = self._windows.get((group, topic, partition))
        if window is None:
            window = PartitionWindow(self._window_size)
        window.record(
            committed_offset, log_end_offset, observed_at, committed_at=committed_at
        )
        self._windows[(group, topic, partition)] = window

        table = self._tables.get((topic, partition))
        if table is None:
            table = TimeLagEstimator(self._table_size)
        table.record(log_end_offset, observed_at)
        self._tables[(topic, partition)] = table

    def report(self, now: datetime) -> list[PartitionLag]:
        """Return every watched partition's reading at ``now``, in key order."""
        return [
            reading
            for key in sorted(self._windows)
            if (reading := self._read(key, now)) is not None
        ]

    def forget_group(self, group: str) -> None:
        """Stop watching a group, for instance after it was deleted."""
        for key in [key for key in self._windows if key[0] == group]:
            del self._windows[key]

    def forget_topic(self, topic: str) -> None:
        """Stop watching a topic and every group's position on it."""
        for key in [key for key in self._windows if key[1] == topic]:
            del self._windows[key]
        for table_key in [key for key in self._tables if key[0] == topic]:
            del self._tables[table_key]

    def _read(self, key: _GroupPartition, now: datetime) -> PartitionLag | None:
        group, topic, partition = key
        window = self._windows[key]
        latest = window.latest
        if latest is None:
            return None

        # A zero offset lag is a zero time lag even if another group's poll
        # has since moved the shared table's log end further on.
        table = self._tables[(topic, partition)]
        lag_seconds = (
            table.lag_seconds(latest.committed_offset, now) if latest.lag else 0.0
        )

        return PartitionLag(
            group=group,
            topic=topic,
            partition=partition,
            committed=latest.committed_offset,
            log_end=latest.log_end_offset,
            lag=latest.lag,
            lag_seconds=lag_seconds,
            status=evaluate(window, now),
        )


def summarise(partitions: Iterable[PartitionLag]) -> list[GroupLag]:
    """Fold partition readings into one summary per group, ordered by group."""
    by_group: defaultdict[str, list[PartitionLag]] = defaultdict(list)
    for reading in partitions:
        by_group[reading.group].append(reading)

    return [_summarise_group(group, by_group[group]) for group in sorted(by_group)]


def _summarise_group(group: str, readings: list[PartitionLag]) -> GroupLag:
    return GroupLag(
        group=group,
        status=group_status(reading.status for reading in readings),
        partitions=len(readings),
        max_lag=max(reading.lag for reading in readings),
        max_lag_seconds=max(reading.lag_seconds for reading in readings),
        sum_lag=sum(reading.lag for reading in readings),
    )
