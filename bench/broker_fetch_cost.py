"""Benchmark: what one fetch at the end of a partition costs the broker.

Fills a one-partition topic with one record per produce request (one
batch each, as a producer sends under a light load) up to each size in
``--steps``. At each size one consumer fetches the partition's last record
``--fetches`` times, and the bench reports the wall time and the broker's
CPU per fetch. A broker that indexes its log answers in the same time at
every size; one whose cost grows with the batches shows it here.

The embedded broker is the subject: with ``KAFKA_BOOTSTRAP_SERVERS`` set
the bench measures that cluster's wall time, and its CPU as 0 (it is not a
child of ours).

Usage::

    python bench/broker_fetch_cost.py [--steps 2000,8000,20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from common import cpu_seconds, ensure_topic

from infra.broker import EmbeddedBroker

RECORD = b"x" * 160


def main() -> None:
    """Parse flags, measure, print one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", default="2000,8000,20000")
    parser.add_argument("--fetches", type=int, default=200)
    args = parser.parse_args()
    steps = sorted(int(step) for step in args.steps.split(","))

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        rows = asyncio.run(_measure(bootstrap, None, steps, args.fetches))
    else:
        with EmbeddedBroker() as broker:
            rows = asyncio.run(
                _measure(broker.bootstrap, broker.pid, steps, args.fetches)
            )
    print(json.dumps({"fetches_per_step": args.fetches, "rows": rows}, indent=2))


async def _measure(
    bootstrap: str, broker_pid: int | None, steps: list[int], fetches: int
) -> list[dict[str, Any]]:
    topic = f"bench.fetch-cost-{uuid.uuid4().hex[:8]}"
    await ensure_topic(bootstrap, topic, 1)
    rows = []
    written = 0
    for batches in steps:
        await _write_one_per_batch(bootstrap, topic, batches - written)
        written = batches
        wall_s, cpu_s = await _fetch_last(bootstrap, topic, broker_pid, fetches)
        rows.append(
            {
                "batches": batches,
                "fetch_ms": round(wall_s * 1000 / fetches, 3),
                "broker_cpu_ms_per_fetch": round(cpu_s * 1000 / fetches, 3),
            }
        )
    return rows


async def _write_one_per_batch(bootstrap: str, topic: str, count: int) -> None:
    """Each record waits for its acknowledgement, so each is its own batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for _ in range(count):
            await producer.send_and_wait(topic, RECORD)
    finally:
        await producer.stop()


async def _fetch_last(
    bootstrap: str, topic: str, broker_pid: int | None, fetches: int
) -> tuple[float, float]:
    """Wall and broker CPU seconds for ``fetches`` reads of the last record."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        last = await consumer.position(partition) - 1
        cpu_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        started = time.perf_counter()
        for _ in range(fetches):
            consumer.seek(partition, last)
            await consumer.getone()
        wall = time.perf_counter() - started
        cpu = (cpu_seconds(broker_pid) - cpu_before) if broker_pid else 0.0
    finally:
        await consumer.stop()
    return wall, cpu


if __name__ == "__main__":
    main()
