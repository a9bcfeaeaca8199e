"""Prometheus metrics for the lag monitor, built from the latest view.

Duties:

- expose the lag gauges under kafka-lag-exporter's names and labels, so its
  dashboards and alert rules work unchanged;
- expose each group's Burrow status, each flow's summed log end offsets and
  the poll loop's own health.

The collector builds every sample at scrape time from the service's latest
view, so a group or topic that is gone disappears from the next scrape
instead of leaving a stale labelled gauge behind.

Metrics (``g`` group, ``t`` topic, ``p`` partition)::

    kafka_consumergroup_group_lag{g,t,p}              offset lag
    kafka_consumergroup_group_lag_seconds{g,t,p}      estimated time lag
    kafka_consumergroup_group_offset{g,t,p}           committed offset
    kafka_partition_latest_offset{t,p}                log end offset
    kafka_consumergroup_group_max_lag{g}              worst partition's lag
    kafka_consumergroup_group_max_lag_seconds{g}      worst time lag
    kafka_consumergroup_group_sum_lag{g}              lag over all partitions
    edustream_consumergroup_status{g,status}          1 for the current status
    edustream_consumergroup_status_severity{g}        0 (OK) to 5 (REWIND)
    edustream_flow_records_total{flow,role}           records on a flow's topics
    edustream_lag_monitor_polls_total                 successful polls
    edustream_lag_monitor_poll_failures_total         failed polls
    edustream_lag_monitor_last_poll_timestamp_seconds time of the last success
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from consumers.lag.model import Status
from consumers.lag.service import LagService
from consumers.lag.view import LagView

_PARTITION_LABELS = ["group", "topic", "partition"]

METRIC_NAMES: tuple[str, ...] = (
    "kafka_consumergroup_group_lag",
    "kafka_consumergroup_group_lag_seconds",
    "kafka_consumergroup_group_offset",
    "kafka_partition_latest_offset",
    "kafka_consumergroup_group_max_lag",
    "kafka_consumergroup_group_max_lag_seconds",
    "kafka_consumergroup_group_sum_lag",
    "edustream_consumergroup_status",
    "edustream_consumergroup_status_severity",
    "edustream_flow_records_total",
    "edustream_lag_monitor_polls_total",
    "edustream_lag_monitor_poll_failures_total",
    "edustream_lag_monitor_last_poll_timestamp_seconds",
)


class LagCollector(Collector):
    """Yields the lag monitor's metrics from the service's latest view."""

    def __init__(self, service: LagService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        """Build every metric family from the latest view."""
        yield from self._health()

        view = self._service.view
        if view is None:
            return
        yield from _partition_metrics(view)
        yield from _group_metrics(view)
        yield from _flow_metrics(view)

    def _health(self) -> Iterator[Metric]:
        service = self._service
        # CounterMetricFamily appends "_total" to the name it is given.
        yield CounterMetricFamily(
            "edustream_lag_monitor_polls",
            "Polls of every group's offsets that succeeded",
            value=service.polls,
        )
        yield CounterMetricFamily(
            "edustream_lag_monitor_poll_failures",
            "Polls that failed (cluster unreachable, request refused)",
            value=service.failures,
        )
        if service.last_success is not None:
            yield GaugeMetricFamily(
                "edustream_lag_monitor_last_poll_timestamp_seconds",
                "Unix time of the last successful poll",
                value=service.last_success.timestamp(),
            )


def _partition_metrics(view: LagView) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "kafka_consumergroup_group_lag",
        "Group offset lag of a partition",
        labels=_PARTITION_LABELS,
    )
    seconds = GaugeMetricFamily(
        "kafka_consumergroup_group_lag_seconds",
        "Group time lag of a partition, estimated from log end offset history",
        labels=_PARTITION_LABELS,
    )
    offset = GaugeMetricFamily(
        "kafka_consumergroup_group_offset",
        "Last committed offset of a group on a partition",
        labels=_PARTITION_LABELS,
    )
    latest = GaugeMetricFamily(
        "kafka_partition_latest_offset",
        "Log end offset of a partition",
        labels=["topic", "partition"],
    )

    ends: dict[tuple[str, str], int] = {}
    for reading in view.partitions:
        labels = [reading.group, reading.topic, str(reading.partition)]
        lag.add_metric(labels, reading.lag)
        seconds.add_metric(labels, reading.lag_seconds)
        offset.add_metric(labels, reading.committed)
        ends[(reading.topic, str(reading.partition))] = reading.log_end
    for (topic, partition), end in sorted(ends.items()):
        latest.add_metric([topic, partition], end)

    yield from (lag, seconds, offset, latest)


def _group_metrics(view: LagView) -> Iterator[Metric]:
    max_lag = GaugeMetricFamily(
        "kafka_consumergroup_group_max_lag",
        "Highest offset lag over a group's partitions",
        labels=["group"],
    )
    max_seconds = GaugeMetricFamily(
        "kafka_consumergroup_group_max_lag_seconds",
        "Highest time lag over a group's partitions",
        labels=["group"],
    )
    sum_lag = GaugeMetricFamily(
        "kafka_consumergroup_group_sum_lag",
        "Offset lag summed over a group's partitions",
        labels=["group"],
    )
    status = GaugeMetricFamily(
        "edustream_consumergroup_status",
        "1 for the group's current Burrow status, 0 for the others",
        labels=["group", "status"],
    )
    severity = GaugeMetricFamily(
        "edustream_consumergroup_status_severity",
        "Group status as a number: OK 0, WARN 1, ERR 2, STOP 3, STALL 4, REWIND 5",
        labels=["group"],
    )

    for group in view.groups:
        max_lag.add_metric([group.group], group.max_lag)
        max_seconds.add_metric([group.group], group.max_lag_seconds)
        sum_lag.add_metric([group.group], group.sum_lag)
        severity.add_metric([group.group], group.status.severity)
        for candidate in Status:
            status.add_metric(
                [group.group, str(candidate)], float(candidate is group.status)
            )

    yield from (max_lag, max_seconds, sum_lag, status, severity)


def _flow_metrics(view: LagView) -> Iterator[Metric]:
    # Summed log end offsets only grow, except when a topic is recreated,
    # which rate() reads as a counter reset: a counter, not a gauge.
    ends = CounterMetricFamily(
        "edustream_flow_records",
        "Records written to a flow's input, output or dead-letter topics "
        "(log end offsets summed over their partitions)",
        labels=["flow", "role"],
    )
    for flow in view.flows:
        ends.add_metric([flow.flow, "input"], flow.records_in)
        ends.add_metric([flow.flow, "output"], flow.records_out)
        ends.add_metric([flow.flow, "dead_letter"], flow.dead_letters)
    yield ends
