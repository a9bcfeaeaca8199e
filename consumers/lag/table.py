"""Plain-text tables of a lag document, for ``edustream lag``.

Duties:

- render the partitions like ``kafka-consumer-groups --describe``, with
  LAG-SECONDS and STATUS columns added (``render_partitions``);
- render one summary line per group and one per flow (``render_groups``,
  ``render_flows``);
- put the three together (``render``).

Everything reads the JSON document of ``LagView.to_dict`` (or the same
document fetched from a running monitor), so the table and ``--json`` can
never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_PARTITION_COLUMNS = (
    ("GROUP", "group"),
    ("TOPIC", "topic"),
    ("PARTITION", "partition"),
    ("CURRENT-OFFSET", "committed"),
    ("LOG-END-OFFSET", "log_end"),
    ("LAG", "lag"),
    ("LAG-SECONDS", "lag_seconds"),
    ("STATUS", "status"),
)
_GROUP_COLUMNS = (
    ("GROUP", "group"),
    ("STATUS", "status"),
    ("PARTITIONS", "partitions"),
    ("MAX-LAG", "max_lag"),
    ("MAX-LAG-SECONDS", "max_lag_seconds"),
    ("SUM-LAG", "sum_lag"),
)
_FLOW_COLUMNS = (
    ("FLOW", "flow"),
    ("IN", "records_in"),
    ("OUT", "records_out"),
    ("DEAD-LETTERS", "dead_letters"),
    ("IN/S", "in_per_s"),
    ("OUT/S", "out_per_s"),
)
_TEXT_KEYS = frozenset({"group", "topic", "status", "flow"})


def render(document: Mapping[str, Any], *, lagging_only: bool = False) -> str:
    """The whole report: partitions, then groups, then flows."""
    partitions = list(document.get("partitions", []))
    if lagging_only:
        partitions = [
            row for row in partitions if row["lag"] > 0 or row["status"] != "OK"
        ]

    blocks = [
        f"polled at {document.get('at', 'never')}",
        render_partitions(partitions),
        render_groups(document.get("groups", [])),
        render_flows(document.get("flows", [])),
    ]
    return "\n\n".join(blocks) + "\n"


def render_partitions(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per group and partition."""
    if not rows:
        return "no partition to show"
    return _table(_PARTITION_COLUMNS, rows)


def render_groups(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per group with its worst status and lag totals."""
    if not rows:
        return "no consumer group has committed offsets"
    return _table(_GROUP_COLUMNS, rows)


def render_flows(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per flow with its record totals and rates."""
    return _table(_FLOW_COLUMNS, rows)


def _table(
    columns: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]]
) -> str:
    cells = [[_cell(row.get(key)) for _title, key in columns] for row in rows]
    widths = [
        max([len(title), *(len(line[i]) for line in cells)])
        for i, (title, _key) in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.ljust(width) if key in _TEXT_KEYS else value.rjust(width)
            for value, width, (_title, key) in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(padded).rstrip()

    header = line([title for title, _key in columns])
    return "\n".join([header, *(line(values) for values in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
