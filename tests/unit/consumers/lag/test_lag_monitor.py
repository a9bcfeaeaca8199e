"""The lag monitor: readings in, partition reports and group summaries out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consumers.lag.model import GroupLag, PartitionLag, Status
from consumers.lag.monitor import LagMonitor, summarise

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """Return the moment ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def observe_all(
    monitor: LagMonitor, group: str, polls: list[tuple[int, int, float]]
) -> None:
    """Feed (committed, log end, seconds) polls for partition 0 of one topic."""
    for committed, log_end, seconds in polls:
        monitor.observe(
            group,
            "aid.offers",
            0,
            committed_offset=committed,
            log_end_offset=log_end,
            observed_at=at(seconds),
        )


def test_report_gives_lag_time_lag_and_status() -> None:
    """One lagging group reports offsets, interpolated time lag and WARN."""
    monitor = LagMonitor()
    observe_all(monitor, "notify", [(0, 100, 0), (50, 200, 10), (100, 400, 20)])

    report = monitor.report(at(30))

    # The log end passed offset 100 at 0 s: time lag 30 s.
    assert report == [
        PartitionLag("notify", "aid.offers", 0, 100, 400, 300, 30.0, Status.WARN)
    ]


def test_groups_share_the_partition_table() -> None:
    """Two groups on one partition read time lag from the same table."""
    monitor = LagMonitor()
    observe_all(monitor, "slow", [(0, 100, 0), (50, 200, 10)])
    observe_all(monitor, "fast", [(100, 100, 0), (200, 200, 10)])
    observe_all(monitor, "slow", [(150, 300, 20)])

    report = monitor.report(at(20))

    # The log end passed 150 halfway from (100, 0 s) to (200, 10 s): at 5 s.
    assert [(r.group, r.lag, r.lag_seconds, r.status) for r in report] == [
        ("fast", 0, 0.0, Status.OK),
        ("slow", 150, 15.0, Status.WARN),
    ]


def test_zero_offset_lag_reports_zero_time_lag() -> None:
    """A caught-up group reads 0 s even after the table moved further on."""
    monitor = LagMonitor()
    observe_all(monitor, "fast", [(100, 100, 0)])
    observe_all(monitor, "slow", [(0, 100, 0), (0, 500, 10)])

    report = monitor.report(at(60))

    assert (report[0].group, report[0].lag_seconds) == ("fast", 0.0)


def test_summarise_folds_partitions_per_group() -> None:
    """A group summary takes max and sum of lags and the worst status."""
    readings = [
        PartitionLag("billing", "billing.callbacks", 0, 10, 40, 30, 4.0, Status.OK),
        PartitionLag("billing", "billing.callbacks", 1, 5, 95, 90, 2.5, Status.STOP),
        PartitionLag("aid", "aid.offers", 0, 7, 7, 0, 0.0, Status.OK),
    ]

    summaries = summarise(readings)

    assert summaries == [
        GroupLag("aid", Status.OK, 1, 0, 0.0, 0),
        GroupLag("billing", Status.STOP, 2, 90, 4.0, 120),
    ]


def test_forget_group_and_topic_drop_their_partitions() -> None:
    """Forgotten groups and topics no longer appear in the report."""
    monitor = LagMonitor()
    for group in ("a", "b"):
        for topic in ("aid.offers", "growth.checkins"):
            monitor.observe(
                group,
                topic,
                0,
                committed_offset=5,
                log_end_offset=5,
                observed_at=at(0),
            )

    monitor.forget_group("a")
    monitor.forget_topic("growth.checkins")

    assert [(r.group, r.topic) for r in monitor.report(at(1))] == [("b", "aid.offers")]
