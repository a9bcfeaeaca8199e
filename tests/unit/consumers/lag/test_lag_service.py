"""The poll loop: snapshots in, views, history, log lines and health out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from consumers.lag.flows import FlowTopics
from consumers.lag.model import Status
from consumers.lag.offsets import OffsetSnapshot
from consumers.lag.service import LagService
from edustream.errors import RetriableError

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
TOPIC = "growth.scans"
FLOWS = [FlowTopics("growth", (TOPIC,), ("growth.statements",), "growth.dead")]


def at(seconds: float) -> datetime:
    """Return the moment ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def snapshot(
    seconds: float,
    log_ends: Mapping[tuple[str, int], int],
    committed: Mapping[str, Mapping[tuple[str, int], int]],
) -> OffsetSnapshot:
    """A snapshot observed ``seconds`` after T0."""
    return OffsetSnapshot(at(seconds), dict(log_ends), dict(committed))


def one_partition(seconds: float, committed: int, log_end: int) -> OffsetSnapshot:
    """Group "notify" on partition 0 of the scans topic."""
    return snapshot(seconds, {(TOPIC, 0): log_end}, {"notify": {(TOPIC, 0): committed}})


class ScriptedSource:
    """Returns the scripted snapshots in order; an exception entry is raised."""

    def __init__(self, script: list[OffsetSnapshot | Exception]) -> None:
        self._script = list(script)
        self.reads = 0
        self.read_twice = asyncio.Event()

    async def read(self) -> OffsetSnapshot:
        """Return or raise the next scripted entry."""
        self.reads += 1
        if self.reads >= 2:
            self.read_twice.set()
        entry = self._script.pop(0) if len(self._script) > 1 else self._script[0]
        if isinstance(entry, Exception):
            raise entry
        return entry


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Captured structlog events at every level, configuration restored after."""
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG)
    )
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**saved)


async def poll_all(service: LagService, count: int) -> None:
    """Poll ``count`` times."""
    for _ in range(count):
        await service.poll()


async def test_poll_reports_partitions_groups_and_flows() -> None:
    """One poll yields the partition reading, its group and the flow totals."""
    source = ScriptedSource(
        [
            snapshot(
                0,
                {(TOPIC, 0): 50, (TOPIC, 1): 30, ("growth.dead", 0): 4},
                {"notify": {(TOPIC, 0): 20, (TOPIC, 1): 30}},
            )
        ]
    )
    service = LagService(source, flows=FLOWS)

    view = await service.poll()

    assert [(p.partition, p.lag) for p in view.partitions] == [(0, 30), (1, 0)]
    group = view.group("notify")
    assert group is not None
    assert (group.partitions, group.max_lag, group.sum_lag) == (2, 30, 30)
    assert [(f.flow, f.records_in, f.dead_letters) for f in view.flows] == [
        ("growth", 80, 4)
    ]
    assert service.polls == 1
    assert service.last_success == at(0)


async def test_a_consumer_that_stops_reads_stop_then_ok_again(
    logs: list[MutableMapping[str, Any]],
) -> None:
    """Silence past the window's span reads STOP; catching up reads OK."""
    source = ScriptedSource(
        [
            # Commits with a rising lag: WARN.
            one_partition(0, 0, 10),
            one_partition(1, 5, 20),
            one_partition(2, 10, 30),
            # No commit while the log grows: silent longer than the 2 s
            # span from 5 s on.
            one_partition(3, 10, 32),
            one_partition(4, 10, 34),
            one_partition(5, 10, 36),
            # Caught up.
            one_partition(6, 36, 36),
        ]
    )
    service = LagService(source, window_size=3, flows=FLOWS)

    statuses = []
    for _ in range(7):
        view = await service.poll()
        group = view.group("notify")
        assert group is not None
        statuses.append(group.status)

    assert statuses[2:] == [
        Status.WARN,
        Status.WARN,
        Status.WARN,
        Status.STOP,
        Status.OK,
    ]
    changes = [
        (entry["log_level"], entry["before"], entry["after"])
        for entry in logs
        if entry["event"] == "consumer_group_status_changed"
    ]
    assert ("warning", "WARN", "STOP") in changes
    assert changes[-1] == ("info", "STOP", "OK")


async def test_every_poll_logs_one_debug_line(
    logs: list[MutableMapping[str, Any]],
) -> None:
    """Each poll leaves exactly one debug summary with counts and the worst status."""
    source = ScriptedSource([one_partition(s, 5, 10) for s in range(3)])
    service = LagService(source, flows=FLOWS)

    await poll_all(service, 3)

    polled = [entry for entry in logs if entry["event"] == "lag_polled"]
    assert [entry["log_level"] for entry in polled] == ["debug"] * 3
    assert (polled[0]["groups"], polled[0]["partitions"]) == (1, 1)
    # One commit cannot be judged yet.
    assert polled[0]["worst"] == "ERR"


async def test_groups_and_topics_that_vanish_are_forgotten() -> None:
    """A deleted group and a deleted topic leave the next view."""
    source = ScriptedSource(
        [
            snapshot(
                0,
                {(TOPIC, 0): 10, ("old.topic", 0): 5},
                {
                    "notify": {(TOPIC, 0): 10, ("old.topic", 0): 1},
                    "gone": {(TOPIC, 0): 3},
                },
            ),
            snapshot(1, {(TOPIC, 0): 12}, {"notify": {(TOPIC, 0): 12}}),
        ]
    )
    service = LagService(source, flows=FLOWS)

    await poll_all(service, 2)

    view = service.view
    assert view is not None
    assert [g.group for g in view.groups] == ["notify"]
    assert [(p.group, p.topic) for p in view.partitions] == [("notify", TOPIC)]


async def test_commits_on_partitions_without_a_log_end_are_skipped() -> None:
    """A commit on a partition the metadata no longer lists is not reported."""
    source = ScriptedSource(
        [snapshot(0, {(TOPIC, 0): 10}, {"notify": {(TOPIC, 0): 4, (TOPIC, 9): 1}})]
    )

    view = await LagService(source, flows=FLOWS).poll()

    assert [(p.partition, p.lag) for p in view.partitions] == [(0, 6)]


async def test_flow_rates_come_from_consecutive_polls() -> None:
    """The second poll's rate is the growth of the totals per second."""
    source = ScriptedSource(
        [
            snapshot(0, {(TOPIC, 0): 100, ("growth.dead", 0): 0}, {}),
            snapshot(4, {(TOPIC, 0): 140, ("growth.dead", 0): 8}, {}),
        ]
    )
    service = LagService(source, flows=FLOWS)

    await poll_all(service, 2)

    view = service.view
    assert view is not None
    (flow,) = view.flows
    assert (flow.in_per_s, flow.dead_letters_per_s) == (10.0, 2.0)


async def test_run_survives_failed_polls_and_stops_on_request(
    logs: list[MutableMapping[str, Any]],
) -> None:
    """A failing poll is counted and logged; the loop goes on until stopped."""
    source = ScriptedSource([RetriableError("cluster away"), one_partition(0, 5, 10)])
    service = LagService(source, poll_interval_s=0.01, flows=FLOWS)
    stop = asyncio.Event()

    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(source.read_twice.wait(), timeout=5)
    assert service.running
    stop.set()
    await task

    assert service.failures == 1
    assert service.polls >= 1
    assert not service.running
    failed = [entry for entry in logs if entry["event"] == "lag_poll_failed"]
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["error"] == "cluster away"


@pytest.mark.parametrize(
    ("age_s", "fresh"),
    [(0.0, True), (20.0, True), (21.0, False), (300.0, False)],
)
async def test_freshness_allows_three_missed_polls(age_s: float, fresh: bool) -> None:
    """The view is fresh up to three intervals plus a grace after a success."""
    service = LagService(ScriptedSource([one_partition(0, 5, 10)]), flows=FLOWS)
    assert not service.is_fresh(at(0))

    await service.poll()

    assert service.is_fresh(at(age_s)) is fresh
