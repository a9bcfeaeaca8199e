"""The student decider: offers, updates, withdrawals, answers and expiry.

Each test tells a short story through both stages (``AidPipeline``) and checks
the records that come out, value by value.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from aid_factories import Events

from edustream.aid.decider import StudentState
from edustream.aid.outputs import (
    AidOutput,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.pipeline import AidPipeline
from edustream.aid.policy import Policy
from edustream.aid.vocabulary import (
    Answer,
    Category,
    Change,
    Holder,
    Outcome,
    RejectionReason,
    Stage,
    WithdrawalReason,
)
from edustream.ids import find_ids
from edustream.pseudonym import pseudonymise


@pytest.fixture
def flow(policy: Policy, events: Events) -> AidPipeline:
    """Both stages under the shipped policy, with empty state."""
    return AidPipeline(policy, events.KEY)


def offers_in(outputs: list[AidOutput]) -> list[Offer]:
    """Return the offers among ``outputs``."""
    return [o for o in outputs if isinstance(o, Offer)]


def only_offer(outputs: list[AidOutput]) -> Offer:
    """Return the single record of ``outputs``, which must be an offer."""
    assert len(outputs) == 1, outputs
    (offer,) = offers_in(outputs)
    return offer


def reasons(outputs: list[AidOutput]) -> list[str]:
    """Return the reasons of the withdrawals and rejections among ``outputs``."""
    return [
        o.reason for o in outputs if isinstance(o, OfferWithdrawal | RejectedAnswer)
    ]


def eligible(flow: AidPipeline, events: Events, **registry: Any) -> Offer:
    """Enrol a boarding pupil on the allowance with a linked mother; the offer."""
    student, mother = events.student(1), events.person(1)
    flow.feed(events.registry(student, at=1, **registry))
    flow.feed(events.status(student, at=2))
    return only_offer(flow.feed(events.link(mother, student, at=3)))


def test_offer_carries_amount_rule_basis_and_dates(
    flow: AidPipeline, events: Events
) -> None:
    """An eligible pupil's guardian gets an offer that says what, why and until when."""
    offer = eligible(flow, events, name="张三明", school="SCH-7", district="310115")

    student, mother = events.student(1), events.person(1)
    assert offer.student_ref == pseudonymise(events.KEY, student)
    assert offer.guardian_account == events.account(mother)
    assert offer.child_name == "张*明"
    assert (offer.school_id, offer.district_code) == ("SCH-7", "310115")
    assert (offer.stage, offer.grade) == (Stage.PRIMARY, 3)
    assert (offer.aid_kind, offer.amount_fen, offer.term) == (
        "BOARDING_SUBSIDY",
        50000,
        "2026-autumn",
    )
    assert (offer.rule_id, offer.policy_version) == ("boarding-primary", "2026.2")
    assert offer.basis.category is Category.MINIMUM_LIVING
    assert offer.basis.holder is Holder.STUDENT
    assert (offer.basis.valid_from, offer.basis.valid_to) == (date(2026, 1, 1), None)
    assert offer.offered_at == events.at(3)
    assert offer.expires_at == events.at(3) + 30 * events.DAY


def test_offer_names_no_one(flow: AidPipeline, events: Events) -> None:
    """No output field holds an ID number or the child's full name."""
    offer = eligible(flow, events, name="张三明")

    text = json.dumps(offer.to_dict(), ensure_ascii=False)
    assert find_ids(text) == []
    assert "张三明" not in text
    assert events.student(1) not in text


def test_offered_at_comes_from_the_facts_not_arrival(
    flow: AidPipeline, events: Events
) -> None:
    """An offer is dated by its latest fact, even when that fact came first."""
    student, mother = events.student(1), events.person(1)
    flow.feed(events.status(student, at=50))
    flow.feed(events.link(mother, student, at=10))

    offer = only_offer(flow.feed(events.registry(student, at=5)))

    assert offer.offered_at == events.at(50)


def test_no_offer_without_a_guardian(flow: AidPipeline, events: Events) -> None:
    """Nothing is offered until a guardian is linked; the student gets nothing."""
    student = events.student(1)

    assert flow.feed(events.registry(student, at=1)) == []
    assert flow.feed(events.status(student, at=2)) == []


def test_guardians_status_counts(flow: AidPipeline, events: Events) -> None:
    """A linked guardian's record makes the student eligible, as GUARDIAN."""
    student, father = events.student(1), events.person(2)
    flow.feed(events.registry(student, at=1, stage=Stage.SENIOR, boarding=False))
    flow.feed(events.status(father, at=2, category=Category.LOW_INCOME))

    offer = only_offer(flow.feed(events.link(father, student, at=3)))

    assert (offer.aid_kind, offer.amount_fen) == ("NATIONAL_GRANT", 115000)
    assert offer.basis.holder is Holder.GUARDIAN
    assert offer.basis.category is Category.LOW_INCOME


def test_priority_group_gets_grant_and_fee_waiver(
    flow: AidPipeline, events: Events
) -> None:
    """A senior on the allowance is offered both the grant and the fee waiver."""
    student, mother = events.student(1), events.person(1)
    flow.feed(events.registry(student, at=1, stage=Stage.SENIOR))
    flow.feed(events.link(mother, student, at=2))

    offers = offers_in(flow.feed(events.status(mother, at=3)))

    assert {(o.aid_kind, o.amount_fen) for o in offers} == {
        ("NATIONAL_GRANT", 115000),
        ("FEE_WAIVER", 90000),
    }
    assert len({o.offer_id for o in offers}) == 2


def test_highest_tier_wins_among_several_bases(
    flow: AidPipeline, events: Events
) -> None:
    """With several qualifying records, the offer rests on the largest amount."""
    student, mother = events.student(1), events.person(1)
    flow.feed(events.registry(student, at=1, stage=Stage.UNDERGRADUATE))
    flow.feed(events.link(mother, student, at=2))
    flow.feed(events.status(student, at=3, category=Category.LOW_INCOME, status_id="A"))

    outputs = flow.feed(
        events.status(mother, at=4, category=Category.EXTREME_POVERTY, status_id="B")
    )

    offer = only_offer(outputs)
    assert (offer.amount_fen, offer.basis.category, offer.basis.holder) == (
        250000,
        Category.EXTREME_POVERTY,
        Holder.GUARDIAN,
    )


@pytest.mark.parametrize(
    ("registry", "status"),
    [
        ({"boarding": False}, {}),
        ({}, {"valid_to": date(2026, 8, 31)}),
        ({}, {"valid_from": date(2026, 9, 2)}),
        ({}, {"granted": False}),
        ({"stage": Stage.SENIOR}, {"category": Category.LOW_INCOME, "granted": False}),
    ],
    ids=["day-pupil", "ended-before-term", "starts-after-term", "revoked", "senior"],
)
def test_no_offer_when_a_condition_fails(
    flow: AidPipeline,
    events: Events,
    registry: dict[str, Any],
    status: dict[str, Any],
) -> None:
    """Boarding, validity on the reference date and a granted record all count."""
    student, mother = events.student(1), events.person(1)
    flow.feed(events.registry(student, at=1, **registry))
    flow.feed(events.link(mother, student, at=2))

    assert flow.feed(events.status(student, at=3, **status)) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (Change.GRADUATE, WithdrawalReason.LEFT_SCHOOL),
        (Change.WITHDRAW, WithdrawalReason.LEFT_SCHOOL),
    ],
)
def test_leaving_school_withdraws_the_offer(
    flow: AidPipeline, events: Events, change: Change, reason: WithdrawalReason
) -> None:
    """Graduating or withdrawing ends eligibility and withdraws an open offer."""
    offer = eligible(flow, events)

    outputs = flow.feed(events.registry(events.student(1), at=9, change=change))

    assert outputs == [
        OfferWithdrawal(
            event_id=outputs[0].event_id,
            occurred_at=events.at(9),
            offer_id=offer.offer_id,
            student_ref=offer.student_ref,
            guardian_account=offer.guardian_account,
            reason=reason,
        )
    ]


def test_revocation_withdraws_and_regrant_reopens(
    flow: AidPipeline, events: Events
) -> None:
    """A revoked record withdraws the offer; a new grant reopens the same offer id."""
    offer = eligible(flow, events)
    student = events.student(1)

    withdrawn = flow.feed(events.status(student, at=9, granted=False))
    reopened = only_offer(flow.feed(events.status(student, at=12, status_id="MZ-2")))

    assert [type(o) for o in withdrawn] == [OfferWithdrawal]
    assert reasons(withdrawn) == [WithdrawalReason.INELIGIBLE]
    assert reopened.offer_id == offer.offer_id
    assert reopened.offered_at == events.at(12)
    assert reopened.event_id != offer.event_id


def test_unlinking_the_only_guardian_withdraws(
    flow: AidPipeline, events: Events
) -> None:
    """With no linked guardian left, the open offer is withdrawn."""
    offer = eligible(flow, events)

    outputs = flow.feed(
        events.link(events.person(1), events.student(1), at=9, linked=False)
    )

    assert [o.offer_id for o in outputs] == [offer.offer_id]
    assert reasons(outputs) == [WithdrawalReason.GUARDIAN_UNLINKED]


def test_unlinking_the_addressee_moves_the_offer(
    flow: AidPipeline, events: Events
) -> None:
    """The offer leaves an unlinked guardian for the other linked one."""
    student, mother, father = events.student(1), events.person(1), events.person(2)
    flow.feed(events.registry(student, at=1))
    flow.feed(events.status(student, at=2))
    flow.feed(events.link(mother, student, at=3))
    flow.feed(events.link(father, student, at=4))
    state = flow.students[pseudonymise(events.KEY, student)]
    (slot,) = state.offers.values()
    addressee = slot.offer.guardian_account
    other = ({events.account(mother), events.account(father)} - {addressee}).pop()
    leaving = mother if addressee == events.account(mother) else father

    outputs = flow.feed(events.link(leaving, student, at=9, linked=False))

    withdrawal, offer = outputs
    assert isinstance(withdrawal, OfferWithdrawal)
    assert isinstance(offer, Offer)
    assert (withdrawal.guardian_account, withdrawal.reason) == (
        addressee,
        WithdrawalReason.GUARDIAN_UNLINKED,
    )
    assert (offer.offer_id, offer.guardian_account) == (slot.offer_id, other)


def test_offer_goes_to_the_lowest_guardian_reference(
    flow: AidPipeline, events: Events
) -> None:
    """A newly linked guardian with a lower reference takes the offer over.

    The addressee is a function of the links alone, so every arrival order
    ends with the same guardian holding the offer.
    """
    offer = eligible(flow, events)
    student = events.student(1)
    first_ref = pseudonymise(events.KEY, events.person(1), "psn")
    later = next(
        events.person(n)
        for n in range(2, 50)
        if pseudonymise(events.KEY, events.person(n), "psn") < first_ref
    )

    outputs = flow.feed(events.link(later, student, at=9))

    withdrawal, moved = outputs
    assert isinstance(withdrawal, OfferWithdrawal)
    assert isinstance(moved, Offer)
    assert withdrawal.reason is WithdrawalReason.READDRESSED
    assert withdrawal.guardian_account == offer.guardian_account
    assert (moved.offer_id, moved.guardian_account) == (
        offer.offer_id,
        events.account(later),
    )
    assert moved.offered_at == events.at(9)


def test_transfer_while_open_updates_the_offer(
    flow: AidPipeline, events: Events
) -> None:
    """A transfer before the answer re-sends the offer with the new school."""
    offer = eligible(flow, events)

    updated = only_offer(
        flow.feed(
            events.registry(
                events.student(1), at=9, change=Change.TRANSFER, school="SCH-2"
            )
        )
    )

    assert updated.offer_id == offer.offer_id
    assert (updated.school_id, updated.offered_at) == ("SCH-2", events.at(9))


def test_accept_grants_once(flow: AidPipeline, events: Events) -> None:
    """An accepted offer becomes exactly one grant with the offer's data."""
    offer = eligible(flow, events)
    accept = events.answer(offer, at=24)

    granted = flow.feed(accept)
    repeated = flow.feed(accept)
    again = flow.feed(events.answer(offer, at=25))

    (grant,) = granted
    assert isinstance(grant, Grant)
    assert (grant.offer_id, grant.student_ref, grant.amount_fen) == (
        offer.offer_id,
        offer.student_ref,
        50000,
    )
    assert (grant.school_id, grant.district_code, grant.term) == (
        offer.school_id,
        offer.district_code,
        "2026-autumn",
    )
    assert grant.signature_ref == "esign-0001"
    assert grant.occurred_at == accept.occurred_at
    assert repeated == granted
    assert reasons(again) == [RejectionReason.ALREADY_ANSWERED]


def test_decline_closes_the_offer(flow: AidPipeline, events: Events) -> None:
    """A decline closes the offer; a later acceptance is already answered."""
    offer = eligible(flow, events)

    closed = flow.feed(events.answer(offer, at=24, answer=Answer.DECLINE))
    late_accept = flow.feed(events.answer(offer, at=30))

    assert closed == [
        OfferClosed(
            event_id=closed[0].event_id,
            occurred_at=offer.occurred_at + 24 * events.HOUR,
            offer_id=offer.offer_id,
            student_ref=offer.student_ref,
            guardian_account=offer.guardian_account,
            outcome=Outcome.DECLINED,
        )
    ]
    assert reasons(late_accept) == [RejectionReason.ALREADY_ANSWERED]


def test_answer_after_expiry_closes_the_offer(
    flow: AidPipeline, events: Events
) -> None:
    """An answer later than the expiry is rejected and the offer closed, at expiry."""
    offer = eligible(flow, events)
    late = events.answer(offer, at=30 * 24 + 1)

    outputs = flow.feed(late)

    closed, rejected = outputs
    assert isinstance(closed, OfferClosed)
    assert (closed.outcome, closed.occurred_at) == (Outcome.EXPIRED, offer.expires_at)
    assert isinstance(rejected, RejectedAnswer)
    assert (rejected.reason, rejected.answer_event_id) == (
        RejectionReason.OFFER_EXPIRED,
        late.event_id,
    )
    assert flow.feed(late) == outputs


def test_answer_at_the_expiry_instant_counts(flow: AidPipeline, events: Events) -> None:
    """The expiry instant itself is still within the answer window."""
    offer = eligible(flow, events)

    (grant,) = flow.feed(events.answer(offer, at=30 * 24))

    assert isinstance(grant, Grant)


def test_wrong_guardian_is_rejected_and_offer_stays_open(
    flow: AidPipeline, events: Events
) -> None:
    """Another account's answer changes nothing; the addressee can still accept."""
    offer = eligible(flow, events)

    rejected = flow.feed(events.answer(offer, at=1, account="acct-stranger"))
    accepted = flow.feed(events.answer(offer, at=2))

    assert reasons(rejected) == [RejectionReason.WRONG_GUARDIAN]
    assert [o.guardian_account for o in rejected] == ["acct-stranger"]
    assert [type(o) for o in accepted] == [Grant]


def test_unknown_and_withdrawn_offers_are_rejected(
    flow: AidPipeline, events: Events
) -> None:
    """An answer to no offer, or to a withdrawn one, says so."""
    offer = eligible(flow, events)
    student = events.student(1)
    stray = replace(events.answer(offer, at=1), offer_id="not-an-offer")
    flow.feed(events.registry(student, at=9, change=Change.GRADUATE))

    unknown = flow.feed(stray)
    withdrawn = flow.feed(events.answer(offer, at=10))

    assert reasons(unknown) == [RejectionReason.UNKNOWN_OFFER]
    assert reasons(withdrawn) == [RejectionReason.OFFER_WITHDRAWN]


def test_transfer_after_grant_makes_no_second_grant(
    flow: AidPipeline, events: Events
) -> None:
    """A grant is per student, term and kind: a move elsewhere changes nothing."""
    offer = eligible(flow, events)
    student = events.student(1)
    accept = events.answer(offer, at=24)
    (grant,) = flow.feed(accept)

    moved = flow.feed(
        events.registry(
            student, at=48, change=Change.TRANSFER, school="SCH-9", district="310151"
        )
    )
    new_record = flow.feed(events.status(student, at=49, status_id="MZ-2"))
    repeat = flow.feed(accept)

    assert moved == []
    assert new_record == []
    assert repeat == [grant]
    state = flow.students[offer.student_ref]
    assert state.granted() == {("2026-autumn", "BOARDING_SUBSIDY")}


def test_sweep_closes_expired_offers_only(flow: AidPipeline, events: Events) -> None:
    """The timer closes offers past expiry, once, and they never reopen."""
    offer = eligible(flow, events)

    early = flow.sweep(offer.expires_at)
    closed = flow.sweep(offer.expires_at + 1)
    again = flow.sweep(offer.expires_at + 2)
    refreshed = flow.feed(events.status(events.student(1), at=900, status_id="MZ-2"))

    assert early == []
    assert [(o.offer_id, o.outcome) for o in closed if isinstance(o, OfferClosed)] == [
        (offer.offer_id, Outcome.EXPIRED)
    ]
    assert again == []
    assert offers_in(refreshed) == []


def test_stale_input_resends_the_current_records(
    flow: AidPipeline, events: Events
) -> None:
    """A repeat or an older version re-sends each offer's latest records."""
    student, mother = events.student(1), events.person(1)
    enrol = events.registry(student, at=1)
    flow.feed(enrol)
    flow.feed(events.status(student, at=2))
    offer = only_offer(flow.feed(events.link(mother, student, at=3)))

    assert flow.feed(enrol) == [offer]


def test_student_state_round_trips_through_json(
    flow: AidPipeline, events: Events
) -> None:
    """Decider state survives JSON and keeps deciding the same way."""
    offer = eligible(flow, events)
    father = events.person(2)
    flow.feed(events.status(father, at=4, category=Category.DISABILITY))
    flow.feed(events.link(father, events.student(1), at=5))
    state = flow.students[offer.student_ref]

    (slot,) = state.offers.values()

    restored = StudentState.from_dict(json.loads(json.dumps(state.to_dict())))
    answer = events.answer(slot.offer, at=6)

    assert restored == state
    assert restored.next_expiry() == slot.offer.expires_at
    assert flow.decider.decide(restored, answer) == flow.decider.decide(state, answer)
    assert restored.next_expiry() is None
