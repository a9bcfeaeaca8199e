"""The loop every agent runs each input through.

For one input: decode, validate, decide and emit happen in the flow's step
function; this module wraps that step with the guarantees that are the same
for every flow:

- a ``PoisonError`` (or any unexpected exception) sends the input to the
  flow's dead-letter topic with the reason, source topic, partition, offset
  and original bytes, and the agent goes on;
- a ``RetriableError`` retries the same input with capped backoff, forever:
  the partition waits rather than skip an event;
- one log line per input, with flow, topic, partition, offset, outcome and
  duration, and the flow's metrics.

``run`` acknowledges an input as soon as its step returns. A flow that keeps
state uses ``run_in_batches`` instead: its step sends outputs without
waiting for the broker and leaves the state writes that record them in an
``Outbox``. Inputs are decided one after another against the state in
memory, while the outputs of every input decided so far are awaited together
in the background; only then are their changelog records written and the
inputs acknowledged. An input therefore costs one broker round trip shared
with every input decided during it, instead of one round trip each, and
state is still never stored ahead of the outputs it records.

Why not Faust's ``take_events``. It acknowledges every buffered event in the
``finally`` of its generator, which also runs when the generator is closed
because the agent stopped or failed halfway through a batch; the consumer's
last commit then covers inputs whose outputs were never stored. It also
holds the first input of a quiet partition for its ``within`` timeout.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust

from avro_schemas import default_codec
from edustream import metrics
from edustream.dead_letters import Source, seal, sealing_key
from edustream.errors import PoisonError, RetriableError
from edustream.logs import get_logger
from edustream.settings import get_settings
from streams.app import topic
from topics import CATALOGUE, dead_letter_topic_for
from topics.spec import TopicSpec

log = get_logger()

DEAD_LETTER_SCHEMA = "edustream.common.DeadLetter"
# Kafka's default message limit is 1 MiB; the dead letter must fit beside its
# other fields.
MAX_DEAD_LETTER_BYTES = 512 * 1024
_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
_DEAD_LETTER_NS = uuid.UUID("6f1c3c59-54c4-4d4b-9a37-1a0f2a1f5d10")

# Inputs decided but not yet acknowledged, at most, per agent. While the
# outputs of one group are on their way to the broker the next group is
# decided; the bound keeps a backlog from running far ahead of the broker,
# which would hold memory and delay every acknowledgement behind it.
MAX_IN_FLIGHT = 256


@dataclass(frozen=True)
class Input:
    """One message as a step sees it: bytes plus where it came from."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


Step = Callable[[Input], Awaitable[str]]


@dataclass
class Outbox:
    """One input's outputs on their way, and the writes that must follow them.

    A step adds each pending send (a future that resolves once the broker
    stored the record) and each state write that records those outputs.
    ``settle`` runs the writes only when every output is stored.
    """

    pending: list[Awaitable[Any]] = field(default_factory=list)
    writes: list[Callable[[], object]] = field(default_factory=list)

    def sent(self, pending: Awaitable[Any]) -> None:
        """An output sent: its future resolves once the broker stored it."""
        self.pending.append(pending)

    def once_sent(self, write: Callable[[], object]) -> None:
        """A write to make only after every output of the outbox is stored."""
        self.writes.append(write)


OutboxStep = Callable[[Input, Outbox], Awaitable[str]]

# An event decided, with its outbox; ``None`` once the stream has ended.
_Decided = tuple[faust.EventT[Any], Outbox] | None


async def settle(outboxes: Sequence[Outbox]) -> None:
    """Wait for every output of the outboxes, then make their writes in order.

    Raises the broker's error when an output could not be stored; no write
    of any of the outboxes is made then.
    """
    pending = [sent for outbox in outboxes for sent in outbox.pending]
    if pending:
        await asyncio.gather(*pending)
    for outbox in outboxes:
        for write in outbox.writes:
            write()


def as_input(event: faust.EventT[Any]) -> Input:
    """The parts of a Faust event a step needs."""
    msg = event.message
    return Input(
        key=msg.key,
        value=msg.value,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        timestamp_ms=int(msg.timestamp * 1000),
    )


async def run(flow: str, stream: faust.StreamT[Any], step: Step) -> None:
    """Drive every event of stream through step with the flow's guarantees."""
    async for event in stream.events():
        await handle(flow, as_input(event), step)


async def run_in_batches(
    flow: str,
    stream: faust.StreamT[Any],
    step: OutboxStep,
    *,
    limit: int = MAX_IN_FLIGHT,
) -> None:
    """Drive every event through step; acknowledge it once its outbox settled.

    Events are decided in the order read, so one key's inputs are decided in
    order. Decided events go to a queue that ``_settle_in_groups`` empties a
    group at a time. When an output cannot be stored the worker stops: the
    state in memory already counts outputs the broker does not hold, and a
    restart rebuilds it from the changelog and reads those inputs again.
    """
    # ``noack`` is on the stream class, not on Faust's ``StreamT`` interface.
    source = cast(faust.Stream[Any], stream).noack()
    decided: asyncio.Queue[_Decided] = asyncio.Queue(limit)
    async with asyncio.TaskGroup() as group:
        group.create_task(_settle_in_groups(flow, source, decided))
        async for event in source.events():
            outbox = Outbox()

            async def with_outbox(item: Input, outbox: Outbox = outbox) -> str:
                return await step(item, outbox)

            await handle(flow, as_input(event), with_outbox)
            await decided.put((event, outbox))
        await decided.put(None)


async def _settle_in_groups(
    flow: str,
    source: faust.StreamT[Any],
    decided: asyncio.Queue[_Decided],
) -> None:
    """Settle whatever was decided meanwhile, then acknowledge it, in order."""
    while True:
        group = [await decided.get()]
        while not decided.empty():
            group.append(decided.get_nowait())
        done = [entry for entry in group if entry is not None]

        started = time.perf_counter()
        try:
            await settle([outbox for _, outbox in done])
        except Exception as exc:
            log.error("outputs_not_stored", flow=flow, inputs=len(done))
            await source.app.crash(exc)
            raise
        for event, _ in done:
            await source.ack(event)
        log.debug(
            "inputs_settled",
            flow=flow,
            inputs=len(done),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        if None in group:
            return


async def handle(flow: str, item: Input, step: Step) -> str:
    """Process one input to an outcome; never raises for a bad input."""
    started = time.perf_counter()
    metrics.EVENTS_IN.labels(flow, item.topic).inc()
    outcome = await _with_retries(flow, item, step)
    elapsed = time.perf_counter() - started
    metrics.LATENCY.labels(flow).observe(elapsed)
    log.debug(
        "event_processed",
        flow=flow,
        topic=item.topic,
        partition=item.partition,
        offset=item.offset,
        outcome=outcome,
        duration_ms=round(elapsed * 1000, 3),
    )
    return outcome


async def _with_retries(flow: str, item: Input, step: Step) -> str:
    attempt = 0
    while True:
        try:
            return await step(item)
        except PoisonError as exc:
            await dead_letter(flow, item, exc.reason, str(exc))
            return "dead_lettered"
        except RetriableError as exc:
            delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
            metrics.RETRIES.labels(flow).inc()
            log.warning(
                "retrying",
                flow=flow,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                error=str(exc),
                delay_s=delay,
            )
            attempt += 1
            await asyncio.sleep(delay)
        except Exception as exc:
            # A bug must not stall the partition or kill the agent: the input
            # is kept whole on the dead-letter topic for a person to replay
            # once the code is fixed.
            log.exception(
                "step_failed",
                flow=flow,
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
            )
            await dead_letter(flow, item, "internal_error", type(exc).__name__)
            return "dead_lettered"


async def dead_letter(flow: str, item: Input, reason: str, message: str) -> None:
    """Send an input to the flow's dead-letter topic with why and where from."""
    spec = dead_letter_topic_for(flow)
    original = item.value
    if original is not None and len(original) > MAX_DEAD_LETTER_BYTES:
        # A record larger than the broker's message limit could never be
        # dead-lettered whole; keep its head and say how to find the rest.
        digest = hashlib.sha256(original).hexdigest()
        message = (
            f"{message}; original of {len(original)} bytes truncated to "
            f"{MAX_DEAD_LETTER_BYTES}, sha256 {digest}"
        )
        original = original[:MAX_DEAD_LETTER_BYTES]
    key = item.key
    sealed = _carries_personal_data(item.topic)
    if sealed:
        # Operators read dead letters; only the key holder may see the
        # person behind one (edustream.dead_letters).
        source = Source(item.topic, item.partition, item.offset)
        key = None
        original_key = seal(_sealing_key(), item.key, source, "original_key")
        original = seal(_sealing_key(), original, source, "original_value")
    else:
        original_key = item.key
    record = {
        "event_id": str(
            uuid.uuid5(_DEAD_LETTER_NS, f"{item.topic}:{item.partition}:{item.offset}")
        ),
        "occurred_at": int(time.time() * 1000),
        "flow": flow,
        "reason": reason,
        "message": message,
        "source_topic": item.topic,
        "source_partition": item.partition,
        "source_offset": item.offset,
        "original_key": original_key,
        "original_value": original,
        "sealed": sealed,
    }
    await emit(flow, spec, key, DEAD_LETTER_SCHEMA, record)
    metrics.DEAD_LETTERS.labels(flow, reason).inc()
    log.error(
        "dead_lettered",
        flow=flow,
        topic=item.topic,
        partition=item.partition,
        offset=item.offset,
        reason=reason,
        detail=message,
    )


def _carries_personal_data(topic_name: str) -> bool:
    spec = CATALOGUE.get(topic_name)
    return spec is not None and spec.personal_data


@functools.cache
def _sealing_key() -> bytes:
    return sealing_key(get_settings().dead_letter_key)


async def emit(
    flow: str, spec: TopicSpec, key: bytes | None, schema: str, record: dict[str, Any]
) -> None:
    """Encode record and send it to an output topic."""
    value = default_codec().encode(schema, record)
    await topic(spec).send(key=key, value=value)
    metrics.OUTPUTS.labels(flow, spec.name).inc()
