"""Read every consumer group's committed offsets and every log end offset.

Duties:

- carry one poll's raw readings (``OffsetSnapshot``);
- read them from Kafka (``OffsetReader``): the topics and their partitions
  from the cluster metadata, each group's committed offsets through the
  admin client, and the log end offsets through a consumer that joins no
  group.

Broker gaps
-----------
The embedded broker (Tansu) answers ListGroups, DescribeGroups, ListOffsets
and OffsetFetch for named partitions, but closes the connection on an
OffsetFetch that asks for "every partition of the group" (topics = null).
So the reader always names the partitions: every partition of every
non-internal topic. A partition the group never committed comes back as
-1 and is left out. Apache Kafka answers both forms; naming them costs one
larger request per group.

Tansu also answers ListOffsets (latest) with the base offset of the
partition's last record batch plus one, not the offset after its last
record: ten records produced in one batch read as a log end of 1. The
high watermark in a Fetch answer is right, so the reader fetches the last
listed record of every non-empty partition and keeps the larger of the
two. On Apache Kafka that fetch returns the last batch and a high
watermark equal to the listed end, so the same code serves both, at the
cost of one small batch per partition per poll.

OffsetFetch carries no commit time, so ``committed_at`` is never known and
the monitor sees STOP where Burrow, reading ``__consumer_offsets``, could
tell STALL (see ``consumers.lag.burrow``). A group that has joined but not
committed yet has no partition to report and is not shown until it commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from edustream.errors import RetriableError

TopicPartitionKey = tuple[str, int]

# Topics whose names start with "__" belong to Kafka itself
# (__consumer_offsets, __transaction_state); no group's lag on them matters.
_INTERNAL_PREFIX = "__"
_REQUEST_TIMEOUT_MS = 10_000
# How long to wait for every partition's fetch answer, and how often to look.
# A partition that has not answered by then keeps its listed end offset.
_HIGH_WATERMARK_WAIT_S = 2.0
_HIGH_WATERMARK_STEP_S = 0.005
# A fetch that finds no record yet returns after this long rather than the
# default half second, should a partition be truncated under the reader.
_FETCH_MAX_WAIT_MS = 10


@dataclass(frozen=True, slots=True)
class OffsetSnapshot:
    """What one poll read: log end offsets and each group's commits."""

    observed_at: datetime
    log_ends: Mapping[TopicPartitionKey, int]
    committed: Mapping[str, Mapping[TopicPartitionKey, int]] = field(
        default_factory=dict
    )


class OffsetSource(Protocol):
    """Anything that can take one snapshot of the cluster's offsets."""

    async def read(self) -> OffsetSnapshot:
        """Return the offsets as they are now."""
        ...


class OffsetReader:
    """Reads offsets from a Kafka cluster with one admin client and one consumer.

    The consumer has no group id: it only asks for log end offsets, so the
    monitor never appears among the groups it watches.
    """

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=_REQUEST_TIMEOUT_MS
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
        )

    async def start(self) -> None:
        """Connect both clients; a cluster that does not answer is retriable."""
        try:
            await self._admin.start()
            await self._consumer.start()
        except KafkaError as exc:
            await self.stop()
            raise RetriableError(f"lag monitor cannot reach Kafka: {exc}") from exc

    async def stop(self) -> None:
        """Close both clients."""
        with contextlib.suppress(KafkaError):
            await self._consumer.stop()
        with contextlib.suppress(KafkaError):
            await self._admin.close()

    async def __aenter__(self) -> OffsetReader:
        await self.start()
        return self

    async def __aexit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def read(self) -> OffsetSnapshot:
        """Read every log end offset and every group's committed offsets."""
        # Commits are read before log ends: a log end read first could trail
        # a later commit and hide real lag behind a zero. The poll is dated
        # when the log ends are in, because they feed the time lag table;
        # a slow read (a broker busy with a rebalance) would otherwise date
        # records written during it too early.
        try:
            partitions = await self._partitions()
            groups = await self._groups()
            commits = await asyncio.gather(
                *(self._committed(group, partitions) for group in groups)
            )
            log_ends = await self._log_ends(partitions)
            observed_at = datetime.now(UTC)
        except KafkaError as exc:
            raise RetriableError(f"lag poll failed: {exc}") from exc

        return OffsetSnapshot(
            observed_at=observed_at,
            log_ends=log_ends,
            committed=dict(zip(groups, commits, strict=True)),
        )

    async def _partitions(self) -> list[TopicPartition]:
        topics: list[dict[str, Any]] = await self._admin.describe_topics()
        return sorted(
            TopicPartition(topic["topic"], partition["partition"])
            for topic in topics
            if _is_watched(topic)
            for partition in topic["partitions"]
        )

    async def _log_ends(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartitionKey, int]:
        if not partitions:
            return {}
        listed: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        marks = await self._high_watermarks(listed)
        return {
            (tp.topic, tp.partition): max(offset, marks.get(tp) or 0)
            for tp, offset in listed.items()
        }

    async def _high_watermarks(
        self, listed: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        # Fetch the last listed record: it exists, so the broker answers at
        # once with its batch and the high watermark instead of holding the
        # request open for new records. An empty partition (listed 0) has
        # nothing to correct. The partitions are released afterwards so the
        # consumer does not go on fetching between polls.
        filled = {tp: offset for tp, offset in listed.items() if offset > 0}
        if not filled:
            return {}
        consumer = self._consumer
        consumer.assign(list(filled))
        for tp, offset in filled.items():
            consumer.seek(tp, offset - 1)

        deadline = time.monotonic() + _HIGH_WATERMARK_WAIT_S
        marks: dict[TopicPartition, int | None] = {}
        try:
            while True:
                marks = {tp: consumer.highwater(tp) for tp in filled}
                if None not in marks.values() or time.monotonic() > deadline:
                    return marks
                await asyncio.sleep(_HIGH_WATERMARK_STEP_S)
        finally:
            consumer.unsubscribe()

    async def _groups(self) -> list[str]:
        listed: list[tuple[Any, ...]] = await self._admin.list_consumer_groups()
        return sorted({str(entry[0]) for entry in listed})

    async def _committed(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartitionKey, int]:
        if not partitions:
            return {}
        offsets = await self._admin.list_consumer_group_offsets(
            group, partitions=partitions
        )
        return {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if meta.offset >= 0
        }


def _is_watched(topic: Mapping[str, Any]) -> bool:
    name = str(topic["topic"])
    return (
        not topic.get("is_internal", False)
        and not name.startswith(_INTERNAL_PREFIX)
        and topic.get("error_code", 0) == 0
    )
