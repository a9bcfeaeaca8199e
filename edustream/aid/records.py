"""Pseudonymous records the aid flow keeps and passes between its stages.

Duties:

- ``RegistryRecord``, ``LinkRecord`` and ``StatusRecord`` are the upstream
  events after intake: the same facts with ID numbers replaced by keyed
  references and the student's name masked.
- Each record knows its ``stamp``, the (occurred_at, event_id) pair that
  orders versions of one fact. The later stamp wins whatever the arrival
  order, and the event id breaks ties so that two versions with the same time
  still resolve the same way everywhere.

All three are frozen and carry ``to_dict``/``from_dict`` for Faust table state
and Avro alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from edustream.aid import wire
from edustream.aid.vocabulary import (
    LEAVING_CHANGES,
    Category,
    Change,
    Relation,
    Stage,
)

Stamp = tuple[int, str]


@dataclass(frozen=True, slots=True)
class RegistryRecord(wire.WireRecord):
    """A student's registry entry as of one change, keyed by student ref."""

    event_id: str
    occurred_at: wire.Millis
    student_ref: str
    change: Change
    masked_name: str
    school_id: str
    school_name: str
    district_code: str
    stage: Stage
    grade: int
    boarding: bool

    @property
    def stamp(self) -> Stamp:
        """Return the pair that orders versions of this entry."""
        return (self.occurred_at, self.event_id)

    @property
    def in_school(self) -> bool:
        """Return whether the student is still enrolled after this change."""
        return self.change not in LEAVING_CHANGES


@dataclass(frozen=True, slots=True)
class LinkRecord(wire.WireRecord):
    """A guardian-student link as of one change, keyed by guardian ref."""

    event_id: str
    occurred_at: wire.Millis
    guardian_ref: str
    guardian_account: str
    student_ref: str
    relation: Relation
    linked: bool

    @property
    def stamp(self) -> Stamp:
        """Return the pair that orders versions of this link."""
        return (self.occurred_at, self.event_id)


@dataclass(frozen=True, slots=True)
class StatusRecord(wire.WireRecord):
    """An assistance record of one person, keyed by person ref."""

    event_id: str
    occurred_at: wire.Millis
    person_ref: str
    status_id: str
    category: Category
    granted: bool
    valid_from: date
    valid_to: date | None

    @property
    def stamp(self) -> Stamp:
        """Return the pair that orders versions of this civil-affairs record."""
        return (self.occurred_at, self.event_id)

    def holds_on(self, day: date) -> bool:
        """Return whether the assistance is granted and valid on ``day``."""
        if not self.granted or day < self.valid_from:
            return False
        return self.valid_to is None or day <= self.valid_to
