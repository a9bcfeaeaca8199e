"""The lag monitor's poll loop.

Duties:

- take one snapshot of offsets, feed it to the Burrow windows and time lag
  tables, and build the view the dashboard, the API, the metrics and the
  CLI serve (``LagService.poll``);
- poll every interval until stopped, surviving an unreachable cluster
  (``LagService.run``);
- forget groups and topics that are gone, so a deleted group does not
  linger on the dashboard;
- log one debug line per poll, and every group status change at info
  (recovery) or warning (trouble).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import datetime

from consumers.lag.burrow import WINDOW_SIZE
from consumers.lag.changes import status_changes
from consumers.lag.flows import FlowReading, FlowTopics, flow_topics, rates, read_flows
from consumers.lag.history import History
from consumers.lag.model import Status
from consumers.lag.monitor import LagMonitor, summarise
from consumers.lag.offsets import OffsetSnapshot, OffsetSource
from consumers.lag.view import LagView
from edustream.errors import RetriableError
from edustream.logs import get_logger
from topics import CATALOGUE, DEAD_LETTERS

log = get_logger(component="lag")

_GroupPartitions = dict[str, frozenset[tuple[str, int]]]

# Readiness: the view is stale after three missed polls, plus a grace for a
# slow cluster answering one poll late.
_FRESH_POLLS = 3
_FRESH_GRACE_S = 5.0


class LagService:
    """Polls a source of offsets and keeps the latest view and its history."""

    def __init__(
        self,
        source: OffsetSource,
        *,
        poll_interval_s: float = 5.0,
        window_size: int = WINDOW_SIZE,
        history_s: float = 900.0,
        flows: Sequence[FlowTopics] | None = None,
    ) -> None:
        self._source = source
        self.poll_interval_s = poll_interval_s
        self._monitor = LagMonitor(window_size)
        self.history = History(history_s)
        self._flows = (
            list(flows)
            if flows is not None
            else flow_topics(CATALOGUE.values(), DEAD_LETTERS)
        )
        self._view: LagView | None = None
        self._seen: _GroupPartitions = {}
        self._topics: frozenset[str] = frozenset()
        self._readings: dict[str, FlowReading] = {}
        self.polls = 0
        self.failures = 0
        self.last_success: datetime | None = None
        self.running = False

    @property
    def view(self) -> LagView | None:
        """The latest poll's view, or None before the first success."""
        return self._view

    def is_fresh(self, now: datetime) -> bool:
        """True when the last success is at most a few intervals old.

        Three missed polls in a row mean the view no longer describes the
        cluster; a slow poll or a single failure does not.
        """
        if self.last_success is None:
            return False
        age = (now - self.last_success).total_seconds()
        return age <= _FRESH_POLLS * self.poll_interval_s + _FRESH_GRACE_S

    async def poll(self) -> LagView:
        """Take one snapshot and return the view it makes."""
        started = time.perf_counter()
        snapshot = await self._source.read()

        self._forget_vanished(snapshot)
        self._observe(snapshot)
        view = self._build_view(snapshot)

        self._log_changes(view)
        self.history.append(view)
        self._view = view
        self.polls += 1
        self.last_success = snapshot.observed_at
        log.debug(
            "lag_polled",
            groups=len(view.groups),
            partitions=len(view.partitions),
            worst=_worst(view),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return view

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every interval until ``stop`` is set; a failed poll is retried."""
        log.info("lag_monitor_started", poll_interval_s=self.poll_interval_s)
        self.running = True
        try:
            while not stop.is_set():
                started = time.monotonic()
                await self._poll_or_count_failure()

                pause = max(0.0, self.poll_interval_s - (time.monotonic() - started))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        finally:
            self.running = False
            log.info("lag_monitor_stopped", polls=self.polls)

    async def _poll_or_count_failure(self) -> None:
        try:
            await self.poll()
        except RetriableError as exc:
            self.failures += 1
            log.warning("lag_poll_failed", error=str(exc), failures=self.failures)

    def _forget_vanished(self, snapshot: OffsetSnapshot) -> None:
        # A group whose set of committed partitions shrank lost offsets
        # (deleted or expired); its windows restart rather than keep
        # reporting a frozen commit as a stopped consumer.
        current = {
            group: frozenset(offsets) for group, offsets in snapshot.committed.items()
        }
        for group, partitions in self._seen.items():
            if not partitions <= current.get(group, frozenset()):
                self._monitor.forget_group(group)
        self._seen = current

        topics = frozenset(topic for topic, _partition in snapshot.log_ends)
        for topic in self._topics - topics:
            self._monitor.forget_topic(topic)
        self._topics = topics

    def _observe(self, snapshot: OffsetSnapshot) -> None:
        for group, offsets in snapshot.committed.items():
            for (topic, partition), committed in offsets.items():
                log_end = snapshot.log_ends.get((topic, partition))
                if log_end is None:
                    continue
                self._monitor.observe(
                    group,
                    topic,
                    partition,
                    committed_offset=committed,
                    log_end_offset=log_end,
                    observed_at=snapshot.observed_at,
                )

    def _build_view(self, snapshot: OffsetSnapshot) -> LagView:
        partitions = self._monitor.report(snapshot.observed_at)
        previous_at = self.last_success
        seconds = (
            (snapshot.observed_at - previous_at).total_seconds() if previous_at else 0.0
        )

        readings = read_flows(self._flows, snapshot.log_ends)
        flow_rates = [
            rates(self._readings.get(reading.flow), reading, seconds)
            for reading in readings
        ]
        self._readings = {reading.flow: reading for reading in readings}

        return LagView(
            at=snapshot.observed_at,
            poll_interval_s=self.poll_interval_s,
            partitions=tuple(partitions),
            groups=tuple(summarise(partitions)),
            flows=tuple(flow_rates),
        )

    def _log_changes(self, view: LagView) -> None:
        before = _statuses(self._view)
        for change in status_changes(before, _statuses(view)):
            fields = {
                "group": change.group,
                "before": None if change.before is None else str(change.before),
                "after": None if change.after is None else str(change.after),
            }
            if change.is_trouble:
                log.warning("consumer_group_status_changed", **fields)
            else:
                log.info("consumer_group_status_changed", **fields)


def _statuses(view: LagView | None) -> dict[str, Status]:
    if view is None:
        return {}
    return {group.group: group.status for group in view.groups}


def _worst(view: LagView) -> str:
    worst = max(
        (group.status for group in view.groups),
        key=lambda status: status.severity,
        default=None,
    )
    return "none" if worst is None else str(worst)
