"""What the benchmarks share: the raw aiokafka ceiling and process figures.

- ``passthrough``: one aiokafka consumer reads records and one producer
  writes each one back out, with no processing: the most any flow could do
  on this broker and machine, in records per second;
- ``passthrough_latency``: the same pass-through at a fixed rate, timing
  each record from its first send to its arrival on the output topic;
- ``percentiles``, ``cpu_seconds``, ``peak_rss_mb`` and ``stop``: figures and
  chores every bench needs;
- ``drain_without_tasks``: a Faust change that benches measure, not one the
  worker ships.

Benchmarks run as scripts (``python bench/x.py``), so they import this as
``common``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Batches of up to 512 kB after at most 20 ms: the producer settings a bulk
# copy would use, so the ceiling is the broker's and aiokafka's, not ours.
BULK_LINGER_MS = 20
BULK_BATCH_BYTES = 512 * 1024
# Unacknowledged sends kept in flight before waiting for them.
IN_FLIGHT = 20_000
_STAMP = struct.Struct(">q")


def bulk_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer tuned for throughput, as the pass-through uses."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=BULK_LINGER_MS,
        max_batch_size=BULK_BATCH_BYTES,
        acks=1,
    )


def bulk_consumer(bootstrap: str, **options: object) -> AIOKafkaConsumer:
    """An unmanaged consumer with large fetches."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        **options,
    )


async def ensure_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create a scratch topic (outside the catalogue) unless it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if name not in await admin.list_topics():
            await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``, waiting for the topic to appear."""
    while not consumer.partitions_for_topic(topic):
        await consumer._client.force_metadata_update()  # noqa: SLF001
        await asyncio.sleep(0.2)
    found = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(found)]


async def passthrough(bootstrap: str, source: str, target: str, records: int) -> float:
    """Read ``records`` from ``source``, write each to ``target``; records/s.

    The clock runs from the first fetch to the last acknowledgement.
    """
    consumer = bulk_consumer(bootstrap)
    producer = bulk_producer(bootstrap)
    await consumer.start()
    await producer.start()
    try:
        partitions = await partitions_of(consumer, source)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.perf_counter()
        seen, pending = 0, []
        while seen < records:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batches.values():
                for message in messages:
                    pending.append(
                        await producer.send(
                            target, value=message.value, key=message.key
                        )
                    )
                    seen += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return records / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def fill(bootstrap: str, topic: str, value: bytes, count: int) -> float:
    """Produce ``count`` copies of ``value`` with distinct keys; records/s."""
    producer = bulk_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        pending = []
        for index in range(count):
            pending.append(await producer.send(topic, value=value, key=b"k%d" % index))
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()


async def passthrough_latency(
    bootstrap: str, source: str, target: str, rate: float, seconds: float
) -> list[float]:
    """Milliseconds from a paced send to ``source`` to arrival on ``target``.

    Three parts share this process: a producer sending at ``rate`` (each
    value starts with its send time), the pass-through itself (a consumer
    of ``source`` and a producer to ``target`` with latency settings:
    linger 2 ms, ``acks=all``, as the ingress uses), and a reader of
    ``target``. Consumers ask the broker to answer a fetch within
    ``LATENCY_FETCH_WAIT_MS`` even when it has nothing new.
    """
    count = int(rate * seconds)
    latencies: list[float] = []
    reader = _latency_consumer(bootstrap)
    relay_consumer = _latency_consumer(bootstrap)
    await reader.start()
    await relay_consumer.start()
    try:
        await _assign_at_end(reader, target)
        await _assign_at_end(relay_consumer, source)
        relay = asyncio.create_task(_relay(bootstrap, relay_consumer, target, count))
        reading = asyncio.create_task(_read_stamps(reader, count, latencies))
        await _paced_source(bootstrap, source, rate, count)
        await asyncio.wait_for(relay, 120)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reading, 30)
    finally:
        await relay_consumer.stop()
        await reader.stop()
    return latencies


# How long a latency consumer lets the broker hold an empty fetch.
LATENCY_FETCH_WAIT_MS = 10


def _latency_consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=LATENCY_FETCH_WAIT_MS,
    )


async def _assign_at_end(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Read ``topic`` from its current end, positions settled before return."""
    parts = await partitions_of(consumer, topic)
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for part in parts:
        await consumer.position(part)


async def _paced_source(bootstrap: str, topic: str, rate: float, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    try:
        padding = bytes(160)
        started = time.monotonic()
        pending = []
        for index in range(count):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            value = _STAMP.pack(time.monotonic_ns()) + padding
            pending.append(await producer.send(topic, value=value, key=b"p%d" % index))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _relay(
    bootstrap: str, consumer: AIOKafkaConsumer, target: str, count: int
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    try:
        seen = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    await producer.send(target, value=message.value, key=message.key)
                    seen += 1
        await producer.flush()
    finally:
        await producer.stop()


async def _read_stamps(
    reader: AIOKafkaConsumer, count: int, latencies: list[float]
) -> None:
    while len(latencies) < count:
        batches = await reader.getmany(timeout_ms=200)
        now = time.monotonic_ns()
        for messages in batches.values():
            for message in messages:
                (sent,) = _STAMP.unpack_from(message.value or bytes(8))
                latencies.append((now - sent) / 1e6)


def percentiles(name: str, values: list[float]) -> dict[str, float]:
    """Median and 99th percentile (and the extremes), in the values' unit."""
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        f"{name}_min": round(min(values), 2),
        f"{name}_p50": round(cuts[49], 2),
        f"{name}_p99": round(cuts[98], 2),
        f"{name}_max": round(max(values), 2),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory a live process has had (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def spawn_worker(log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """Start ``edustream worker`` with its output in log.

    ``settings`` are environment variables on top of this process's, such as
    ``KAFKA_BOOTSTRAP_SERVERS`` and ``EDUSTREAM_APP_ID``; JSON logs unless
    they say otherwise.
    """
    env = {**os.environ, "EDUSTREAM_LOG_FORMAT": "json", **settings}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edustream", "worker"],
            env=env,
            stdout=out,
            stderr=out,
        )


def stop(proc: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """Terminate one of our own child processes, killing it after the grace."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def stable_members(bootstrap: str, group: str) -> int:
    """Members of a consumer group once it is stable; 0 while it rebalances."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in described:
        for found in response.to_object()["groups"]:
            if found["group"] == group and found["state"] == "Stable":
                return len(found["members"])
    return 0


async def wait_for_group(
    bootstrap: str, group: str, members: int, timeout_s: float = 120.0
) -> None:
    """Wait until ``group`` is stable with ``members`` members."""
    deadline = time.monotonic() + timeout_s
    while await stable_members(bootstrap, group) != members:
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} not stable with {members} members")
        await asyncio.sleep(0.5)


def drain_without_tasks() -> None:
    """Let Faust's fetch loop await each message's callback directly.

    Faust's consumer hands each fetched message to the streams through
    ``wait_first(callback(message), suspend_flow.wait())``, which creates two
    tasks per message. This awaits the callback directly while the flow is
    not suspended. The worker does not ship it: a rebalance that starts while
    the callback waits for room in a full stream buffer would no longer
    interrupt it, and the agent could get a record of a partition it no
    longer owns. It patches Faust in the calling process only, to measure
    what the race costs.
    """
    from faust.transport import consumer  # noqa: PLC0415 - Faust processes only

    original = consumer.Consumer.wait_first

    async def wait_first(self: object, *coros: Any, **kwargs: Any) -> Any:
        suspend = getattr(self, "suspend_flow", None)
        if len(coros) == 2 and suspend is not None and not suspend.is_set():
            coros[1].close()
            return await coros[0]
        return await original(self, *coros, **kwargs)

    consumer.Consumer.wait_first = wait_first  # type: ignore[method-assign]
