"""Fixes to faust-streaming 0.15: a restarted worker stays whole, a quiet one quick.

1. True log ends for table recovery. Faust recovers a table by reading its
   changelog up to the partition's log end, which it asks for with
   ListOffsets. The embedded broker (Tansu) answers that with the base
   offset of the partition's last record batch plus one, not the offset
   after its last record: ten changelog records produced in one batch read
   as a log end of 1. Recovery then stops at the first record of the last
   batch and drops the rest, so a restarted worker silently loses the
   newest state in that batch. The consumer thread's ``_highwaters`` now
   keeps the larger of the listed offset and the high watermark of a fetch
   of the last listed record (right on Tansu, equal to the listed offset on
   Apache Kafka): one small fetch per changelog partition per recovery, on
   a consumer that joins no group.

2. No input lost at a rebalance. When a rebalance suspends the flow, Faust
   cancels the hand-over of records it already fetched and moved its read
   position past; after the rebalance it seeks every partition back to its
   committed offset, but aiokafka skips partitions that have no committed
   offset yet, so those records are never read again. ``perform_seek`` now
   also sends every such input partition (not changelogs) back to its first
   offset. Records read again are replays, which at-least-once processing
   already handles.

3. No input lost when streams resume after recovery. Faust resumes the
   input partitions, awaits ``perform_seek`` back to the committed offsets,
   and only then resumes flow control, which empties every agent's queue
   (Faust's stream queues are cleared on resume). The flow is already active
   at that point (recovery resumed it to read the changelogs), so records
   fetched before the seek reach the agents' queues during the await, move
   the consumer's read offset to the end of that fetch, and are then
   cleared unprocessed and unacknowledged; their copies read again after
   the seek lie below the read offset and are dropped as already read. The
   partition's acknowledgements keep a gap that never closes, so its
   offset is never committed again and the worker stops making progress
   after a restart. Flow control is now suspended before the input
   partitions are resumed, so nothing is handed to an agent until the
   queues have been cleared.

4. A short fetch wait, lengthened while a partition starves. Faust builds
   its worker consumer with a fixed ``fetch_max_wait_ms`` of 1.5 s. A
   broker answers a fetch as soon as it has data, but the embedded broker
   holds a fetch that finds none for that whole time, so an input arriving
   on a quiet partition waited up to 1.5 s before the worker saw it
   (callback to receipt: p50 411 ms, p99 775 ms at 100 callbacks/s; with
   50 ms, 27 ms and 52 ms). The wait is now
   ``settings.broker_fetch_max_wait_ms``. The embedded broker also answers
   at that deadline with only the partitions it has read by then, and
   reading a partition of many small batches (what a flow writes record by
   record) is slow. Under a large backlog such partitions got no records at
   all while bigger-batched ones streamed on: a million-record aid backfill
   stopped routing for minutes. ``FetchWait`` therefore doubles the wait
   (up to 1.5 s) while a partition with records waiting has been served
   nothing for ``STARVED_AFTER_S``, and halves it back once none has.

``install`` applies all four, once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from edustream.logs import get_logger
from edustream.settings import get_settings

# How long to wait for the fetch that carries the high watermarks. A fetch of
# an existing record is answered at once; the bound only covers a broker
# that does not answer, where the listed offsets are kept.
_WAIT_S = 5.0
_STEP_S = 0.02

_installed: list[Any] = []
log = get_logger(component="worker")


def install() -> None:
    """Apply every fix (idempotent)."""
    if _installed:
        return
    _install_highwaters()
    _install_perform_seek()
    _install_quiet_resume()
    _install_fetch_wait()
    _installed.append(True)


def _install_fetch_wait() -> None:
    original = AIOKafkaConsumerThread._create_worker_consumer  # noqa: SLF001
    original_fetch = AIOKafkaConsumerThread._fetch_records  # noqa: SLF001

    def _create_worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
        consumer = original(self, transport)
        shortest = get_settings().broker_fetch_max_wait_ms
        # Read when the consumer starts and builds its fetcher.
        consumer._fetch_max_wait_ms = shortest  # noqa: SLF001
        self.edustream_fetch_wait = FetchWait(shortest)
        return consumer

    async def _fetch_records(
        self: Any,
        consumer: AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,  # noqa: ASYNC109 - Faust's signature
        max_records: int | None = None,
    ) -> Mapping[TP, list[Any]]:
        records = await original_fetch(
            self, consumer, active_partitions, timeout, max_records
        )
        fetch_wait = getattr(self, "edustream_fetch_wait", None)
        if fetch_wait is None or not self.consumer.flow_active:
            return records
        # A copy: Faust's loop changes its set of active partitions while
        # this thread reads it.
        active = frozenset(active_partitions or ())
        if active:
            fetcher = consumer._fetcher  # noqa: SLF001
            subscription = fetcher._subscriptions.subscription  # noqa: SLF001
            assignment = None if subscription is None else subscription.assignment
            if assignment is not None:
                wait = fetch_wait.observe(
                    time.monotonic(), active, records, assignment.state_value
                )
                fetcher._fetch_max_wait_ms = wait  # noqa: SLF001
        return records

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]  # noqa: SLF001
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]  # noqa: SLF001


# A partition with records waiting that got none for this long is starved.
STARVED_AFTER_S = 2.0
# The longest fetch wait: Faust's own.
LONGEST_FETCH_WAIT_MS = 1500
_CHECK_EVERY_S = 1.0


class FetchWait:
    """The worker's fetch wait: short, and longer while a partition starves.

    ``observe`` is called after every fetch with the partitions Faust asked
    for and the records it got; it returns the wait for the next fetch. A
    partition counts as starved when the consumer knows it holds records
    past its position (its high watermark from earlier fetches) and none of
    them came for ``STARVED_AFTER_S``. Paused partitions, and those Faust
    left out because their agent's buffer is full, are not asked for, so
    they never count.
    """

    def __init__(self, shortest_ms: int) -> None:
        self.shortest_ms = shortest_ms
        self.wait_ms = shortest_ms
        self._waiting_since: dict[TP, float] = {}
        self._checked = 0.0

    def observe(
        self,
        now: float,
        active: frozenset[TP],
        records: Mapping[TP, Any],
        state_of: Callable[[TP], Any],
    ) -> int:
        """Note what a fetch brought; the wait for the next fetch."""
        for tp in records:
            self._waiting_since.pop(tp, None)
        if now - self._checked < _CHECK_EVERY_S:
            return self.wait_ms
        self._checked = now

        starved = 0
        for tp in active:
            state = state_of(tp)
            if state is None or state.paused or tp in records:
                continue
            if not state.has_valid_position:
                # Being reset (aiokafka asserts on reading its position).
                self._waiting_since.pop(tp, None)
                continue
            highwater, position = state.highwater, state.position
            if highwater is None or highwater <= position:
                self._waiting_since.pop(tp, None)
                continue
            since = self._waiting_since.setdefault(tp, now)
            starved += now - since >= STARVED_AFTER_S

        before = self.wait_ms
        if starved:
            self.wait_ms = min(LONGEST_FETCH_WAIT_MS, before * 2)
        else:
            self.wait_ms = max(self.shortest_ms, before // 2)
        if self.wait_ms != before:
            log.info(
                "fetch_wait_changed",
                wait_ms=self.wait_ms,
                starved_partitions=starved,
            )
        return self.wait_ms


def _install_highwaters() -> None:
    original = AIOKafkaConsumerThread._highwaters  # noqa: SLF001

    async def _highwaters(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
        listed = dict(await original(self, partitions))
        if self.consumer.in_transaction:
            return listed
        bootstrap = self._ensure_consumer()._client._bootstrap_servers  # noqa: SLF001
        marks = await high_watermarks(bootstrap, listed)
        return {tp: max(offset, marks.get(tp) or 0) for tp, offset in listed.items()}

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]  # noqa: SLF001


def _install_perform_seek() -> None:
    original = Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        await original(self)
        changelogs = set(self.app.tables.changelog_topics)
        committed = self._committed_offset
        fresh = [
            tp
            for tp in self.assignment()
            if tp.topic not in changelogs and not committed.get(tp)
        ]
        if not fresh:
            return
        firsts = await self.earliest_offsets(*fresh)
        for tp in fresh:
            await self.seek(tp, int(firsts.get(tp) or 0))

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]


def _install_quiet_resume() -> None:
    # Both end recovery the same way: resume input partitions, seek, resume
    # flow control. ``_resume_streams`` serves an app without tables.
    for name in ("on_recovery_completed", "_resume_streams"):
        setattr(Recovery, name, suspend_flow_first(getattr(Recovery, name)))


def suspend_flow_first(original: Any) -> Any:
    """Wrap a recovery step that resumes streams: suspend flow control first."""

    async def resume(self: Any, generation_id: int = 0) -> None:
        # Agents' queues hold no input here: input partitions stay paused
        # through recovery. Faust suspends flow control at every rebalance
        # in the same way; the original resumes it once the seek is done.
        self.app.flow_control.suspend()
        await original(self, generation_id)

    return resume


async def high_watermarks(
    bootstrap: Any, listed: Mapping[TP, int]
) -> dict[TP, int | None]:
    """The high watermark of each non-empty partition, from one fetch."""
    filled = {tp: offset for tp, offset in listed.items() if offset > 0}
    if not filled:
        return {}

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = {TopicPartition(tp.topic, tp.partition): tp for tp in filled}
        consumer.assign(list(parts))
        for part, tp in parts.items():
            consumer.seek(part, filled[tp] - 1)
        return await _read_marks(consumer, parts)
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()


async def _read_marks(
    consumer: AIOKafkaConsumer, parts: dict[TopicPartition, TP]
) -> dict[TP, int | None]:
    deadline = time.monotonic() + _WAIT_S
    while True:
        with contextlib.suppress(KafkaError):
            await consumer.getmany(timeout_ms=int(_STEP_S * 1000), max_records=1)
        marks = {tp: consumer.highwater(part) for part, tp in parts.items()}
        if None not in marks.values() or time.monotonic() > deadline:
            return marks
        await asyncio.sleep(_STEP_S)
