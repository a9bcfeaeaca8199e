"""Consumer groups seen from outside, for the fault harness.

Duties:

- ``settle``: wait until every consumer group has committed up to the log
  end of every partition of every topic it reads, so a check made after it
  sees every effect the inputs will ever have;
- ``rewind``: move one group's committed offsets back, as an operator
  replaying a partition from an earlier offset would;
- ``read_partition``: every record of one partition, with its offset.

Offsets come from ``consumers.lag.offsets.OffsetReader``, which works around
the embedded broker's gaps: its ListOffsets answer can name the last batch's
base offset instead of the log end, and it refuses a group commit from a
client that is not a member. So ``rewind`` joins the group (with every
worker of it stopped, under the name of Faust's assignor) to commit, and
``read_partition`` reads up to the end the reader found, never up to
``end_offsets``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from consumers.lag.offsets import OffsetReader, OffsetSnapshot, TopicPartitionKey
from edustream.errors import RetriableError
from edustream.logs import get_logger

log = get_logger(component="groups")

_POLL_S = 0.5
# The dead member of a group killed with SIGKILL stays until its session
# times out; a join before that is held or refused, so rewind retries.
_JOIN_TIMEOUT_S = 60.0


async def snapshot(bootstrap: str) -> OffsetSnapshot:
    """One reading of every log end and every group's commits."""
    async with OffsetReader(bootstrap) as reader:
        return await reader.read()


def behind(
    committed: Mapping[str, Mapping[TopicPartitionKey, int]],
    log_ends: Mapping[TopicPartitionKey, int],
) -> dict[str, dict[TopicPartitionKey, int]]:
    """Per group, the partitions of the topics it reads that it has not
    committed up to ``log_ends``, with how many records it is behind.

    A group reads a topic when it has committed any partition of it; its
    other partitions of that topic count from offset 0.
    """
    lagging: dict[str, dict[TopicPartitionKey, int]] = {}
    for group, offsets in committed.items():
        topics = {topic for topic, _ in offsets}
        gaps = {
            tp: end - offsets.get(tp, 0)
            for tp, end in log_ends.items()
            if tp[0] in topics and end > offsets.get(tp, 0)
        }
        if gaps:
            lagging[group] = gaps
    return lagging


async def settle(bootstrap: str, timeout_s: float) -> dict[str, int]:
    """Wait until every group has committed everything that was in the log
    at the previous look; return, per group and partition, how far behind
    it still is when ``timeout_s`` passes first (empty when all settled).

    Comparing with the previous look's log ends, not the current one's,
    lets a timer that writes every few seconds (the aid expiry clock) not
    hold the wait for ever: what matters is that nothing older is left.
    """
    deadline = time.monotonic() + timeout_s
    lagging: dict[str, dict[TopicPartitionKey, int]] = {"(offsets unread)": {}}
    previous: Mapping[TopicPartitionKey, int] | None = None
    async with OffsetReader(bootstrap) as reader:
        while time.monotonic() < deadline:
            try:
                snap = await reader.read()
            except RetriableError:
                await asyncio.sleep(_POLL_S)
                continue
            if previous is not None:
                lagging = behind(snap.committed, previous)
                if not lagging:
                    return {}
            previous = snap.log_ends
            await asyncio.sleep(_POLL_S)
    return {
        f"{group} on {topic}[{partition}]": behind_by
        for group, gaps in lagging.items()
        for (topic, partition), behind_by in sorted(gaps.items())
    }


async def rewind(
    bootstrap: str, group: str, offsets: Mapping[TopicPartitionKey, int]
) -> None:
    """Commit ``offsets`` for ``group``; every member of it must be stopped.

    The client joins the group as its only member, so the commit carries a
    valid generation, and leaves again without consuming anything.
    """
    topics = sorted({topic for topic, _ in offsets})
    deadline = time.monotonic() + _JOIN_TIMEOUT_S
    while True:
        try:
            await _commit_as_member(bootstrap, group, topics, offsets)
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("rewind_retrying", group=group, error=type(exc).__name__)
            await asyncio.sleep(1.0)


class _AsFaust(RoundRobinPartitionAssignor):  # type: ignore[misc]  # untyped base
    """Round robin under the name of Faust's assignor.

    A group keeps the protocol its members agreed on, and the embedded
    broker keeps it even once the group is empty: a join naming another
    protocol is refused (InconsistentGroupProtocol). Alone in the group,
    the rewinding client needs no more than round robin.
    """

    name = "faust"


async def _commit_as_member(
    bootstrap: str,
    group: str,
    topics: list[str],
    offsets: Mapping[TopicPartitionKey, int],
) -> None:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        rebalance_timeout_ms=4000,
        heartbeat_interval_ms=1000,
        max_poll_records=1,
        partition_assignment_strategy=(_AsFaust,),
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=1)
        assigned = consumer.assignment()
        wanted = {TopicPartition(t, p): o for (t, p), o in offsets.items()}
        missing = set(wanted) - set(assigned)
        if missing:
            raise RuntimeError(f"rewind was not assigned {len(missing)} partitions")
        await consumer.commit(
            {tp: OffsetAndMetadata(offset, "") for tp, offset in wanted.items()}
        )
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
    log.info("group_rewound", group=group, partitions=len(offsets))


Stored = tuple[int, bytes | None, bytes | None]


async def read_partition(
    bootstrap: str, topic: str, partition: int, end: int
) -> list[Stored]:
    """Offset, key and value of every record of one partition below ``end``."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    found: list[Stored] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=2000, max_records=5000)
            if not batch:
                break
            found.extend(
                (m.offset, m.key, m.value) for m in batch.get(tp, []) if m.offset < end
            )
    finally:
        await consumer.stop()
    return found
