"""Benchmark: the most one Faust agent can do before any flow code runs.

Every flow is a Faust agent, so no flow can be faster than Faust's own
delivery of records to an agent on this broker and machine. This measures
that ceiling next to the raw aiokafka pass-through, in the same run:

- ``raw pass-through``: one aiokafka consumer reading the records and one
  producer writing each one back out (``common.passthrough``);
- ``faust consume``: an agent that reads every record and does nothing;
- ``faust consume+send``: an agent that sends each record on with
  ``topic.send``, the way every flow emits its outputs;
- ``faust consume, tuned``: the consume-only agent with every change that
  made Faust deliver faster here: up to 10,000 records a poll, a stream
  buffer of 20,000, the worker's fetch wait and flow-control fixes
  (``streams.faust_compat``), and no tasks per message in the fetch loop
  (``common.drain_without_tasks``).

Each agent runs in a worker process of its own with Faust's defaults plus
large fetches and a 5 ms producer linger. Its rate is timed inside the agent,
from its first record to its last, so start-up and the group join are not
counted.

Usage::

    python bench/faust_ceiling.py [--records 100000] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

from infra.broker import EmbeddedBroker, free_port

SOURCE = "bench.ceiling-source"
RAW_OUT = "bench.ceiling-raw"
FAUST_OUT = "bench.ceiling-faust"
PARTITIONS = 4
VALUE_BYTES = 200
MODES = ("consume", "consume+send", "consume, tuned")
CHILD_LIMIT_S = 600.0


def main() -> None:
    args = _arguments()
    if args.child:
        _serve(args.child, args.bootstrap, args.records, Path(args.result))
        return
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        figures = _measure(bootstrap, args.records)
    else:
        with EmbeddedBroker() as broker:
            figures = _measure(broker.bootstrap, args.records)
    _print(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args()


def _measure(bootstrap: str, records: int) -> dict[str, Any]:
    asyncio.run(_prepare(bootstrap, records))
    raw = asyncio.run(common.passthrough(bootstrap, SOURCE, RAW_OUT, records))
    figures: dict[str, Any] = {
        "records": records,
        "value_bytes": VALUE_BYTES,
        "raw_passthrough_per_s": round(raw),
    }
    for mode in MODES:
        rate = _run_child(mode, bootstrap, records)
        figures[mode] = {"events_per_s": round(rate), "ratio": round(rate / raw, 3)}
    return figures


async def _prepare(bootstrap: str, records: int) -> None:
    for name in (SOURCE, RAW_OUT, FAUST_OUT):
        await common.ensure_topic(bootstrap, name, PARTITIONS)
    producer = common.bulk_producer(bootstrap)
    await producer.start()
    try:
        value = b"x" * VALUE_BYTES
        pending = []
        for index in range(records):
            key = str(index).encode()
            pending.append(await producer.send(SOURCE, value=value, key=key))
            if len(pending) >= common.IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _run_child(mode: str, bootstrap: str, records: int) -> float:
    result = Path(tempfile.mkdtemp(prefix="faust-ceiling-")) / "result.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--bootstrap",
        bootstrap,
        "--records",
        str(records),
        "--result",
        str(result),
    ]
    proc = subprocess.Popen(  # noqa: S603 - this interpreter running this script
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + CHILD_LIMIT_S
    try:
        while not result.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {mode} agent stopped before its last record")
            time.sleep(0.2)
    finally:
        common.stop(proc)
    seconds = float(json.loads(result.read_text())["seconds"])
    return (records - 1) / seconds


def _serve(mode: str, bootstrap: str, records: int, result: Path) -> None:
    """Run one agent over the source until it has seen every record."""
    import faust  # noqa: PLC0415 - the child only

    tuned = mode == "consume, tuned"
    if tuned:
        from streams import faust_compat  # noqa: PLC0415 - the child only

        faust_compat.install()
        common.drain_without_tasks()
    app = faust.App(
        f"bench-ceiling-{mode.replace('+', '-').replace(', ', '-')}-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_linger=0.005,
        broker_session_timeout=6.0,
        broker_rebalance_timeout=6.0,
        broker_heartbeat_interval=1.0,
        web_enabled=False,
        web_port=free_port(),
        **(
            {"broker_max_poll_records": 10_000, "stream_buffer_maxsize": 20_000}
            if tuned
            else {}
        ),
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    source = app.topic(SOURCE, **raw)
    target = app.topic(FAUST_OUT, **raw)
    sending = mode == "consume+send"

    @app.agent(source)
    async def agent(stream: Any) -> None:
        seen = 0
        first = 0.0
        async for event in stream.events():
            if sending:
                await target.send(key=event.message.key, value=event.message.value)
            seen += 1
            if seen == 1:
                first = time.perf_counter()
            elif seen == records:
                seconds = time.perf_counter() - first
                await asyncio.to_thread(
                    result.write_text, json.dumps({"seconds": seconds})
                )

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


def _print(figures: dict[str, Any]) -> None:
    raw = figures["raw_passthrough_per_s"]
    print(f"records: {figures['records']:,} of {figures['value_bytes']} bytes")
    print(f"{'path':<26}{'events/s':>10}{'ratio':>8}")
    print(f"{'raw pass-through':<26}{raw:>10,}{1.0:>8.3f}")
    for mode in MODES:
        row = figures[mode]
        print(f"{'faust ' + mode:<26}{row['events_per_s']:>10,}{row['ratio']:>8.3f}")


if __name__ == "__main__":
    main()
