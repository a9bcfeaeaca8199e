"""Status severity and the shape of lag reports."""

from __future__ import annotations

import json

from consumers.lag.model import GroupLag, PartitionLag, Status


def test_severity_follows_burrow_order() -> None:
    """OK < WARN < ERR < STOP < STALL < REWIND, as Burrow numbers them."""
    ranked = sorted(Status, key=lambda status: status.severity)

    assert [str(status) for status in ranked] == [
        "OK",
        "WARN",
        "ERR",
        "STOP",
        "STALL",
        "REWIND",
    ]
    assert [status.severity for status in ranked] == [0, 1, 2, 3, 4, 5]


def test_partition_lag_to_dict_is_json_ready() -> None:
    """A partition reading serialises with its status as a plain string."""
    reading = PartitionLag(
        group="growth-archive",
        topic="growth.checkins",
        partition=3,
        committed=1_200,
        log_end=1_250,
        lag=50,
        lag_seconds=12.5,
        status=Status.WARN,
    )

    assert json.loads(json.dumps(reading.to_dict())) == {
        "group": "growth-archive",
        "topic": "growth.checkins",
        "partition": 3,
        "committed": 1_200,
        "log_end": 1_250,
        "lag": 50,
        "lag_seconds": 12.5,
        "status": "WARN",
    }


def test_group_lag_to_dict_is_json_ready() -> None:
    """A group summary serialises with its status as a plain string."""
    summary = GroupLag(
        group="billing-receipts",
        status=Status.STOP,
        partitions=4,
        max_lag=900,
        max_lag_seconds=61.0,
        sum_lag=1_000,
    )

    assert json.loads(json.dumps(summary.to_dict())) == {
        "group": "billing-receipts",
        "status": "STOP",
        "partitions": 4,
        "max_lag": 900,
        "max_lag_seconds": 61.0,
        "sum_lag": 1_000,
    }
