"""``edustream demo``: run the synthetic city through every flow and check it.

Steps: make sure Redis answers, start or reach the broker, apply the topic
catalogue, start the worker as a child process, then play each scenario's
phases (records to upstream topics, callbacks through the real ingress),
waiting after each phase for the outputs it leads to. When every expected
output has arrived, and a short grace period shows nothing extra, it writes
the report and the dumps, scans outputs and logs for personal data, prints a
summary table and says whether expected equals observed for every kind.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from consumers.base import run_subscriber
from edustream.demo.outputs import OutputCounter, json_default
from edustream.demo.privacy import scan_for_secrets
from edustream.demo.scenario import HttpCallback, Kind, Phase, Publication, Scenario
from edustream.demo.workers import WorkerPool
from edustream.logs import get_logger
from edustream.settings import Settings
from infra.broker import kafka
from infra.provision import apply_topics
from infra.redis import ensure_redis
from topics import CATALOGUE, DEAD_LETTERS, outputs

log = get_logger(component="demo")

GRACE_S = 2.0
DEMO_TODAY = date(2026, 9, 15)


def build_scenarios(settings: Settings, seed: int, scale: float) -> list[Scenario]:
    """Every flow's scenario for one city."""
    from edustream.demo import aid, billing, growth  # noqa: PLC0415

    return [
        aid.scenario(settings, seed, scale, DEMO_TODAY),
        billing.scenario(settings, seed, scale, DEMO_TODAY),
        growth.scenario(settings, seed, scale, DEMO_TODAY),
    ]


def run_demo(
    settings: Settings,
    *,
    report: Path | None,
    dump: Path | None,
    scale: float,
    seed: int,
    timeout_s: float,
) -> bool:
    """Run the demo; True when every kind's observed count equals expected."""
    redis_url = ensure_redis(settings.redis_url, settings.redis_embedded_fallback)
    scenarios = build_scenarios(settings, seed, scale)
    workdir = Path(tempfile.mkdtemp(prefix="edustream-demo-"))
    with kafka(settings.kafka_bootstrap_servers, settings.embedded_broker_port) as bs:
        result = asyncio.run(
            run_scenarios(settings, bs, redis_url, scenarios, workdir, timeout_s)
        )
    counter, elapsed, worker_log = result
    if dump:
        _write_growth_report(redis_url, dump, scenarios)
    rows = _rows(scenarios, counter)
    rows["privacy.leaks"] = {
        "expected": 0,
        "observed": _privacy_leaks(scenarios, counter, worker_log, dump),
    }
    ok = all(r["expected"] == r["observed"] for r in rows.values())
    _print_summary(rows, elapsed, ok)
    if report:
        report.write_text(
            json.dumps(
                {
                    "outputs": rows,
                    "ok": ok,
                    "seconds": round(elapsed, 1),
                    "worker_log": str(worker_log),
                },
                indent=2,
            )
        )
    return ok


@dataclass
class RunContext:
    """What a fault injector can reach while a run is under way."""

    settings: Settings
    bootstrap: str
    redis_url: str
    workers: WorkerPool
    producer: AIOKafkaProducer
    counter: OutputCounter
    ingress_url: str | None
    # The phase being played (1-based; 0 before the first), so a fault can
    # strike while a given phase's inputs are in flight.
    phase: int = 0
    phases_done: asyncio.Event = field(default_factory=asyncio.Event)


Fault = Callable[[RunContext], Coroutine[Any, Any, None]]


async def run_scenarios(  # noqa: PLR0917 - one call site per mode, all required
    settings: Settings,
    bootstrap: str,
    redis_url: str,
    scenarios: list[Scenario],
    workdir: Path,
    timeout_s: float,
    fault: Fault | None = None,
    n_workers: int = 1,
) -> tuple[OutputCounter, float, Path]:
    """Play every phase with workers running; return what was observed."""
    started = time.monotonic()
    result = await apply_topics(
        bootstrap, CATALOGUE.values(), settings.partitions, settings.replication_factor
    )
    if not result.ok:
        raise SystemExit(f"topics disagree with the catalogue: {result.conflicts}")
    kinds = [k for s in scenarios for k in s.kinds] + _dead_letter_kinds()
    counter = OutputCounter(bootstrap, outputs(), kinds)
    worker_log = workdir / "worker.log"
    async with AsyncExitStack() as stack:
        await counter.start()
        stack.push_async_callback(counter.stop)
        workers = WorkerPool(bootstrap, redis_url, worker_log)
        for slot in range(n_workers):
            workers.start(slot)
        stack.callback(workers.stop_all)
        await _start_subscribers(stack, bootstrap, redis_url)
        ingress_url = await _maybe_start_ingress(
            stack, settings, bootstrap, redis_url, scenarios
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        stack.push_async_callback(producer.stop)
        ctx = RunContext(
            settings, bootstrap, redis_url, workers, producer, counter, ingress_url
        )
        injector = asyncio.create_task(fault(ctx)) if fault else None
        deadline = time.monotonic() + timeout_s
        expected = _expected(scenarios)
        for index, phase in enumerate(_interleave(scenarios), start=1):
            ctx.phase = index
            await _play(producer, ingress_url, phase)
            await _wait(
                counter,
                {k: expected[k] for k in phase.wait_for},
                deadline,
                workers,
                injector,
            )
        ctx.phases_done.set()
        if injector:
            await injector
        await _wait(counter, expected, deadline, workers, None)
        await asyncio.sleep(GRACE_S)
    return counter, time.monotonic() - started, worker_log


def _dead_letter_kinds() -> list[Kind]:
    return [
        Kind(f"{flow}.dead_letters", spec, lambda r: str(r["event_id"]))
        for flow, spec in DEAD_LETTERS.items()
    ]


def _expected(scenarios: list[Scenario]) -> dict[str, int]:
    expected: dict[str, int] = {}
    for s in scenarios:
        expected.update(s.expected)
    return expected


def _interleave(scenarios: list[Scenario]) -> Iterable[Phase]:
    """Phase i of every flow together: the flows run side by side."""
    longest = max(len(s.phases) for s in scenarios)
    for i in range(longest):
        merged = Phase(name=f"phase {i + 1}")
        for s in scenarios:
            if i < len(s.phases):
                merged.publications += s.phases[i].publications
                merged.callbacks += s.phases[i].callbacks
                merged.wait_for += s.phases[i].wait_for
        yield merged


async def _play(producer: AIOKafkaProducer, ingress: str | None, phase: Phase) -> None:
    log.info(
        "phase_started",
        phase=phase.name,
        records=len(phase.publications),
        callbacks=len(phase.callbacks),
    )
    await _publish(producer, phase.publications)
    if phase.callbacks:
        assert ingress is not None
        await _post_all(ingress, phase.callbacks)


async def _publish(producer: AIOKafkaProducer, items: list[Publication]) -> None:
    pending = [
        await producer.send(p.spec.name, value=p.value, key=p.key) for p in items
    ]
    await asyncio.gather(*pending)


async def _post_all(base: str, callbacks: list[HttpCallback]) -> None:
    statuses = await post_callbacks(base, callbacks)
    for cb, status in zip(callbacks, statuses, strict=True):
        if status != cb.expect_status:
            log.error(
                "unexpected_ingress_status",
                path=cb.path,
                status=status,
                expected=cb.expect_status,
            )


async def post_callbacks(
    base: str, callbacks: list[HttpCallback], concurrency: int = 32
) -> list[int]:
    """POST every callback to the ingress at base; their HTTP statuses."""
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def post(callback: HttpCallback) -> int:
            cb = callback.as_sent()
            async with (
                limit,
                session.post(base + cb.path, data=cb.body, headers=cb.headers) as resp,
            ):
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(post(cb) for cb in callbacks)))


async def _wait(
    counter: OutputCounter,
    want: dict[str, int],
    deadline: float,
    workers: WorkerPool,
    injector: asyncio.Task[None] | None,
) -> None:
    while time.monotonic() < deadline:
        # While a fault injector runs, a moment with no live worker is
        # expected (it restarts them); otherwise nobody will produce outputs.
        if not workers.any_alive() and (injector is None or injector.done()):
            log.error("worker_exited", codes=workers.exit_codes())
            return
        if all(counter.observed(k) >= n for k, n in want.items()):
            return
        await asyncio.sleep(0.2)
    missing = {
        k: (counter.observed(k), n) for k, n in want.items() if counter.observed(k) < n
    }
    log.error("demo_timed_out", missing=missing)


async def _start_subscribers(
    stack: AsyncExitStack, bootstrap: str, redis_url: str
) -> None:
    """Run every downstream subscriber (read models) in this process."""
    from consumers.registry import all_subscribers  # noqa: PLC0415

    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_subscriber(sub, bootstrap, stop))
        for sub in all_subscribers(redis_url)
    ]

    async def _stop() -> None:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(_stop)


async def _maybe_start_ingress(
    stack: AsyncExitStack,
    settings: Settings,
    bootstrap: str,
    redis_url: str,
    scenarios: list[Scenario],
) -> str | None:
    if not any(p.callbacks for s in scenarios for p in s.phases):
        return None
    from edustream.http.server import start_ingress  # noqa: PLC0415

    return await start_ingress(stack, settings, bootstrap, redis_url)


def _rows(
    scenarios: list[Scenario], counter: OutputCounter
) -> dict[str, dict[str, int]]:
    expected = _expected(scenarios)
    rows = {
        k: {"expected": n, "observed": counter.observed(k)}
        for k, n in sorted(expected.items())
    }
    dead = {
        k: {"expected": expected.get(k, 0), "observed": counter.observed(k)}
        for k in (f"{f}.dead_letters" for f in DEAD_LETTERS)
    }
    rows.update(dead)
    rows["dead_letters"] = {
        "expected": sum(r["expected"] for r in dead.values()),
        "observed": sum(r["observed"] for r in dead.values()),
    }
    return rows


def _privacy_leaks(
    scenarios: list[Scenario],
    counter: OutputCounter,
    worker_log: Path,
    dump: Path | None,
) -> int:
    secrets = set().union(*(s.secrets for s in scenarios))
    personal = {s.name for s in CATALOGUE.values() if s.personal_data}
    if dump:
        counter.dump(dump)
    # Rendered as in the dumps: bytes (a dead letter's original input) in
    # base64, so what is scanned is what a reader of the dumps would see.
    texts: dict[str, str] = {
        f"topic {name}": "\n".join(
            json.dumps(r, default=json_default, ensure_ascii=False) for r in records
        )
        for name, records in counter.records.items()
        if name not in personal
    }
    texts["worker log"] = worker_log.read_text(encoding="utf-8", errors="replace")
    leaks = scan_for_secrets(texts, secrets)
    for where, count in leaks.items():
        log.error("privacy_leak", where=where, count=count)
    return sum(leaks.values())


def _write_growth_report(redis_url: str, dump: Path, scenarios: list[Scenario]) -> None:
    """One sample growth report page, read back from the archive read model."""
    from edustream.demo.growth import write_report_page  # noqa: PLC0415

    growth = next(s for s in scenarios if s.flow == "growth")
    asyncio.run(write_report_page(redis_url, dump, growth.facts))


def _print_summary(rows: dict[str, dict[str, int]], elapsed: float, ok: bool) -> None:
    width = max(len(k) for k in rows)
    print(f"{'output kind':{width}}  {'expected':>9}  {'observed':>9}")
    for kind, r in rows.items():
        mark = "" if r["expected"] == r["observed"] else "  MISMATCH"
        print(f"{kind:{width}}  {r['expected']:>9}  {r['observed']:>9}{mark}")
    print(f"{'all outputs match' if ok else 'OUTPUTS DO NOT MATCH'} in {elapsed:.1f}s")
