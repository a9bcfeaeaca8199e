"""The lag monitor against a real broker and a real worker.

Each test starts its own embedded broker and worker, because the scenario
stops and restarts the worker, which must not disturb the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from consumers.lag.offsets import OffsetReader
from consumers.lag.service import LagService
from consumers.lag.web import start_web
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker, free_port
from infra.provision import apply_topics
from tests.conftest import start_worker, stop_worker
from tests.e2e.chromium import Chromium, chromium_binary
from topics import CATALOGUE, billing

pytestmark = pytest.mark.e2e

GROUP = get_settings().app_id
# Malformed payment callbacks: the worker consumes each one, dead-letters it
# and commits, one event at a time.
FEED = billing.CALLBACKS
FLOW = "billing"
FEED_PARTITIONS = 4
# Short windows so a stop reads STOP within seconds: four commits a second
# apart span about three seconds.
POLL_S = 0.5
WINDOW = 4

Document = dict[str, Any]


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A provisioned embedded broker for this test alone."""
    settings = get_settings()
    with EmbeddedBroker() as broker:
        result = asyncio.run(
            apply_topics(broker.bootstrap, CATALOGUE.values(), settings.partitions, 1)
        )
        assert result.ok, result.conflicts
        yield broker.bootstrap


class MalformedFeed:
    """Sends malformed records to the fed topic at a steady pace until stopped.

    Malformed bytes are enough: the worker consumes them, commits, and sends
    them to the flow's dead-letter topic.
    """

    def __init__(self, bootstrap: str, per_second: float = 40.0) -> None:
        self._bootstrap = bootstrap
        self._pause_s = 1.0 / per_second
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self.sent = 0

    async def __aenter__(self) -> MalformedFeed:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def wait_sent(self, count: int) -> None:
        """Wait until at least ``count`` records were acknowledged."""
        while self.sent < count:
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), 10)

    async def stop(self) -> None:
        """Stop sending; every record sent so far is acknowledged."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap)
        await producer.start()
        try:
            while True:
                key = uuid.uuid4().bytes
                await producer.send_and_wait(FEED.name, value=b"\x00not avro", key=key)
                self.sent += 1
                self._progress.set()
                await asyncio.sleep(self._pause_s)
        finally:
            await producer.stop()


class Dashboard:
    """The monitor's JSON API, read the way the dashboard reads it."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self.url = url

    async def lag(self) -> Document | None:
        """GET /api/lag; None before the first poll."""
        async with self._session.get(f"{self.url}/api/lag") as response:
            if response.status == 503:
                return None
            document: Document = await response.json()
            return document

    async def history(self) -> Document:
        """GET /api/history."""
        async with self._session.get(f"{self.url}/api/history") as response:
            document: Document = await response.json()
            return document

    async def wait_for(
        self, check: Callable[[Document], bool], timeout_s: float, what: str
    ) -> Document:
        """Wait until a document passes check; fail naming what was awaited."""
        deadline = time.monotonic() + timeout_s
        last: Document | None = None
        while time.monotonic() < deadline:
            last = await self.lag()
            if last is not None and check(last):
                return last
            await asyncio.sleep(POLL_S / 2)
        raise AssertionError(f"timed out waiting for {what}; last: {_brief(last)}")


def group_of(document: Document) -> Document | None:
    """The worker's group in a lag document."""
    return next((g for g in document["groups"] if g["group"] == GROUP), None)


def feed_partitions(document: Document) -> list[Document]:
    """The worker group's readings on the fed topic."""
    return [
        p
        for p in document["partitions"]
        if p["group"] == GROUP and p["topic"] == FEED.name
    ]


def flow(document: Document, name: str) -> Document:
    """One flow's figures."""
    return next(f for f in document["flows"] if f["flow"] == name)


def _brief(document: Document | None) -> Any:
    if document is None:
        return None
    return {"groups": document["groups"], "fed": feed_partitions(document)}


async def run_cli(
    args: list[str], env: dict[str, str] | None = None, timeout_s: float = 60
) -> str:
    """Run `edustream ARGS`; return its stdout, failing on an error or a hang."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edustream",
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def monitor(bootstrap: str) -> AsyncIterator[tuple[Dashboard, LagService]]:
    """The lag monitor polling every half second, served on a free port."""
    async with AsyncExitStack() as stack:
        reader = OffsetReader(bootstrap)
        await reader.start()
        stack.push_async_callback(reader.stop)
        service = LagService(
            reader, poll_interval_s=POLL_S, window_size=WINDOW, history_s=300
        )
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))

        async def halt() -> None:
            stop.set()
            await task

        stack.push_async_callback(halt)
        url = await start_web(stack, service, "127.0.0.1", 0)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Dashboard(session, url), service


@contextlib.asynccontextmanager
async def browser(tmp_path: Path) -> AsyncIterator[Chromium | None]:
    """Headless Chromium when installed, else None."""
    binary = chromium_binary()
    if binary is None:
        yield None
        return
    async with Chromium(binary, tmp_path) as chromium:
        yield chromium


ROW_STATUS = (
    "document.querySelector('tr[data-group=\"{group}\"]')?.dataset.status === '{s}'"
)


async def test_stopped_worker_reads_stop_then_drains_to_ok(
    own_broker: str, redis_url: str, tmp_path: Path
) -> None:
    """Stopping the worker under load reads STOP with growing lag; restarted, OK.

    The dashboard in headless Chromium shows the same, with screenshots
    saved beside the test's logs.
    """
    log_path = tmp_path / "worker.log"
    worker = start_worker(own_broker, redis_url, log_path)
    try:
        async with (
            monitor(own_broker) as (dashboard, _service),
            MalformedFeed(own_broker) as feed,
            browser(tmp_path) as page,
        ):
            await _runs_and_commits(dashboard)
            if page is not None:
                await page.navigate(dashboard.url + "/")

            await asyncio.to_thread(stop_worker, worker)
            stopped = await _reads_stop_with_growing_lag(dashboard)
            await _cli_agrees(dashboard.url, "STOP")
            if page is not None:
                await page.wait_for(ROW_STATUS.format(group=GROUP, s="STOP"))
                await page.screenshot(tmp_path / "dashboard-stopped.png")

            worker = start_worker(own_broker, redis_url, log_path)
            await asyncio.sleep(2 * POLL_S)
            await feed.stop()
            drained = await _drains_to_ok(dashboard)
            history = await dashboard.history()
            (tmp_path / "history.json").write_text(json.dumps(history, indent=1))
            if page is not None:
                await page.wait_for(ROW_STATUS.format(group=GROUP, s="OK"))
                dead = await page.wait_for(
                    f'Number(document.querySelector(\'[data-flow="{FLOW}"] '
                    f"[data-dead-letters]')?.dataset.deadLetters) >= {feed.sent}"
                )
                assert dead is True
                await page.screenshot(tmp_path / "dashboard-ok.png")
                assert (tmp_path / "dashboard-stopped.png").stat().st_size > 10_000
    finally:
        await asyncio.to_thread(stop_worker, worker)

    # Every malformed record was dead-lettered (at least once).
    assert flow(drained, FLOW)["dead_letters"] >= feed.sent
    assert flow(stopped, FLOW)["records_in"] < flow(drained, FLOW)["records_in"]


async def _runs_and_commits(dashboard: Dashboard) -> None:
    seen: dict[int, set[int]] = {}

    def moved_enough(document: Document) -> bool:
        for reading in feed_partitions(document):
            seen.setdefault(reading["partition"], set()).add(reading["committed"])
        group = group_of(document)
        # Three distinct commits per partition give Burrow a window with a
        # span to measure silence against.
        return (
            group is not None
            and len(seen) == FEED_PARTITIONS
            and all(len(offsets) >= 3 for offsets in seen.values())
            and flow(document, FLOW)["in_per_s"] > 0
        )

    await dashboard.wait_for(moved_enough, 45, "the worker to commit the fed topic")


async def _reads_stop_with_growing_lag(dashboard: Dashboard) -> Document:
    first = await dashboard.wait_for(
        lambda d: (group_of(d) or {}).get("sum_lag", 0) > 0, 20, "lag after stop"
    )
    # Partitions stop one poll apart at most; wait for all four.
    stopped = await dashboard.wait_for(
        lambda d: (
            (group_of(d) or {}).get("status") == "STOP"
            and {p["status"] for p in feed_partitions(d)} == {"STOP"}
        ),
        20,
        "STOP on every fed partition",
    )

    before, after = group_of(first), group_of(stopped)
    assert before is not None
    assert after is not None
    assert after["sum_lag"] > before["sum_lag"]
    assert after["max_lag_seconds"] > 0
    return stopped


async def _drains_to_ok(dashboard: Dashboard) -> Document:
    drained = await dashboard.wait_for(
        lambda d: (
            (group_of(d) or {}).get("status") == "OK"
            and (group_of(d) or {}).get("sum_lag") == 0
        ),
        45,
        "the restarted worker to drain to OK",
    )
    assert {p["lag"] for p in feed_partitions(drained)} == {0}
    return drained


async def _cli_agrees(url: str, status: str) -> None:
    out = await run_cli(["lag", "--url", url])
    rows = [line.split() for line in out.splitlines()]
    fed = [row for row in rows if row[:2] == [GROUP, FEED.name]]
    assert len(fed) == FEED_PARTITIONS
    assert {row[-1] for row in fed} == {status}


async def test_lag_command_polls_the_cluster_itself(
    own_broker: str, tmp_path: Path
) -> None:
    """`edustream lag --json` reads a group's offsets straight from Kafka."""
    async with MalformedFeed(own_broker, per_second=200) as feed:
        await feed.wait_sent(60)
    await _commit(own_broker, "lag-cli-readers", FEED.name, offset=1)

    out = await run_cli(
        ["lag", "--json", "--polls", "2", "--interval", "0.2"],
        {"KAFKA_BOOTSTRAP_SERVERS": own_broker},
    )

    document = json.loads(out)
    (group,) = [g for g in document["groups"] if g["group"] == "lag-cli-readers"]
    assert group["partitions"] == FEED_PARTITIONS
    assert group["sum_lag"] == feed.sent - FEED_PARTITIONS
    assert flow(document, FLOW)["records_in"] == feed.sent


async def _commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(FEED_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.commit(dict.fromkeys(partitions, offset))
    finally:
        await consumer.stop()


async def test_monitor_command_serves_dashboard_metrics_and_probes(
    own_broker: str, tmp_path: Path
) -> None:
    """`edustream monitor` serves every page, then stops cleanly on SIGTERM."""
    await _commit(own_broker, "monitor-cli-readers", FEED.name, offset=0)
    port = free_port()
    log = (tmp_path / "monitor.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edustream",
        "monitor",
        "--port",
        str(port),
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": own_broker,
            "EDUSTREAM_MONITOR_POLL_INTERVAL_S": "0.5",
            "EDUSTREAM_LOG_FORMAT": "json",
        },
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_ready(session, base)
            pages = {
                path: await _get(session, base + path)
                for path in ("/", "/api/lag", "/api/history", "/metrics", "/healthz")
            }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            code = await process.wait()
        log.close()

    assert code == 0
    assert all(status == 200 for status, _body in pages.values())
    assert "edustream · consumer lag" in pages["/"][1]
    lag = json.loads(pages["/api/lag"][1])
    assert [g["group"] for g in lag["groups"]] == ["monitor-cli-readers"]
    assert (
        'kafka_consumergroup_group_sum_lag{group="monitor-cli-readers"}'
        in (pages["/metrics"][1])
    )
    events = [json.loads(line)["event"] for line in _json_lines(tmp_path)]
    assert "lag_monitor_started" in events
    assert "lag_monitor_stopped" in events


async def _wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            status, _body = await _get(session, base + "/readyz")
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise AssertionError("the monitor never became ready")


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as response:
        return response.status, await response.text()


def _json_lines(tmp_path: Path) -> list[str]:
    text = (tmp_path / "monitor.log").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith("{")]


async def test_worker_serves_metrics_and_probes(
    own_broker: str, redis_url: str, tmp_path: Path
) -> None:
    """The worker's /readyz turns 200 after recovery; /metrics has flow counters."""
    port = free_port()
    worker = start_worker(
        own_broker,
        redis_url,
        tmp_path / "worker.log",
        extra_env={"EDUSTREAM_WORKER_WEB_PORT": str(port)},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with (
            aiohttp.ClientSession() as session,
            MalformedFeed(own_broker, per_second=50) as feed,
        ):
            health = await _wait_answer(session, base + "/healthz")
            if health[0] == 404:
                pytest.skip("streams/worker.py does not import streams.observability")
            await _wait_ready(session, base)
            await feed.wait_sent(10)
            metrics = await _wait_metric(session, base, "edustream_dead_letters_total")
    finally:
        await asyncio.to_thread(stop_worker, worker)

    assert health[0] == 200
    assert f'edustream_events_in_total{{flow="{FLOW}",topic="{FEED.name}"}}' in metrics
    assert "faust_messages_received_total" in metrics


async def _wait_answer(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            return await _get(session, url)
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


async def _wait_metric(session: aiohttp.ClientSession, base: str, name: str) -> str:
    deadline = time.monotonic() + 30
    body = ""
    while time.monotonic() < deadline:
        _status, body = await _get(session, base + "/metrics")
        # A labelled family prints its HELP line before its first sample.
        if f"\n{name}{{" in body:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} never appeared on the worker's /metrics")
