"""Prometheus metrics built from the monitor's latest view."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumers.lag.exporter import METRIC_NAMES, LagCollector
from consumers.lag.flows import FlowTopics
from consumers.lag.offsets import OffsetSnapshot
from consumers.lag.service import LagService

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
FLOWS = [FlowTopics("growth", ("growth.scans",), ("growth.statements",), "dl")]


class OneSnapshot:
    """Always returns the same snapshot."""

    async def read(self) -> OffsetSnapshot:
        """Two groups on two partitions and a dead-letter topic."""
        return OffsetSnapshot(
            T0,
            {("growth.scans", 0): 50, ("growth.scans", 1): 20, ("dl", 0): 3},
            {
                "edustream": {("growth.scans", 0): 40, ("growth.scans", 1): 20},
                "notify": {("growth.scans", 0): 50},
            },
        )


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of the registry's exposition, keyed by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[Any]:
    """A label set for lookups in ``samples``."""
    return frozenset(values.items())


async def registry_after_poll() -> CollectorRegistry:
    """A registry whose collector has seen one poll."""
    service = LagService(OneSnapshot(), flows=FLOWS)
    await service.poll()
    registry = CollectorRegistry()
    registry.register(LagCollector(service))
    return registry


async def test_partition_gauges_follow_kafka_lag_exporter_names() -> None:
    """Lag, time lag and offsets are labelled by group, topic and partition."""
    found = samples(await registry_after_poll())

    p0 = labels(group="edustream", topic="growth.scans", partition="0")
    assert found[("kafka_consumergroup_group_lag", p0)] == 10
    assert found[("kafka_consumergroup_group_offset", p0)] == 40
    assert found[("kafka_consumergroup_group_lag_seconds", p0)] == 0.0
    latest = labels(topic="growth.scans", partition="0")
    assert found[("kafka_partition_latest_offset", latest)] == 50


async def test_group_gauges_carry_max_and_sum() -> None:
    """Group gauges are labelled by group alone."""
    found = samples(await registry_after_poll())

    group = labels(group="edustream")
    assert found[("kafka_consumergroup_group_max_lag", group)] == 10
    assert found[("kafka_consumergroup_group_sum_lag", group)] == 10
    assert found[("kafka_consumergroup_group_max_lag_seconds", group)] == 0.0
    assert found[("kafka_consumergroup_group_sum_lag", labels(group="notify"))] == 0


async def test_status_is_one_hot_and_has_a_severity() -> None:
    """Exactly one status series per group is 1; severity gives its rank."""
    found = samples(await registry_after_poll())

    statuses = {
        dict(key)["status"]: value
        for (name, key), value in found.items()
        if name == "edustream_consumergroup_status" and ("group", "edustream") in key
    }
    # One commit with lag: not judged yet.
    assert statuses == {
        "OK": 0,
        "WARN": 0,
        "ERR": 1,
        "STOP": 0,
        "STALL": 0,
        "REWIND": 0,
    }
    severity = found[
        ("edustream_consumergroup_status_severity", labels(group="edustream"))
    ]
    assert severity == 2
    notify = labels(group="notify")
    assert found[("edustream_consumergroup_status_severity", notify)] == 0


async def test_flows_and_poll_health_are_exported() -> None:
    """Flow totals by role and the poll loop's counters are on every scrape."""
    found = samples(await registry_after_poll())

    assert (
        found[("edustream_flow_records_total", labels(flow="growth", role="input"))]
        == 70
    )
    dead = labels(flow="growth", role="dead_letter")
    assert found[("edustream_flow_records_total", dead)] == 3
    assert found[("edustream_lag_monitor_polls_total", frozenset())] == 1
    assert found[("edustream_lag_monitor_poll_failures_total", frozenset())] == 0
    last = found[("edustream_lag_monitor_last_poll_timestamp_seconds", frozenset())]
    assert last == T0.timestamp()


async def test_every_declared_name_is_exported() -> None:
    """METRIC_NAMES, which the deployment files are checked against, is exact."""
    names = {name for name, _labels in samples(await registry_after_poll())}

    assert names == set(METRIC_NAMES)


def test_before_the_first_poll_only_health_is_exported() -> None:
    """No view yet: no lag series, and the poll counters read zero."""
    registry = CollectorRegistry()
    registry.register(LagCollector(LagService(OneSnapshot(), flows=FLOWS)))

    names = {name for name, _labels in samples(registry)}

    assert names == {
        "edustream_lag_monitor_polls_total",
        "edustream_lag_monitor_poll_failures_total",
    }
