"""The `edustream lag` table, rendered from the JSON document."""

from __future__ import annotations

from typing import Any

from consumers.lag.table import render

DOCUMENT: dict[str, Any] = {
    "at": "2024-09-02T08:00:00+00:00",
    "poll_interval_s": 5.0,
    "groups": [
        {
            "group": "edustream",
            "status": "STOP",
            "partitions": 2,
            "max_lag": 40,
            "max_lag_seconds": 12.5,
            "sum_lag": 40,
        }
    ],
    "partitions": [
        {
            "group": "edustream",
            "topic": "growth.scans",
            "partition": 0,
            "committed": 100,
            "log_end": 140,
            "lag": 40,
            "lag_seconds": 12.5,
            "status": "STOP",
        },
        {
            "group": "edustream",
            "topic": "growth.scans",
            "partition": 1,
            "committed": 90,
            "log_end": 90,
            "lag": 0,
            "lag_seconds": 0.0,
            "status": "OK",
        },
    ],
    "flows": [
        {
            "flow": "growth",
            "records_in": 230,
            "records_out": 0,
            "dead_letters": 230,
            "in_per_s": 8.0,
            "out_per_s": 0.0,
            "dead_letters_per_s": 0.0,
        }
    ],
}


def test_partitions_print_like_kafka_consumer_groups_with_status() -> None:
    """The partition table has the familiar columns plus time lag and status."""
    lines = render(DOCUMENT).splitlines()

    header = lines[2].split()
    assert header == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "LAG-SECONDS",
        "STATUS",
    ]
    assert lines[3].split() == [
        "edustream",
        "growth.scans",
        "0",
        "100",
        "140",
        "40",
        "12.5",
        "STOP",
    ]
    assert lines[4].split()[-1] == "OK"


def test_groups_and_flows_follow_the_partitions() -> None:
    """One summary line per group and per flow comes after the partitions."""
    blocks = render(DOCUMENT).strip().split("\n\n")

    groups, flows = rows_of(blocks[2]), rows_of(blocks[3])

    assert groups[0][:2] == ["GROUP", "STATUS"]
    assert groups[1:] == [["edustream", "STOP", "2", "40", "12.5", "40"]]
    assert flows[0][:4] == ["FLOW", "IN", "OUT", "DEAD-LETTERS"]
    assert flows[1:] == [["growth", "230", "0", "230", "8.0", "0.0"]]


def test_lagging_only_hides_caught_up_partitions() -> None:
    """With --lagging a partition at zero lag and OK is left out."""
    text = render(DOCUMENT, lagging_only=True)

    rows = [line for line in text.splitlines() if line.startswith("edustream ")]
    assert [row.split()[2] for row in rows if "growth.scans" in row] == ["0"]


def test_empty_document_says_so() -> None:
    """A cluster with no committed group prints a sentence, not a bare header."""
    text = render({"at": "2024-09-02T08:00:00+00:00", "flows": []})

    assert "no partition to show" in text
    assert "no consumer group has committed offsets" in text


def rows_of(block: str) -> list[list[str]]:
    """The block's lines split into cells."""
    return [line.split() for line in block.splitlines()]
