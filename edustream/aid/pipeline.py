"""Both matching stages run in memory, for tests, cross-checks and benchmarks.

Duties:

- ``AidPipeline`` feeds upstream events through intake, the person router and
  the student decider, holding each stage's state in plain dicts keyed as the
  streaming worker keys its tables. Facts the router emits are decided at
  once, which is one of the orders the topics between the stages allow.
- ``run_pipeline`` runs a whole event list and returns every output.
- ``Outputs`` reads the results as consumers would: the latest record per
  offer, grants by id, and the order-independent standing of every offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edustream.aid.decider import (
    StudentDecider,
    StudentMessage,
    StudentState,
    student_key,
)
from edustream.aid.facts import PersonFact
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.intake import Intake
from edustream.aid.outputs import (
    AidOutput,
    Grant,
    Offer,
    OfferClosed,
    OfferRecord,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.policy import Policy
from edustream.aid.router import PersonState, person_key, route

AidInput = RegistryChange | FamilyLink | AssistanceStatus | GuardianAnswer


@dataclass
class Outputs:
    """Every record the pipeline emitted, in emission order."""

    records: list[AidOutput] = field(default_factory=list)

    def latest(self) -> dict[str, OfferRecord]:
        """Return the last record per offer id, as a compacted topic keeps it."""
        latest: dict[str, OfferRecord] = {}
        for record in self.records:
            if not isinstance(record, RejectedAnswer):
                latest[record.offer_id] = record
        return latest

    def standing(self) -> dict[str, OfferRecord]:
        """Return the latest record per offer id, leaving out withdrawn offers.

        This is what no arrival order of the upstream facts can change: an
        offer withdrawn before anyone answered it is as if never made.
        """
        return {
            offer_id: record
            for offer_id, record in self.latest().items()
            if not isinstance(record, OfferWithdrawal)
        }

    def open_offers(self) -> dict[str, Offer]:
        """Return the offers whose latest record is the offer itself."""
        return {
            offer_id: record
            for offer_id, record in self.latest().items()
            if isinstance(record, Offer)
        }

    def grants(self) -> dict[str, Grant]:
        """Return every grant by grant id."""
        return {r.grant_id: r for r in self.records if isinstance(r, Grant)}

    def closures(self) -> dict[str, OfferClosed]:
        """Return every closure by offer id."""
        return {r.offer_id: r for r in self.records if isinstance(r, OfferClosed)}

    def withdrawals(self) -> dict[str, OfferWithdrawal]:
        """Return every withdrawal by event id."""
        return {r.event_id: r for r in self.records if isinstance(r, OfferWithdrawal)}

    def rejections(self) -> dict[str, RejectedAnswer]:
        """Return every rejected answer by event id."""
        return {r.event_id: r for r in self.records if isinstance(r, RejectedAnswer)}

    def distinct(self) -> dict[str, AidOutput]:
        """Return the records by event id, re-emits collapsed."""
        return {record.event_id: record for record in self.records}


class AidPipeline:
    """Intake, router and decider with their state, fed one event at a time."""

    def __init__(self, policy: Policy, key: bytes) -> None:
        """Compile ``policy`` and keep the pseudonym ``key`` for intake."""
        self.intake = Intake(key)
        self.decider = StudentDecider(policy)
        self.persons: dict[str, PersonState] = {}
        self.students: dict[str, StudentState] = {}

    def feed(self, event: AidInput) -> list[AidOutput]:
        """Run ``event`` through every stage; return what it produced."""
        if isinstance(event, RegistryChange):
            return self._decide(self.intake.registry(event))
        if isinstance(event, GuardianAnswer):
            return self._decide(event)
        if isinstance(event, FamilyLink):
            return self._route(self.intake.link(event))
        return self._route(self.intake.status(event))

    def sweep(self, now_millis: int) -> list[AidOutput]:
        """Close every open offer that expired before ``now_millis``."""
        closed: list[AidOutput] = []
        for state in self.students.values():
            closed.extend(self.decider.sweep(state, now_millis))
        return closed

    def _route(self, record: PersonFact) -> list[AidOutput]:
        """Route a person record, then decide each fact it produced."""
        key = person_key(record)
        state = self.persons.get(key)
        if state is None:
            state = self.persons[key] = PersonState()

        outputs: list[AidOutput] = []
        for fact in route(state, record):
            outputs.extend(self._decide(fact))
        return outputs

    def _decide(self, message: StudentMessage) -> list[AidOutput]:
        """Decide ``message`` against its student's state."""
        key = student_key(message)
        state = self.students.get(key)
        if state is None:
            state = self.students[key] = StudentState(student_ref=key)
        return self.decider.decide(state, message)


def run_pipeline(
    events: Iterable[AidInput],
    policy: Policy,
    key: bytes,
    *,
    now_millis: int | None = None,
) -> Outputs:
    """Run ``events`` in order through both stages and return every output.

    With ``now_millis``, a final sweep closes offers expired by then.
    """
    pipeline = AidPipeline(policy, key)
    outputs = Outputs()
    for event in events:
        outputs.records.extend(pipeline.feed(event))

    if now_millis is not None:
        outputs.records.extend(pipeline.sweep(now_millis))
    return outputs
