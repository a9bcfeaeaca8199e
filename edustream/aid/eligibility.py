"""Which offers one student should have now, from the facts held about them.

Duties:

- Judge each open term on its reference date: a student qualifies for an aid
  kind when they are in school at a stage the rule covers (boarding if the
  rule asks), and an assistance record of the student or of a linked
  guardian, accepted by the rule, holds on that date.
- Choose one basis per (term, aid kind) when several qualify, and one
  guardian to address, by fixed orders, so the answer depends only on the
  facts and never on the order they arrived in.
- Date the offer from the facts it rests on (the latest of the registry
  entry, the basis record and the links used), not from the clock or from
  arrival, for the same reason.

The result is what the decider compares against the offers already made.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from edustream.aid import identity
from edustream.aid.outputs import Basis, Offer, content_event_id
from edustream.aid.policy import Rule, TermPlan
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import Category, Holder, WithdrawalReason

_CATEGORY_RANK = {category: rank for rank, category in enumerate(Category)}
_HOLDER_RANK = {Holder.STUDENT: 0, Holder.GUARDIAN: 1}

# A basis sorts by: larger amount first, then the student's own record, then
# category in declaration order, then person and record ids. The first wins.
BasisKey = tuple[int, int, int, str, str]


@dataclass(frozen=True, slots=True)
class StudentView:
    """The facts eligibility reads; the decider's state provides them."""

    student_ref: str
    registry: RegistryRecord | None
    links: Mapping[str, LinkRecord]
    own_statuses: Mapping[str, StatusRecord]
    guardian_statuses: Mapping[str, Mapping[str, StatusRecord]]


@dataclass(frozen=True, slots=True)
class Wanted:
    """An offer the student should have, and the guardian it goes to."""

    offer: Offer
    guardian_ref: str


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Every offer the student should have, keyed by offer id.

    ``shortfall`` says why an open offer missing from ``offers`` is no longer
    wanted, for its withdrawal.
    """

    offers: dict[str, Wanted]
    shortfall: WithdrawalReason


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A rule met by one assistance record, before the best is chosen."""

    key: BasisKey
    rule: Rule
    holder: Holder
    status: StatusRecord
    via: LinkRecord | None


def assess(
    facts: StudentView, plans: tuple[TermPlan, ...], expiry_millis: int
) -> Eligibility:
    """Return the offers ``facts`` entitle the student to in ``plans``."""
    registry = facts.registry
    if registry is None:
        return Eligibility({}, WithdrawalReason.INELIGIBLE)
    if not registry.in_school:
        return Eligibility({}, WithdrawalReason.LEFT_SCHOOL)

    addressee = _addressee(facts.links)
    if addressee is None:
        return Eligibility({}, WithdrawalReason.GUARDIAN_UNLINKED)

    offers: dict[str, Wanted] = {}
    for plan in plans:
        for candidate in _best_per_kind(facts, registry, plan).values():
            offer = _offer(facts.student_ref, registry, plan, candidate, addressee)
            offers[offer.offer_id] = Wanted(
                offer=_expiring(offer, expiry_millis),
                guardian_ref=addressee.guardian_ref,
            )
    return Eligibility(offers, WithdrawalReason.INELIGIBLE)


def _addressee(links: Mapping[str, LinkRecord]) -> LinkRecord | None:
    """Return the linked guardian with the lowest reference, if any."""
    linked = [ref for ref, link in links.items() if link.linked]
    return links[min(linked)] if linked else None


def _best_per_kind(
    facts: StudentView, registry: RegistryRecord, plan: TermPlan
) -> dict[str, _Candidate]:
    """Return, per aid kind, the best basis the student has in ``plan``."""
    day = plan.term.reference_date
    best: dict[str, _Candidate] = {}

    for holder, status, via in _bases(facts):
        if not status.holds_on(day):
            continue
        for rule in plan.rules.matching(registry.stage, status.category):
            if rule.boarding_required and not registry.boarding:
                continue
            if not rule.holder.accepts(holder):
                continue
            candidate = _candidate(rule, holder, status, via)
            held = best.get(rule.aid_kind)
            if held is None or candidate.key < held.key:
                best[rule.aid_kind] = candidate
    return best


def _bases(
    facts: StudentView,
) -> Iterator[tuple[Holder, StatusRecord, LinkRecord | None]]:
    """Yield the student's own records and those of linked guardians."""
    for status in facts.own_statuses.values():
        yield Holder.STUDENT, status, None

    for guardian_ref, statuses in facts.guardian_statuses.items():
        link = facts.links.get(guardian_ref)
        if link is None or not link.linked:
            continue
        for status in statuses.values():
            yield Holder.GUARDIAN, status, link


def _candidate(
    rule: Rule, holder: Holder, status: StatusRecord, via: LinkRecord | None
) -> _Candidate:
    """Return ``rule`` met by ``status`` with the key that ranks it."""
    key = (
        -rule.amount_fen,
        _HOLDER_RANK[holder],
        _CATEGORY_RANK[status.category],
        status.person_ref,
        status.status_id,
    )
    return _Candidate(key=key, rule=rule, holder=holder, status=status, via=via)


def _offer(
    student_ref: str,
    registry: RegistryRecord,
    plan: TermPlan,
    candidate: _Candidate,
    addressee: LinkRecord,
) -> Offer:
    """Return the offer ``candidate`` makes, without its expiry yet."""
    rule = candidate.rule
    status = candidate.status

    # Known shortcoming: a newer registry entry with unchanged content (a
    # refresh that re-sends entries stamped with the refresh time) still
    # re-dates open offers, restarting their answer window and re-sending
    # them. Telling when the content last changed, whatever the arrival
    # order, needs every version of the entry kept per student; until then
    # upstream refreshes should keep each entry's original occurred_at.
    offered_at = max(registry.occurred_at, status.occurred_at, addressee.occurred_at)
    if candidate.via is not None:
        offered_at = max(offered_at, candidate.via.occurred_at)

    return Offer(
        event_id="",
        occurred_at=offered_at,
        offer_id=identity.offer_id(student_ref, plan.term.id, rule.aid_kind),
        student_ref=student_ref,
        guardian_account=addressee.guardian_account,
        child_name=registry.masked_name,
        school_id=registry.school_id,
        school_name=registry.school_name,
        district_code=registry.district_code,
        stage=registry.stage,
        grade=registry.grade,
        aid_kind=rule.aid_kind,
        amount_fen=rule.amount_fen,
        term=plan.term.id,
        rule_id=rule.id,
        policy_version=rule.version,
        basis=Basis(
            category=status.category,
            holder=candidate.holder,
            valid_from=status.valid_from,
            valid_to=status.valid_to,
        ),
        expires_at=0,
    )


def _expiring(offer: Offer, expiry_millis: int) -> Offer:
    """Return ``offer`` with its expiry and content-derived event id set."""
    dated = replace(offer, expires_at=offer.occurred_at + expiry_millis)
    return replace(dated, event_id=content_event_id(dated))
