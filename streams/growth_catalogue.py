"""The venue and activity catalogue, as every growth worker sees it.

Duties:

- read every partition of the compacted venue and activity topics from the
  start, without a consumer group, so each worker holds the whole catalogue
  whichever student partitions it owns (what a Faust ``GlobalTable`` would
  give, see below);
- keep the latest entry per id, forgetting an id on a tombstone;
- say when the initial read has reached the end of both topics, so the
  archive agent judges no scan against a half-read catalogue;
- ``catch_up``: a read barrier. Before a scan is refused for naming an
  unknown venue or activity, the agent waits until the catalogue has read
  everything that was on the catalogue topics at that moment. A venue
  published before the scan was processed is therefore always found, however
  the two topics' fetches interleave; only a venue published after that is
  unknown to the scan.

Why not a ``GlobalTable``: the catalogue topics are written by the venue
catalogue, not by Faust, and have the flow's partition count; faust-streaming
documents that a global table over more than one partition can leave a
worker in an endless recovery loop (its advice is ``partitions=1``), and it
offers no way to wait for a read position. Reading the two topics directly is
a few dozen lines and decodes each entry once.

A catalogue record that does not decode is skipped here; the catalogue check
agent in ``streams.growth`` dead-letters it, once per consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from avro_schemas import default_codec
from edustream.errors import PoisonError
from edustream.growth.events import Activity, Venue
from edustream.logs import get_logger
from topics import growth

log = get_logger(component="growth-catalogue")

# A catalogue holds thousands of entries; big fetches read it in a few round
# trips at start-up.
_MAX_RECORDS = 5000
_POLL_MS = 200
# How long a read barrier may hold the agent. Past it the scan is judged on
# what the catalogue has, rather than stalling the partition behind a broker
# that does not answer.
CATCH_UP_TIMEOUT_S = 5.0


class Catalogue:
    """Venues and activities by id, read from the compacted topics."""

    def __init__(self) -> None:
        self.venues: dict[str, Venue] = {}
        self.activities: dict[str, Activity] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._moved = asyncio.Event()
        self._ready = asyncio.Event()
        self._barrier: asyncio.Task[bool] | None = None
        self._barrier_started = 0.0

    def venue(self, venue_id: str) -> Venue | None:
        """The catalogue entry of a venue, if any."""
        return self.venues.get(venue_id)

    def activity(self, activity_id: str) -> Activity | None:
        """The catalogue entry of an activity, if any."""
        return self.activities.get(activity_id)

    async def start(self, bootstrap: str) -> None:
        """Assign every catalogue partition and start reading from the start."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=_POLL_MS,
        )
        await consumer.start()
        self._consumer = consumer

        for spec in (growth.VENUES, growth.ACTIVITIES):
            for number in sorted(consumer.partitions_for_topic(spec.name) or ()):
                self._partitions.append(TopicPartition(spec.name, number))
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)

        ends = await self._end_offsets()
        self._task = asyncio.create_task(self._read(ends))
        log.info("catalogue_reading", partitions=len(self._partitions))

    async def stop(self) -> None:
        """Stop reading and close the consumer."""
        for task in (self._task, self._barrier):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, KafkaError):
                    await task
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()

    async def wait_ready(self) -> None:
        """Wait until the initial read reached the end of both topics."""
        await self._ready.wait()

    async def catch_up(self, since: float) -> bool:
        """Wait until everything on the topics at ``since`` (or later) is read.

        ``since`` is a ``time.monotonic()`` instant. Callers that asked for a
        barrier at the same moment share one, so a burst of scans naming
        unknown venues costs one offset request. False when the barrier timed
        out.
        """
        barrier = self._barrier
        if barrier is None or self._barrier_started < since:
            self._barrier_started = time.monotonic()
            barrier = asyncio.create_task(self._reach_current_end())
            self._barrier = barrier
        return await asyncio.shield(barrier)

    async def _reach_current_end(self) -> bool:
        ends = await self._end_offsets()
        try:
            await asyncio.wait_for(self._reach(ends), CATCH_UP_TIMEOUT_S)
        except TimeoutError:
            log.warning("catalogue_catch_up_timed_out")
            return False
        return True

    async def _end_offsets(self) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        found = await self._consumer.end_offsets(self._partitions)
        return {tp: int(offset) for tp, offset in found.items()}

    async def _reach(self, ends: dict[TopicPartition, int]) -> None:
        while any(self._positions.get(tp, 0) < end for tp, end in ends.items()):
            self._moved.clear()
            await self._moved.wait()

    async def _read(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        initial = asyncio.create_task(self._reach(ends))
        initial.add_done_callback(lambda _done: self._ready.set())
        try:
            while True:
                batches = await self._consumer.getmany(
                    timeout_ms=_POLL_MS, max_records=_MAX_RECORDS
                )
                for tp, records in batches.items():
                    for record in records:
                        self._apply(tp.topic, record)
                await self._note_positions()
        finally:
            initial.cancel()

    async def _note_positions(self) -> None:
        assert self._consumer is not None
        for tp in self._partitions:
            # Returns at once: every assigned partition has a valid position
            # after the first fetch, so no offset request is sent.
            self._positions[tp] = await self._consumer.position(tp)
        self._moved.set()

    def _apply(self, topic: str, record: ConsumerRecord[bytes, bytes]) -> None:
        key = record.key.decode() if record.key is not None else None
        if record.value is None:
            self._forget(topic, key)
            return

        try:
            if topic == growth.VENUES.name:
                venue = Venue.from_dict(_decode(growth.VENUES.schema, record.value))
                self.venues[venue.venue_id] = venue
            else:
                schema = growth.ACTIVITIES.schema
                activity = Activity.from_dict(_decode(schema, record.value))
                self.activities[activity.activity_id] = activity
        except PoisonError as exc:
            log.debug("catalogue_entry_skipped", topic=topic, reason=exc.reason)

    def _forget(self, topic: str, key: str | None) -> None:
        if key is None:
            return
        if topic == growth.VENUES.name:
            self.venues.pop(key, None)
        else:
            self.activities.pop(key, None)


def _decode(schema: str | None, value: bytes) -> dict[str, object]:
    assert schema is not None
    return default_codec().decode_as(schema, value)
