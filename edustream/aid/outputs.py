"""Records the aid flow publishes downstream.

Duties: one frozen record per output type, each with a deterministic event id
so a re-emit is recognisably the same record.

- ``Offer``: aid pushed to a guardian, with the amount, the rule and the basis
  that make it. An offer id names one (student, term, aid kind); a later
  ``Offer`` with the same id replaces the earlier one (updated data, another
  guardian, or reopened after a withdrawal).
- ``OfferWithdrawal``: an open offer taken back.
- ``OfferClosed``: an offer ended without a grant (declined or expired).
- ``Grant``: an accepted offer, for disbursement.
- ``RejectedAnswer``: a guardian's answer that changed nothing, and why.

No output carries an ID number or a full name: students appear as keyed
references, guardians as portal accounts, and the child's name masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from edustream.aid import identity, wire
from edustream.aid.vocabulary import (
    Category,
    Holder,
    Outcome,
    RejectionReason,
    Stage,
    WithdrawalReason,
)


@dataclass(frozen=True, slots=True)
class Basis:
    """The assistance record an offer rests on, as shown to the guardian."""

    category: Category
    holder: Holder
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class Offer:
    """Aid offered to a guardian for one student, term and aid kind."""

    event_id: str
    occurred_at: int
    offer_id: str
    student_ref: str
    guardian_account: str
    child_name: str
    school_id: str
    school_name: str
    district_code: str
    stage: Stage
    grade: int
    aid_kind: str
    amount_fen: int
    term: str
    rule_id: str
    policy_version: str
    basis: Basis
    expires_at: int

    @property
    def offered_at(self) -> int:
        """Return when the offer was made (its event time), in epoch millis."""
        return self.occurred_at

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "offer_id": self.offer_id,
            "student_ref": self.student_ref,
            "guardian_account": self.guardian_account,
            "child_name": self.child_name,
            "school_id": self.school_id,
            "school_name": self.school_name,
            "district_code": self.district_code,
            "stage": self.stage.value,
            "grade": self.grade,
            "aid_kind": self.aid_kind,
            "amount_fen": self.amount_fen,
            "term": self.term,
            "rule_id": self.rule_id,
            "policy_version": self.policy_version,
            "basis_category": self.basis.category.value,
            "basis_holder": self.basis.holder.value,
            "basis_valid_from": wire.day_number(self.basis.valid_from),
            "basis_valid_to": wire.optional_day_number(self.basis.valid_to),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> Offer:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("Offer"):
            basis = Basis(
                category=Category(data["basis_category"]),
                holder=Holder(data["basis_holder"]),
                valid_from=wire.to_date(data["basis_valid_from"]),
                valid_to=wire.to_optional_date(data.get("basis_valid_to")),
            )
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                offer_id=wire.to_text(data["offer_id"]),
                student_ref=str(data["student_ref"]),
                guardian_account=str(data["guardian_account"]),
                child_name=str(data["child_name"]),
                school_id=str(data["school_id"]),
                school_name=str(data["school_name"]),
                district_code=str(data["district_code"]),
                stage=Stage(data["stage"]),
                grade=int(data["grade"]),
                aid_kind=str(data["aid_kind"]),
                amount_fen=int(data["amount_fen"]),
                term=str(data["term"]),
                rule_id=str(data["rule_id"]),
                policy_version=str(data["policy_version"]),
                basis=basis,
                expires_at=wire.to_millis(data["expires_at"]),
            )


def content_event_id(offer: Offer) -> str:
    """Return the event id ``offer`` should carry: a digest of its content.

    Everything but the event id itself goes in, so the same offer re-emitted
    keeps its event id and any change to it gives a new one.
    """
    content = offer.to_dict()
    del content["event_id"]
    parts = [f"{name}={value}" for name, value in content.items()]
    return identity.event_id("offer", *parts)


@dataclass(frozen=True, slots=True)
class OfferWithdrawal:
    """An open offer taken back from its guardian."""

    event_id: str
    occurred_at: int
    offer_id: str
    student_ref: str
    guardian_account: str
    reason: WithdrawalReason

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "offer_id": self.offer_id,
            "student_ref": self.student_ref,
            "guardian_account": self.guardian_account,
            "reason": self.reason.value,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> OfferWithdrawal:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("OfferWithdrawal"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                offer_id=wire.to_text(data["offer_id"]),
                student_ref=str(data["student_ref"]),
                guardian_account=str(data["guardian_account"]),
                reason=WithdrawalReason(data["reason"]),
            )


@dataclass(frozen=True, slots=True)
class OfferClosed:
    """An offer that ended without a grant."""

    event_id: str
    occurred_at: int
    offer_id: str
    student_ref: str
    guardian_account: str
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "offer_id": self.offer_id,
            "student_ref": self.student_ref,
            "guardian_account": self.guardian_account,
            "outcome": self.outcome.value,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> OfferClosed:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("OfferClosed"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                offer_id=wire.to_text(data["offer_id"]),
                student_ref=str(data["student_ref"]),
                guardian_account=str(data["guardian_account"]),
                outcome=Outcome(data["outcome"]),
            )


@dataclass(frozen=True, slots=True)
class Grant:
    """An accepted offer, ready for disbursement."""

    event_id: str
    occurred_at: int
    grant_id: str
    offer_id: str
    student_ref: str
    school_id: str
    district_code: str
    aid_kind: str
    amount_fen: int
    term: str
    rule_id: str
    policy_version: str
    signature_ref: str

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "grant_id": self.grant_id,
            "offer_id": self.offer_id,
            "student_ref": self.student_ref,
            "school_id": self.school_id,
            "district_code": self.district_code,
            "aid_kind": self.aid_kind,
            "amount_fen": self.amount_fen,
            "term": self.term,
            "rule_id": self.rule_id,
            "policy_version": self.policy_version,
            "signature_ref": self.signature_ref,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> Grant:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("Grant"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                grant_id=wire.to_text(data["grant_id"]),
                offer_id=wire.to_text(data["offer_id"]),
                student_ref=str(data["student_ref"]),
                school_id=str(data["school_id"]),
                district_code=str(data["district_code"]),
                aid_kind=str(data["aid_kind"]),
                amount_fen=int(data["amount_fen"]),
                term=str(data["term"]),
                rule_id=str(data["rule_id"]),
                policy_version=str(data["policy_version"]),
                signature_ref=str(data["signature_ref"]),
            )


@dataclass(frozen=True, slots=True)
class RejectedAnswer:
    """A guardian's answer that changed nothing, for feedback in the portal."""

    event_id: str
    occurred_at: int
    offer_id: str
    answer_event_id: str
    guardian_account: str
    reason: RejectionReason

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "offer_id": self.offer_id,
            "answer_event_id": self.answer_event_id,
            "guardian_account": self.guardian_account,
            "reason": self.reason.value,
        }

    @classmethod
    def from_dict(cls, data: wire.Fields) -> RejectedAnswer:
        """Build the record from a decoded Avro or JSON dict."""
        with wire.reading("RejectedAnswer"):
            return cls(
                event_id=wire.to_text(data["event_id"]),
                occurred_at=wire.to_millis(data["occurred_at"]),
                offer_id=wire.to_text(data["offer_id"]),
                answer_event_id=wire.to_text(data["answer_event_id"]),
                guardian_account=str(data["guardian_account"]),
                reason=RejectionReason(data["reason"]),
            )


OfferRecord = Offer | OfferWithdrawal | OfferClosed | Grant
AidOutput = Offer | OfferWithdrawal | OfferClosed | Grant | RejectedAnswer

OUTPUT_TYPES: dict[str, type[AidOutput]] = {
    "Offer": Offer,
    "OfferWithdrawal": OfferWithdrawal,
    "OfferClosed": OfferClosed,
    "Grant": Grant,
    "RejectedAnswer": RejectedAnswer,
}
