"""One poll's complete picture: partitions, groups and flows.

Duties:

- carry what the monitor knows after a poll (``LagView``);
- render it as the JSON document that ``GET /api/lag`` serves and
  ``edustream lag --json`` prints (``LagView.to_dict``).

The document's shape, field by field::

    at               ISO 8601 UTC time of the poll
    poll_interval_s  seconds between polls
    groups           one GroupLag per group, ordered by group
    partitions       one PartitionLag per group and partition, in key order
    flows            one FlowRate per flow (aid, billing, growth)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from consumers.lag.flows import FlowRate
from consumers.lag.model import GroupLag, PartitionLag


@dataclass(frozen=True, slots=True)
class LagView:
    """Everything one poll found, ready to serve."""

    at: datetime
    poll_interval_s: float
    partitions: tuple[PartitionLag, ...]
    groups: tuple[GroupLag, ...]
    flows: tuple[FlowRate, ...]

    def group(self, name: str) -> GroupLag | None:
        """The summary of one group, or None if it was not seen."""
        return next((group for group in self.groups if group.group == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document described in the module docstring."""
        return {
            "at": self.at.isoformat(),
            "poll_interval_s": self.poll_interval_s,
            "groups": [group.to_dict() for group in self.groups],
            "partitions": [reading.to_dict() for reading in self.partitions],
            "flows": [flow.to_dict() for flow in self.flows],
        }
