"""The broker sentinel: proof that the topics are the ones our state came from.

``edustream topics apply`` writes one record with a fresh id to the sentinel
topic when it creates it. The worker reads that id at start-up and checks it
every few seconds. The embedded broker keeps everything in memory, so after
a restart the sentinel is gone (or, if something re-created the topic, it
holds another id): the worker's tables were built from topics that no longer
exist, and carrying on would silently disagree with them. The check makes
that loud instead. A real cluster keeps its data, and the check never fires.
"""

from __future__ import annotations

import contextlib
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from edustream.errors import BrokerLostError
from topics.common import SENTINEL

_KEY = b"sentinel"


async def read_sentinel(bootstrap: str) -> str | None:
    """The sentinel id on the broker, or None when there is none."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=5000
    )
    await consumer.start()
    try:
        tp = TopicPartition(SENTINEL.name, 0)
        if consumer.partitions_for_topic(SENTINEL.name) is None:
            # A topic created after start-up is not in the cached metadata.
            await consumer._client.force_metadata_update()  # noqa: SLF001
        if not consumer.partitions_for_topic(SENTINEL.name):
            return None
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        batch = await consumer.getmany(tp, timeout_ms=3000, max_records=1)
        for message in batch.get(tp, []):
            return bytes(message.value or b"").decode()
        return None
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()


async def ensure_sentinel(bootstrap: str) -> str:
    """Write a sentinel if there is none; return the broker's sentinel id."""
    found = await read_sentinel(bootstrap)
    if found:
        return found
    marker = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            SENTINEL.name, marker.encode(), key=_KEY, partition=0
        )
    finally:
        await producer.stop()
    return await read_sentinel(bootstrap) or marker


async def check_sentinel(
    bootstrap: str, expected: str, *, strict: bool = False
) -> None:
    """Raise BrokerLostError when the broker no longer holds our sentinel.

    An unreachable broker is an outage, not a loss: it is ignored, or with
    strict re-raised as the KafkaError it is.
    """
    try:
        found = await read_sentinel(bootstrap)
    except KafkaError:
        if strict:
            raise
        return
    if found != expected:
        raise BrokerLostError(
            "the broker no longer holds the topics this worker's state was built "
            "from (sentinel missing or replaced: the embedded broker restarted and "
            "lost its memory). Stopping instead of continuing with state that "
            "disagrees with the topics; re-provision and replay the upstream data."
        )
