"""Upstream events the aid flow consumes.

Duties: one frozen record per upstream event type, with ``to_dict`` (Avro and
JSON ready) and ``from_dict`` (accepting fastavro's or JSON's form). The Avro
schemas under ``avro_schemas/aid/`` mirror these fields one for one.

Registry changes, family links and assistance statuses carry ID numbers and
names; they exist only on the upstream topics and are pseudonymised by
``edustream.aid.intake`` before anything else sees them. Their ``repr`` hides
those fields so a stray log line or assertion message cannot leak them.
Guardian answers come from the portal and are pseudonymous already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from edustream.aid import wire
from edustream.aid.vocabulary import Answer, Category, Change, Relation, Stage
from edustream.errors import PoisonError


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """A change to one student's registry entry, with the entry after it."""

    event_id: str
    occurred_at: int
    change: Change
    student_id: str = field(repr=False)
    student_name: str = field(repr=False)
    school_id: str
    school_name: str
    district_code: str
    stage: Stage
    grade: int
    boarding: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "change": self.change.value,
            "student_id": self.student_id,
            "student_name": self.student_name,
            "school_id": self.school_id,
            "school_name": self.school_name,
            "district_code": self.district_code,
            "stage": self.stage.value,
            "grade": self.grade,
            "boarding": self.boarding,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> RegistryChange:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("RegistryChange"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                change=Change(data["change"]),
                student_id=str(data["student_id"]),
                student_name=str(data["student_name"]),
                school_id=str(data["school_id"]),
                school_name=str(data["school_name"]),
                district_code=str(data["district_code"]),
                stage=Stage(data["stage"]),
                grade=int(data["grade"]),
                boarding=bool(data["boarding"]),
            )


@dataclass(frozen=True, slots=True)
class FamilyLink:
    """A guardian linked to or unlinked from a student."""

    event_id: str
    occurred_at: int
    guardian_id: str = field(repr=False)
    guardian_account: str
    student_id: str = field(repr=False)
    relation: Relation
    linked: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "guardian_id": self.guardian_id,
            "guardian_account": self.guardian_account,
            "student_id": self.student_id,
            "relation": self.relation.value,
            "linked": self.linked,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> FamilyLink:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("FamilyLink"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                guardian_id=str(data["guardian_id"]),
                guardian_account=str(data["guardian_account"]),
                student_id=str(data["student_id"]),
                relation=Relation(data["relation"]),
                linked=bool(data["linked"]),
            )


@dataclass(frozen=True, slots=True)
class AssistanceStatus:
    """A civil-affairs assistance record granted to or revoked from a person.

    ``status_id`` names the civil-affairs record; a later event with the same
    id replaces the earlier one, and ``granted=False`` revokes it.
    """

    event_id: str
    occurred_at: int
    person_id: str = field(repr=False)
    category: Category
    granted: bool
    valid_from: date
    valid_to: date | None
    status_id: str

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "person_id": self.person_id,
            "category": self.category.value,
            "granted": self.granted,
            "valid_from": wire.day_number(self.valid_from),
            "valid_to": wire.optional_day_number(self.valid_to),
            "status_id": self.status_id,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> AssistanceStatus:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("AssistanceStatus"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                person_id=str(data["person_id"]),
                category=Category(data["category"]),
                granted=bool(data["granted"]),
                valid_from=wire.to_date(data["valid_from"]),
                valid_to=wire.to_optional_date(data.get("valid_to")),
                status_id=str(data["status_id"]),
            )


@dataclass(frozen=True, slots=True)
class GuardianAnswer:
    """A guardian's signed acceptance or decline of an offer, from the portal.

    An acceptance without a signature reference cannot be disbursed against,
    and the portal never sends one, so it is refused as poison at decode time
    rather than answered.
    """

    event_id: str
    occurred_at: int
    offer_id: str
    student_ref: str
    guardian_account: str
    answer: Answer
    signature_ref: str | None

    def __post_init__(self) -> None:
        """Refuse an unsigned acceptance."""
        if self.answer is Answer.ACCEPT and not self.signature_ref:
            message = "GuardianAnswer: an ACCEPT carries no signature_ref"
            raise PoisonError("invalid_record", message)

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "offer_id": self.offer_id,
            "student_ref": self.student_ref,
            "guardian_account": self.guardian_account,
            "answer": self.answer.value,
            "signature_ref": self.signature_ref,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> GuardianAnswer:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("GuardianAnswer"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                offer_id=wire.to_text(data["offer_id"]),
                student_ref=str(data["student_ref"]),
                guardian_account=str(data["guardian_account"]),
                answer=Answer(data["answer"]),
                signature_ref=wire.to_optional_text(data.get("signature_ref")),
            )
