"""Read every output topic from the beginning: count kinds, dump records.

The counter assigns itself every partition of the output topics (no consumer
group, so it never disturbs the worker's) and keeps, per kind, the set of
distinct ids seen plus the number of raw records. A record delivered twice
with one id is one output; two ids for one expected output is a double.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from avro_schemas import default_codec
from edustream.demo.scenario import Kind
from edustream.errors import CodecError
from topics.spec import TopicSpec


class OutputCounter:
    """Counts output kinds on the output topics as records arrive."""

    def __init__(
        self, bootstrap: str, topics: list[TopicSpec], kinds: list[Kind]
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._kinds: dict[str, list[Kind]] = defaultdict(list)
        for kind in kinds:
            self._kinds[kind.topic.name].append(kind)
        self.ids: dict[str, set[str]] = {k.name: set() for k in kinds}
        self.raw: dict[str, int] = defaultdict(int)
        self.records: dict[str, list[dict[str, Any]]] = defaultdict(list)
        # Every record's key, decodable or not, for the privacy scan.
        self.keys: dict[str, list[bytes]] = defaultdict(list)
        self.undecodable = 0
        self._task: asyncio.Task[None] | None = None

    def observed(self, kind: str) -> int:
        """Distinct ids seen so far for a kind."""
        return len(self.ids[kind])

    async def start(self) -> None:
        """Begin consuming in the background."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await self._consumer.start()
        parts = []
        for spec in self._topics:
            for p in self._consumer.partitions_for_topic(spec.name) or ():
                parts.append(TopicPartition(spec.name, p))
        self._consumer.assign(parts)
        await self._consumer.seek_to_beginning(*parts)
        self._task = asyncio.create_task(self._consume())

    async def stop(self) -> None:
        """Stop consuming."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _consume(self) -> None:
        codec = default_codec()
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batches.items():
                for msg in messages:
                    self._take(codec, tp.topic, msg.value)
                    if msg.key is not None:
                        self.keys[tp.topic].append(msg.key)

    def _take(self, codec: Any, topic: str, value: bytes | None) -> None:
        self.raw[topic] += 1
        try:
            _, record = codec.decode(value)
        except CodecError:
            self.undecodable += 1
            return
        self.records[topic].append(record)
        for kind in self._kinds.get(topic, ()):
            if kind.where(record):
                self.ids[kind.name].add(kind.id_of(record))

    def dump(self, directory: Path) -> None:
        """Write each output topic, decoded, as JSON lines named after it."""
        directory.mkdir(parents=True, exist_ok=True)
        for spec in self._topics:
            path = directory / f"{spec.name}.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for record in self.records.get(spec.name, []):
                    out.write(
                        json.dumps(record, default=json_default, ensure_ascii=False)
                        + "\n"
                    )


def json_default(value: Any) -> Any:
    """JSON for what Avro decodes to: bytes as base64, the rest as text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
