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
from typing import Any

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
class RegistryRecord:
    """A student's registry entry as of one change, keyed by student ref."""

    event_id: str
    occurred_at: int
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

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "student_ref": self.student_ref,
            "change": self.change.value,
            "masked_name": self.masked_name,
            "school_id": self.school_id,
            "school_name": self.school_name,
            "district_code": self.district_code,
            "stage": self.stage.value,
            "grade": self.grade,
            "boarding": self.boarding,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> RegistryRecord:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("RegistryRecord"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                student_ref=str(data["student_ref"]),
                change=Change(data["change"]),
                masked_name=str(data["masked_name"]),
                school_id=str(data["school_id"]),
                school_name=str(data["school_name"]),
                district_code=str(data["district_code"]),
                stage=Stage(data["stage"]),
                grade=int(data["grade"]),
                boarding=bool(data["boarding"]),
            )


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A guardian-student link as of one change, keyed by guardian ref."""

    event_id: str
    occurred_at: int
    guardian_ref: str
    guardian_account: str
    student_ref: str
    relation: Relation
    linked: bool

    @property
    def stamp(self) -> Stamp:
        """Return the pair that orders versions of this link."""
        return (self.occurred_at, self.event_id)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "guardian_ref": self.guardian_ref,
            "guardian_account": self.guardian_account,
            "student_ref": self.student_ref,
            "relation": self.relation.value,
            "linked": self.linked,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> LinkRecord:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("LinkRecord"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                guardian_ref=str(data["guardian_ref"]),
                guardian_account=str(data["guardian_account"]),
                student_ref=str(data["student_ref"]),
                relation=Relation(data["relation"]),
                linked=bool(data["linked"]),
            )


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """An assistance record of one person, keyed by person ref."""

    event_id: str
    occurred_at: int
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

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "person_ref": self.person_ref,
            "status_id": self.status_id,
            "category": self.category.value,
            "granted": self.granted,
            "valid_from": wire.day_number(self.valid_from),
            "valid_to": wire.optional_day_number(self.valid_to),
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> StatusRecord:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("StatusRecord"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                person_ref=str(data["person_ref"]),
                status_id=str(data["status_id"]),
                category=Category(data["category"]),
                granted=bool(data["granted"]),
                valid_from=wire.to_date(data["valid_from"]),
                valid_to=wire.to_optional_date(data.get("valid_to")),
            )
