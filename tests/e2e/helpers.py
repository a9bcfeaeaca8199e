"""Helpers for end-to-end tests: produce inputs, wait for outputs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaProducer

from edustream.demo.outputs import OutputCounter
from edustream.demo.scenario import Kind, Publication
from topics import outputs


async def produce(bootstrap: str, items: list[Publication]) -> None:
    """Send records and wait until the broker acknowledged each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    try:
        futures = [
            await producer.send(p.spec.name, value=p.value, key=p.key) for p in items
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Outputs:
    """Reads every output topic from the start; test code filters by its ids."""

    def __init__(self, bootstrap: str, kinds: list[Kind] | None = None) -> None:
        self.counter = OutputCounter(bootstrap, outputs(), kinds or [])

    async def __aenter__(self) -> Outputs:
        await self.counter.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.counter.stop()

    def records(self, topic: str, **match: Any) -> list[dict[str, Any]]:
        """Records seen on topic whose fields equal every given value."""
        return [
            r
            for r in self.counter.records.get(topic, [])
            if all(str(r.get(k)) == str(v) for k, v in match.items())
        ]

    async def wait_for(
        self, topic: str, count: int, timeout_s: float = 60.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Wait until at least count matching records arrived, then return all."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.records(topic, **match)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        return self.records(topic, **match)

    async def settle(self, seconds: float = 2.0) -> None:
        """Give late or duplicate outputs time to show up."""
        await asyncio.sleep(seconds)
