"""Second stage of matching: per-student state, offers and grants.

Duties:

- Keep, per student reference, the latest registry entry, guardian links,
  the student's own assistance records, linked guardians' records and every
  offer made (by offer id, one per term and aid kind).
- On any fact about the student, re-assess only this student and bring the
  offers in line: make an offer that is now wanted, update an open offer
  whose data changed (re-addressing it, with a withdrawal first, if another
  guardian now receives it), and withdraw an open offer no longer wanted.
- On a guardian's answer, grant (once per offer), close as declined, close as
  expired when the answer came after the offer expired, or reject the answer
  with a reason.
- ``sweep`` closes open offers that expired with no answer; the worker calls
  it from a timer.

Order of arrival. Every fact is merged by its stamp (later event time wins),
eligibility is judged on each term's reference date, and an offer's time is
taken from the facts it rests on. So once the same facts have arrived, the
open offers, their content and their addressees are the same whatever the
order. Offers that were open for a while and withdrawn again do depend on
the order: a guardian really saw them. Answered, declined and expired offers
are final; a withdrawn offer may be made again under the same id when the
student qualifies again.

Grants are per student reference, term and aid kind: a transfer to another
school or district after a grant changes no grant and makes no second one.

Delivery is at least once. An input that changes nothing (a re-delivery or a
stale version) re-sends the last records of every offer, and an answer seen
before re-sends what it produced, so a crash between saving state and sending
loses nothing. Every record keeps its event id on re-sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edustream.aid import identity
from edustream.aid.eligibility import Eligibility, StudentView, Wanted, assess
from edustream.aid.facts import LinkFact, StatusFact, StudentFact
from edustream.aid.inputs import GuardianAnswer
from edustream.aid.outputs import (
    OUTPUT_TYPES,
    AidOutput,
    Grant,
    Offer,
    OfferClosed,
    OfferRecord,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.policy import Policy
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import (
    Answer,
    Holder,
    OfferStatus,
    Outcome,
    RejectionReason,
    WithdrawalReason,
)

StudentMessage = StudentFact | GuardianAnswer

# Why an answer to an offer that is no longer open changes nothing.
_NOT_OPEN_REASONS = {
    OfferStatus.WITHDRAWN: RejectionReason.OFFER_WITHDRAWN,
    OfferStatus.EXPIRED: RejectionReason.OFFER_EXPIRED,
    OfferStatus.ACCEPTED: RejectionReason.ALREADY_ANSWERED,
    OfferStatus.DECLINED: RejectionReason.ALREADY_ANSWERED,
}


@dataclass(slots=True)
class OfferSlot:
    """One offer id in the student's state: where it stands and what it said.

    ``last`` holds the records of the slot's latest change, re-sent when an
    input turns out to be a repeat. ``answer_event_id`` is the answer that
    settled the slot, if one did.
    """

    status: OfferStatus
    offer: Offer
    guardian_ref: str
    last: list[OfferRecord]
    answer_event_id: str | None = None

    @property
    def offer_id(self) -> str:
        """Return the id of the offer in this slot."""
        return self.offer.offer_id

    def to_dict(self) -> dict[str, Any]:
        """Return the slot as a JSON-ready dict."""
        return {
            "status": self.status.value,
            "offer": self.offer.to_dict(),
            "guardian_ref": self.guardian_ref,
            "last": [_tagged(record) for record in self.last],
            "answer_event_id": self.answer_event_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfferSlot:
        """Rebuild the slot from ``to_dict`` output."""
        return cls(
            status=OfferStatus(data["status"]),
            offer=Offer.from_dict(data["offer"]),
            guardian_ref=data["guardian_ref"],
            last=[_untagged(item) for item in data["last"]],
            answer_event_id=data["answer_event_id"],
        )


@dataclass(slots=True)
class StudentState:
    """What the decider holds for one student reference."""

    student_ref: str
    registry: RegistryRecord | None = None
    links: dict[str, LinkRecord] = field(default_factory=dict)
    own_statuses: dict[str, StatusRecord] = field(default_factory=dict)
    guardian_statuses: dict[str, dict[str, StatusRecord]] = field(default_factory=dict)
    offers: dict[str, OfferSlot] = field(default_factory=dict)

    def granted(self) -> set[tuple[str, str]]:
        """Return the (term, aid kind) pairs already granted to the student."""
        return {
            (slot.offer.term, slot.offer.aid_kind)
            for slot in self.offers.values()
            if slot.status is OfferStatus.ACCEPTED
        }

    def next_expiry(self) -> int | None:
        """Return the earliest expiry of an open offer, for a sweep index."""
        open_expiries = [
            slot.offer.expires_at
            for slot in self.offers.values()
            if slot.status is OfferStatus.OPEN
        ]
        return min(open_expiries, default=None)

    def view(self) -> StudentView:
        """Return the facts eligibility reads, as a read-only view."""
        return StudentView(
            student_ref=self.student_ref,
            registry=self.registry,
            links=self.links,
            own_statuses=self.own_statuses,
            guardian_statuses=self.guardian_statuses,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict for a Faust table."""
        registry = None if self.registry is None else self.registry.to_dict()
        return {
            "student_ref": self.student_ref,
            "registry": registry,
            "links": [link.to_dict() for link in self.links.values()],
            "own_statuses": [s.to_dict() for s in self.own_statuses.values()],
            "guardian_statuses": [
                s.to_dict()
                for statuses in self.guardian_statuses.values()
                for s in statuses.values()
            ],
            "offers": [slot.to_dict() for slot in self.offers.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentState:
        """Rebuild the state from ``to_dict`` output."""
        registry = data["registry"]
        state = cls(
            student_ref=data["student_ref"],
            registry=None if registry is None else RegistryRecord.from_dict(registry),
        )
        for item in data["links"]:
            link = LinkRecord.from_dict(item)
            state.links[link.guardian_ref] = link
        for item in data["own_statuses"]:
            status = StatusRecord.from_dict(item)
            state.own_statuses[status.status_id] = status
        for item in data["guardian_statuses"]:
            status = StatusRecord.from_dict(item)
            held = state.guardian_statuses.setdefault(status.person_ref, {})
            held[status.status_id] = status
        for item in data["offers"]:
            slot = OfferSlot.from_dict(item)
            state.offers[slot.offer_id] = slot
        return state


def student_key(message: StudentMessage) -> str:
    """Return the student reference ``message`` is keyed by in the decider."""
    return message.student_ref


class StudentDecider:
    """Applies student messages to per-student state under one policy.

    The policy is compiled once here; per message the decider only indexes
    dicts, so the cost stays flat however large the policy file grows.
    """

    def __init__(self, policy: Policy) -> None:
        """Precompute the open terms and the offer lifetime."""
        self._plans = policy.open_terms()
        self._open_terms = frozenset(plan.term.id for plan in self._plans)
        self._expiry_millis = policy.offer_expiry_millis

    def decide(self, state: StudentState, message: StudentMessage) -> list[AidOutput]:
        """Fold ``message`` into ``state`` (in place); return what to publish."""
        if isinstance(message, GuardianAnswer):
            return answer(state, message)

        if not _merge(state, message):
            return replay(state)
        return self._reconcile(state, message.occurred_at)

    def sweep(self, state: StudentState, now_millis: int) -> list[OfferClosed]:
        """Close the student's open offers that expired before ``now_millis``."""
        return sweep(state, now_millis)

    def _reconcile(self, state: StudentState, occurred_at: int) -> list[AidOutput]:
        """Bring the student's offers in line with what they qualify for now."""
        if not (state.offers or state.own_statuses or state.guardian_statuses):
            # Most students hold no assistance record: nothing to assess.
            return []

        eligibility = assess(state.view(), self._plans, self._expiry_millis)

        outputs: list[AidOutput] = []
        for wanted in eligibility.offers.values():
            outputs.extend(_make(state, wanted, occurred_at))
        outputs.extend(self._withdraw_unwanted(state, eligibility, occurred_at))
        return outputs

    def _withdraw_unwanted(
        self, state: StudentState, eligibility: Eligibility, occurred_at: int
    ) -> list[AidOutput]:
        """Withdraw open offers of open terms that are no longer wanted."""
        outputs: list[AidOutput] = []
        for slot in state.offers.values():
            if slot.status is not OfferStatus.OPEN:
                continue
            if slot.offer_id in eligibility.offers:
                continue
            if slot.offer.term not in self._open_terms:
                continue

            withdrawal = _withdrawal(slot, eligibility.shortfall, occurred_at)
            slot.status = OfferStatus.WITHDRAWN
            slot.last = [withdrawal]
            outputs.append(withdrawal)
        return outputs


def answer(state: StudentState, message: GuardianAnswer) -> list[AidOutput]:
    """Apply a guardian's answer to its offer; return what to publish.

    Checks run in this order: the offer exists; the answer is a repeat of the
    one that settled it (re-send its records); the offer is still open; the
    answer comes from the addressed account; it came before the expiry. Only
    the addressee can close an open offer by answering late.
    """
    slot = state.offers.get(message.offer_id)
    if slot is None:
        return [_rejection(message, RejectionReason.UNKNOWN_OFFER)]

    if slot.answer_event_id == message.event_id:
        return _repeat_answer(slot, message)

    reason = _NOT_OPEN_REASONS.get(slot.status)
    if reason is None and message.guardian_account != slot.offer.guardian_account:
        reason = RejectionReason.WRONG_GUARDIAN
    if reason is not None:
        return [_rejection(message, reason)]
    return _settle(slot, message)


def sweep(state: StudentState, now_millis: int) -> list[OfferClosed]:
    """Close open offers whose expiry is before ``now_millis``."""
    closed: list[OfferClosed] = []
    for slot in state.offers.values():
        if slot.status is OfferStatus.OPEN and slot.offer.expires_at < now_millis:
            closed.append(_expire(slot))
    return closed


def replay(state: StudentState) -> list[AidOutput]:
    """Return the latest records of every offer, unchanged, for re-sending."""
    return [record for slot in state.offers.values() for record in slot.last]


def _merge(state: StudentState, message: StudentMessage) -> bool:
    """Fold a fact into ``state``; return whether anything changed."""
    if isinstance(message, RegistryRecord):
        return _merge_registry(state, message)
    if isinstance(message, StatusFact):
        return _merge_status(state, message)
    if isinstance(message, LinkFact):
        return _merge_link(state, message)
    return False


def _merge_registry(state: StudentState, record: RegistryRecord) -> bool:
    """Keep the later of the held and the new registry entry."""
    held = state.registry
    if held is not None and record.stamp <= held.stamp:
        return False
    state.registry = record
    return True


def _merge_status(state: StudentState, fact: StatusFact) -> bool:
    """Keep the later version of the student's or a guardian's record."""
    if fact.holder is Holder.STUDENT:
        return _keep_later(state.own_statuses, fact.status)

    statuses = state.guardian_statuses.setdefault(fact.status.person_ref, {})
    return _keep_later(statuses, fact.status)


def _merge_link(state: StudentState, fact: LinkFact) -> bool:
    """Keep the later link version and, while linked, the guardian's records."""
    link = fact.link
    guardian_ref = link.guardian_ref
    held = state.links.get(guardian_ref)

    changed = held is None or link.stamp > held.stamp
    if changed:
        state.links[guardian_ref] = link
    current = state.links[guardian_ref]

    if not current.linked:
        # An unlinked guardian's records cannot count; a re-link brings them
        # again in full, so dropping them keeps the state small.
        dropped = state.guardian_statuses.pop(guardian_ref, None)
        return changed or bool(dropped)

    for status in fact.guardian_statuses:
        statuses = state.guardian_statuses.setdefault(guardian_ref, {})
        changed = _keep_later(statuses, status) or changed
    return changed


def _keep_later(held: dict[str, StatusRecord], status: StatusRecord) -> bool:
    """Store ``status`` unless a later version of it is held."""
    before = held.get(status.status_id)
    if before is not None and status.stamp <= before.stamp:
        return False
    held[status.status_id] = status
    return True


def _make(state: StudentState, wanted: Wanted, occurred_at: int) -> list[AidOutput]:
    """Open, reopen or update the slot for ``wanted``; return the records."""
    offer = wanted.offer
    slot = state.offers.get(offer.offer_id)

    if slot is None or slot.status is OfferStatus.WITHDRAWN:
        state.offers[offer.offer_id] = OfferSlot(
            status=OfferStatus.OPEN,
            offer=offer,
            guardian_ref=wanted.guardian_ref,
            last=[offer],
        )
        return [offer]

    if slot.status is not OfferStatus.OPEN or slot.offer == offer:
        return []

    records: list[OfferRecord] = []
    if slot.guardian_ref != wanted.guardian_ref:
        records.append(_withdrawal(slot, _readdress_reason(state, slot), occurred_at))
    records.append(offer)

    slot.offer = offer
    slot.guardian_ref = wanted.guardian_ref
    slot.last = records
    return list(records)


def _readdress_reason(state: StudentState, slot: OfferSlot) -> WithdrawalReason:
    """Say why an open offer leaves its guardian for another."""
    link = state.links.get(slot.guardian_ref)
    if link is None or not link.linked:
        return WithdrawalReason.GUARDIAN_UNLINKED
    return WithdrawalReason.READDRESSED


def _withdrawal(
    slot: OfferSlot, reason: WithdrawalReason, occurred_at: int
) -> OfferWithdrawal:
    """Return the withdrawal of the offer now in ``slot``.

    Its id follows the withdrawn offer's event id, so one offer version is
    withdrawn at most once, and its time is never before the offer's.
    """
    offer = slot.offer
    return OfferWithdrawal(
        event_id=identity.event_id("withdrawal", offer.event_id),
        occurred_at=max(occurred_at, offer.occurred_at),
        offer_id=offer.offer_id,
        student_ref=offer.student_ref,
        guardian_account=offer.guardian_account,
        reason=reason,
    )


def _settle(slot: OfferSlot, message: GuardianAnswer) -> list[AidOutput]:
    """Grant or close an open offer on its guardian's answer."""
    slot.answer_event_id = message.event_id

    if message.occurred_at > slot.offer.expires_at:
        return [_expire(slot), _rejection(message, RejectionReason.OFFER_EXPIRED)]

    if message.answer is Answer.DECLINE:
        closed = _closed(slot, Outcome.DECLINED, message.occurred_at)
        slot.status = OfferStatus.DECLINED
        slot.last = [closed]
        return [closed]

    grant = _grant(slot.offer, message)
    slot.status = OfferStatus.ACCEPTED
    slot.last = [grant]
    return [grant]


def _repeat_answer(slot: OfferSlot, message: GuardianAnswer) -> list[AidOutput]:
    """Re-send what an answer already produced."""
    outputs: list[AidOutput] = list(slot.last)
    if slot.status is OfferStatus.EXPIRED:
        outputs.append(_rejection(message, RejectionReason.OFFER_EXPIRED))
    return outputs


def _expire(slot: OfferSlot) -> OfferClosed:
    """Close ``slot`` as expired, dated at its expiry whoever noticed."""
    closed = _closed(slot, Outcome.EXPIRED, slot.offer.expires_at)
    slot.status = OfferStatus.EXPIRED
    slot.last = [closed]
    return closed


def _closed(slot: OfferSlot, outcome: Outcome, occurred_at: int) -> OfferClosed:
    """Return the record closing ``slot`` with ``outcome``."""
    offer = slot.offer
    return OfferClosed(
        event_id=identity.event_id("closed", offer.offer_id),
        occurred_at=occurred_at,
        offer_id=offer.offer_id,
        student_ref=offer.student_ref,
        guardian_account=offer.guardian_account,
        outcome=outcome,
    )


def _grant(offer: Offer, message: GuardianAnswer) -> Grant:
    """Return the grant for an accepted ``offer``."""
    grant_id = identity.grant_id(offer.offer_id)
    return Grant(
        event_id=identity.event_id("grant", grant_id),
        occurred_at=message.occurred_at,
        grant_id=grant_id,
        offer_id=offer.offer_id,
        student_ref=offer.student_ref,
        school_id=offer.school_id,
        district_code=offer.district_code,
        aid_kind=offer.aid_kind,
        amount_fen=offer.amount_fen,
        term=offer.term,
        rule_id=offer.rule_id,
        policy_version=offer.policy_version,
        # The answer was checked on decode: an ACCEPT always carries one.
        signature_ref=message.signature_ref or "",
    )


def _rejection(message: GuardianAnswer, reason: RejectionReason) -> RejectedAnswer:
    """Return the rejection of ``message`` for ``reason``."""
    return RejectedAnswer(
        event_id=identity.event_id("rejected", message.event_id, reason.value),
        occurred_at=message.occurred_at,
        offer_id=message.offer_id,
        answer_event_id=message.event_id,
        guardian_account=message.guardian_account,
        reason=reason,
    )


def _tagged(record: OfferRecord) -> dict[str, Any]:
    """Return ``record`` with its type name, for JSON state."""
    return {"type": type(record).__name__, "record": record.to_dict()}


def _untagged(item: dict[str, Any]) -> OfferRecord:
    """Rebuild a record stored by ``_tagged``."""
    record = OUTPUT_TYPES[item["type"]].from_dict(item["record"])
    if isinstance(record, RejectedAnswer):
        raise TypeError("a rejection is never stored in an offer slot")
    return record
