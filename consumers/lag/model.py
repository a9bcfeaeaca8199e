"""The records the lag monitor reports, and the order of its statuses.

Duties:

- name the partition statuses (``Status``) and rank them by severity;
- carry one partition's lag reading (``PartitionLag``) and one group's summary
  (``GroupLag``) in a shape that serialises to plain dictionaries.

Severity follows Burrow's numbering of its status constants::

    OK < WARN < ERR < STOP < STALL < REWIND

``ERR`` here means "this partition cannot be judged" (no samples, or too few
commits). It sits where Burrow puts its own ``ERR``: a partition we cannot
judge ranks above a merely slow one, because it may hide a failure, and below
every confirmed failure, because those say what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """How a consumer group is doing on one partition, or on all of them."""

    OK = "OK"
    WARN = "WARN"
    ERR = "ERR"
    STOP = "STOP"
    STALL = "STALL"
    REWIND = "REWIND"

    @property
    def severity(self) -> int:
        """Rank of the status; a higher rank is worse (OK is 0, REWIND is 5)."""
        return _BY_SEVERITY.index(self)


# Burrow numbers its constants NOTFOUND=0, OK=1, WARN=2, ERR=3, STOP=4, STALL=5,
# REWIND=6 and takes the highest; NOTFOUND has no partition-level meaning here.
_BY_SEVERITY: tuple[Status, ...] = (
    Status.OK,
    Status.WARN,
    Status.ERR,
    Status.STOP,
    Status.STALL,
    Status.REWIND,
)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One group's position on one partition at one moment.

    ``lag`` is the offset lag (log end offset minus committed offset, never
    below zero) and ``lag_seconds`` the estimated time lag.
    """

    group: str
    topic: str
    partition: int
    committed: int
    log_end: int
    lag: int
    lag_seconds: float
    status: Status

    def to_dict(self) -> dict[str, str | int | float]:
        """Return the reading as a JSON-ready dictionary."""
        return {
            "group": self.group,
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "log_end": self.log_end,
            "lag": self.lag,
            "lag_seconds": self.lag_seconds,
            "status": str(self.status),
        }


@dataclass(frozen=True, slots=True)
class GroupLag:
    """One group's summary over every partition it was seen on.

    The fields match the group-level lag gauges: ``max_lag``,
    ``max_lag_seconds`` and ``sum_lag``; ``status`` is the worst partition's.
    """

    group: str
    status: Status
    partitions: int
    max_lag: int
    max_lag_seconds: float
    sum_lag: int

    def to_dict(self) -> dict[str, str | int | float]:
        """Return the summary as a JSON-ready dictionary."""
        return {
            "group": self.group,
            "status": str(self.status),
            "partitions": self.partitions,
            "max_lag": self.max_lag,
            "max_lag_seconds": self.max_lag_seconds,
            "sum_lag": self.sum_lag,
        }
