"""Aid output records for read-model tests, built from the core's types."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from avro_schemas import default_codec
from consumers.base import Delivered
from edustream.aid import identity
from edustream.aid.outputs import (
    Basis,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
)
from edustream.aid.vocabulary import (
    Category,
    Holder,
    Outcome,
    Stage,
    WithdrawalReason,
)
from topics import aid

T0 = 1_788_220_800_000
Record = Offer | OfferWithdrawal | OfferClosed | Grant


def offer(
    version: int = 1,
    *,
    student: str = "stu_a",
    school: str = "SCH1",
    district: str = "310104",
    account: str = "portal-1",
    kind: str = "BOARDING_SUBSIDY",
    amount: int = 50_000,
) -> Offer:
    """Version ``version`` of the student's offer of ``kind``."""
    return Offer(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{student}:{kind}:{version}")),
        occurred_at=T0 + version,
        offer_id=identity.offer_id(student, "2026-autumn", kind),
        student_ref=student,
        guardian_account=account,
        child_name="王*明",
        school_id=school,
        school_name=f"{school} school",
        district_code=district,
        stage=Stage.PRIMARY,
        grade=3,
        aid_kind=kind,
        amount_fen=amount,
        term="2026-autumn",
        rule_id="boarding-primary",
        policy_version="2026.2",
        basis=Basis(Category.MINIMUM_LIVING, Holder.GUARDIAN, date(2026, 1, 1), None),
        expires_at=T0 + version + 30 * 86_400_000,
    )


def withdrawal(of: Offer) -> OfferWithdrawal:
    """The withdrawal of exactly this offer version."""
    return OfferWithdrawal(
        event_id=identity.event_id("withdrawal", of.event_id),
        occurred_at=of.occurred_at + 1,
        offer_id=of.offer_id,
        student_ref=of.student_ref,
        guardian_account=of.guardian_account,
        reason=WithdrawalReason.INELIGIBLE,
    )


def closure(of: Offer, outcome: Outcome) -> OfferClosed:
    """The offer closed as declined or expired."""
    return OfferClosed(
        event_id=identity.event_id("closed", of.offer_id),
        occurred_at=of.occurred_at + 2,
        offer_id=of.offer_id,
        student_ref=of.student_ref,
        guardian_account=of.guardian_account,
        outcome=outcome,
    )


def grant(of: Offer) -> Grant:
    """The grant for the accepted offer."""
    grant_id = identity.grant_id(of.offer_id)
    return Grant(
        event_id=identity.event_id("grant", grant_id),
        occurred_at=of.occurred_at + 3,
        grant_id=grant_id,
        offer_id=of.offer_id,
        student_ref=of.student_ref,
        school_id=of.school_id,
        district_code=of.district_code,
        aid_kind=of.aid_kind,
        amount_fen=of.amount_fen,
        term=of.term,
        rule_id=of.rule_id,
        policy_version=of.policy_version,
        signature_ref="esign-1",
    )


V1 = offer(1)
V2 = offer(2)


TOPIC_AND_SCHEMA: dict[type[Any], tuple[str, str]] = {
    Offer: (aid.OFFERS.name, "edustream.aid.Offer"),
    OfferWithdrawal: (aid.WITHDRAWALS.name, "edustream.aid.OfferWithdrawal"),
    OfferClosed: (aid.CLOSURES.name, "edustream.aid.OfferClosed"),
    Grant: (aid.GRANTS.name, "edustream.aid.Grant"),
}


def delivered(record: Record, offset: int = 0) -> Delivered:
    """The record as the subscriber loop hands it over, decoded by the codec."""
    topic, schema = TOPIC_AND_SCHEMA[type(record)]
    codec = default_codec()
    found, decoded = codec.decode(codec.encode(schema, record.to_dict()))
    return Delivered(topic, 0, offset, record.student_ref.encode(), found, decoded)
