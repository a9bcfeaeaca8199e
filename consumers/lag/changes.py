"""Group status changes between two polls.

Duties:

- compare two polls' group statuses (``status_changes``);
- say whether a change is trouble (``StatusChange.is_trouble``): the
  monitor logs trouble at warning and the rest (recovery, a new healthy
  group, a group gone) at info.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumers.lag.model import Status


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One group's status before and after; None where it was not seen."""

    group: str
    before: Status | None
    after: Status | None

    @property
    def is_trouble(self) -> bool:
        """True when the group now reads anything but OK."""
        return self.after is not None and self.after is not Status.OK


def status_changes(
    before: Mapping[str, Status], after: Mapping[str, Status]
) -> list[StatusChange]:
    """Every group whose status differs between the polls, ordered by group."""
    groups = sorted(set(before) | set(after))
    return [
        StatusChange(group, before.get(group), after.get(group))
        for group in groups
        if before.get(group) != after.get(group)
    ]
