"""The runtime's batched loop: outputs stored, then state, then the ack.

A stand-in stream hands events to ``run_in_batches`` and records every ack;
the step's outputs are futures the test resolves (or fails) itself, so each
test controls when the broker "stores" what the step sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from streams.runtime import Input, Outbox, run_in_batches, settle


@dataclass
class Stream:
    """Enough of a Faust stream: events, manual acks, an app that can crash."""

    events_given: list[Any]
    acked: list[int] = field(default_factory=list)
    crashed: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = SimpleNamespace(crash=self._crash)

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[Any]:
        for event in self.events_given:
            await asyncio.sleep(0)
            yield event

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True

    async def _crash(self, exc: BaseException) -> None:
        self.crashed.append(exc)


def event(offset: int) -> Any:
    message = SimpleNamespace(
        key=b"k", value=b"v", topic="t", partition=0, offset=offset, timestamp=0.0
    )
    return SimpleNamespace(message=message)


async def test_settle_writes_state_only_after_every_output_is_stored() -> None:
    """Writes of all outboxes wait for the outputs of all of them."""
    loop = asyncio.get_running_loop()
    stored = [loop.create_future() for _ in range(2)]
    written: list[str] = []
    outboxes = [Outbox(), Outbox()]
    for name, outbox, future in zip("ab", outboxes, stored, strict=True):
        outbox.sent(future)
        outbox.once_sent(lambda name=name: written.append(name))

    settling = asyncio.ensure_future(settle(outboxes))
    stored[0].set_result(None)
    await asyncio.sleep(0)
    assert written == []

    stored[1].set_result(None)
    await settling
    assert written == ["a", "b"]


async def test_an_input_is_acked_after_its_outputs_and_its_state() -> None:
    """Each input is acknowledged only once its outputs are stored and its
    state written; inputs are decided in order without waiting for that."""
    loop = asyncio.get_running_loop()
    stored: dict[int, asyncio.Future[None]] = {}
    log: list[str] = []
    all_decided = asyncio.Event()

    async def step(item: Input, outbox: Outbox) -> str:
        log.append(f"decided:{item.offset}")
        stored[item.offset] = loop.create_future()
        if len(stored) == 3:
            all_decided.set()
        outbox.sent(stored[item.offset])
        outbox.once_sent(lambda: log.append(f"written:{item.offset}"))
        return "done"

    stream = Stream([event(0), event(1), event(2)])
    running = asyncio.ensure_future(run_in_batches("test", stream, step))
    await all_decided.wait()
    await asyncio.sleep(0.01)
    assert stream.acked == []

    for future in stored.values():
        future.set_result(None)
    await running

    assert stream.acked == [0, 1, 2]
    assert log[:3] == ["decided:0", "decided:1", "decided:2"]
    assert sorted(log[3:]) == ["written:0", "written:1", "written:2"]


async def test_an_output_the_broker_refused_stops_the_flow_unacked() -> None:
    """When an output cannot be stored nothing of its group is written or
    acknowledged, and the app is crashed so a restart reads it again."""
    loop = asyncio.get_running_loop()
    written: list[int] = []
    refused = loop.create_future()

    async def step(item: Input, outbox: Outbox) -> str:
        outbox.sent(refused)
        outbox.once_sent(lambda: written.append(item.offset))
        return "done"

    stream = Stream([event(0)])
    running = asyncio.ensure_future(run_in_batches("test", stream, step))
    await asyncio.sleep(0.01)
    refused.set_exception(RuntimeError("broker gone"))

    with pytest.raises(ExceptionGroup):
        await running
    assert (stream.acked, written) == ([], [])
    assert [type(exc) for exc in stream.crashed] == [RuntimeError]
