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
class Basis(wire.WireRecord):
    """The assistance record an offer rests on, as shown to the guardian."""

    category: Category
    holder: Holder
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class Offer(wire.WireRecord):
    """Aid offered to a guardian for one student, term and aid kind."""

    event_id: str
    occurred_at: wire.Millis
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
    expires_at: wire.Millis

    @property
    def offered_at(self) -> int:
        """Return when the offer was made (its event time), in epoch millis."""
        return self.occurred_at


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
class OfferWithdrawal(wire.WireRecord):
    """An open offer taken back from its guardian."""

    event_id: str
    occurred_at: wire.Millis
    offer_id: str
    student_ref: str
    guardian_account: str
    reason: WithdrawalReason


@dataclass(frozen=True, slots=True)
class OfferClosed(wire.WireRecord):
    """An offer that ended without a grant."""

    event_id: str
    occurred_at: wire.Millis
    offer_id: str
    student_ref: str
    guardian_account: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Grant(wire.WireRecord):
    """An accepted offer, ready for disbursement."""

    event_id: str
    occurred_at: wire.Millis
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


@dataclass(frozen=True, slots=True)
class RejectedAnswer(wire.WireRecord):
    """A guardian's answer that changed nothing, for feedback in the portal."""

    event_id: str
    occurred_at: wire.Millis
    offer_id: str
    answer_event_id: str
    guardian_account: str
    reason: RejectionReason


OfferRecord = Offer | OfferWithdrawal | OfferClosed | Grant
AidOutput = Offer | OfferWithdrawal | OfferClosed | Grant | RejectedAnswer

OUTPUT_TYPES: dict[str, type[AidOutput]] = {
    "Offer": Offer,
    "OfferWithdrawal": OfferWithdrawal,
    "OfferClosed": OfferClosed,
    "Grant": Grant,
    "RejectedAnswer": RejectedAnswer,
}
