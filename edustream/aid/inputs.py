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

from edustream.aid import wire
from edustream.aid.vocabulary import Answer, Category, Change, Relation, Stage
from edustream.errors import PoisonError


@dataclass(frozen=True, slots=True)
class RegistryChange(wire.WireRecord):
    """A change to one student's registry entry, with the entry after it."""

    event_id: str
    occurred_at: wire.Millis
    change: Change
    student_id: str = field(repr=False)
    student_name: str = field(repr=False)
    school_id: str
    school_name: str
    district_code: str
    stage: Stage
    grade: int
    boarding: bool


@dataclass(frozen=True, slots=True)
class FamilyLink(wire.WireRecord):
    """A guardian linked to or unlinked from a student."""

    event_id: str
    occurred_at: wire.Millis
    guardian_id: str = field(repr=False)
    guardian_account: str
    student_id: str = field(repr=False)
    relation: Relation
    linked: bool


@dataclass(frozen=True, slots=True)
class AssistanceStatus(wire.WireRecord):
    """A civil-affairs assistance record granted to or revoked from a person.

    ``status_id`` names the civil-affairs record; a later event with the same
    id replaces the earlier one, and ``granted=False`` revokes it.
    """

    event_id: str
    occurred_at: wire.Millis
    person_id: str = field(repr=False)
    category: Category
    granted: bool
    valid_from: date
    valid_to: date | None
    status_id: str


@dataclass(frozen=True, slots=True)
class GuardianAnswer(wire.WireRecord):
    """A guardian's signed acceptance or decline of an offer, from the portal.

    An acceptance without a signature reference cannot be disbursed against,
    and the portal never sends one, so it is refused as poison at decode time
    rather than answered.
    """

    event_id: str
    occurred_at: wire.Millis
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
