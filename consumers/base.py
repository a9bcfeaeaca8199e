"""The loop every downstream subscriber runs.

A subscriber is a consumer group over some output topics that keeps a read
model or delivers notifications. The loop fetches in batches, decodes each
record, hands it to the subscriber and commits the batch's offsets only
after every record in it was handled, so a crash replays rather than loses.
Handlers must be idempotent (they key their Redis writes by the record id);
a replay then changes nothing.

A record that does not decode is logged and skipped: it was written by our
own flows, so it means a bug to fix, and stalling every notification behind
it would hurt more than it helps.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from avro_schemas import default_codec
from edustream.errors import CodecError, RetriableError
from edustream.logs import get_logger
from topics.spec import TopicSpec

log = get_logger(component="subscriber")

_RETRY_S = 1.0


@dataclass(frozen=True)
class Delivered:
    """A decoded output record and where it was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    schema: str
    record: dict[str, Any]


class Subscriber(Protocol):
    """A downstream consumer: its group, its topics and its handler."""

    group: str
    topics: tuple[TopicSpec, ...]

    async def handle(self, item: Delivered) -> None: ...


async def run_subscriber(sub: Subscriber, bootstrap: str, stop: asyncio.Event) -> None:
    """Consume sub's topics until stop is set."""
    consumer = AIOKafkaConsumer(
        *(t.name for t in sub.topics),
        bootstrap_servers=bootstrap,
        group_id=sub.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        rebalance_timeout_ms=4000,
        heartbeat_interval_ms=1000,
        max_poll_records=2000,
    )
    await consumer.start()
    log.info("subscriber_started", group=sub.group)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if batches:
                await _handle_batches(sub, batches)
                await consumer.commit()
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
        log.info("subscriber_stopped", group=sub.group)


async def _handle_batches(sub: Subscriber, batches: dict[Any, list[Any]]) -> None:
    codec = default_codec()
    for tp, messages in batches.items():
        for msg in messages:
            try:
                schema, record = codec.decode(msg.value)
            except CodecError as exc:
                log.error(
                    "undecodable_output",
                    group=sub.group,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=msg.offset,
                    reason=exc.reason,
                )
                continue
            item = Delivered(
                tp.topic, tp.partition, msg.offset, msg.key, schema, record
            )
            await _handle_with_retries(sub, item)


async def _handle_with_retries(sub: Subscriber, item: Delivered) -> None:
    while True:
        try:
            await sub.handle(item)
            return
        except (RetriableError, RedisError) as exc:
            log.warning(
                "subscriber_retrying",
                group=sub.group,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                error=type(exc).__name__,
            )
            await asyncio.sleep(_RETRY_S)
