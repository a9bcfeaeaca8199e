"""Test doubles for the HTTP service tests."""

from __future__ import annotations

import asyncio


class FakeProducer:
    """Stands in for AIOKafkaProducer: records sends, or fails, or hangs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.failure: Exception | None = None
        self.hang = False

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> None:
        """Acknowledge at once, unless told to fail or to never answer."""
        if self.hang:
            await asyncio.Event().wait()
        if self.failure is not None:
            raise self.failure
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        """Key and value of everything sent to ``topic``."""
        return [(key, value) for name, key, value in self.sent if name == topic]
