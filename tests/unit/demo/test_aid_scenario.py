"""The aid demo's expected outputs agree with the flow's own core.

The scenario counts what must come out from its stories alone. Here the same
records are played phase by phase through the in-memory pipeline (intake,
router, decider, a sweep at the end of each phase), and each output is
counted with the scenario's own kinds, as the demo counts the topics.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from avro_schemas import default_codec
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.outputs import (
    AidOutput,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.pipeline import AidInput, AidPipeline
from edustream.aid.policy import load_default_policy
from edustream.demo.aid import Fate, scenario
from edustream.demo.scenario import Publication, Scenario
from edustream.errors import PoisonError
from edustream.ids import find_ids
from edustream.settings import get_settings
from topics import aid
from topics.spec import TopicSpec

TODAY = date(2026, 9, 15)
DECODERS: dict[str, Callable[[dict[str, Any]], AidInput]] = {
    aid.REGISTRY_CHANGES.name: RegistryChange.from_dict,
    aid.FAMILY_LINKS.name: FamilyLink.from_dict,
    aid.ASSISTANCE_STATUS.name: AssistanceStatus.from_dict,
    aid.GUARDIAN_ANSWERS.name: GuardianAnswer.from_dict,
}
TOPIC_OF: dict[type[AidOutput], TopicSpec] = {
    Offer: aid.OFFERS,
    OfferWithdrawal: aid.WITHDRAWALS,
    OfferClosed: aid.CLOSURES,
    Grant: aid.GRANTS,
}


class Counted:
    """Distinct ids per kind, found with the scenario's own kind rules."""

    def __init__(self, demo: Scenario) -> None:
        self.kinds = demo.kinds
        self.ids: dict[str, set[str]] = defaultdict(set)

    def output(self, output: AidOutput, at: str) -> None:
        """Count one decider output as it would appear on its topic."""
        if isinstance(output, RejectedAnswer):
            self.dead_letter(aid.GUARDIAN_ANSWERS, f"{at}:{output.event_id}")
            return
        self.record(TOPIC_OF[type(output)], output.to_dict())

    def dead_letter(self, source: TopicSpec, event_id: str) -> None:
        """Count one dead letter of an input read from ``source``."""
        self.ids["aid.dead_letters"].add(event_id)
        self.record(
            aid.DEAD_LETTERS, {"event_id": event_id, "source_topic": source.name}
        )

    def record(self, spec: TopicSpec, record: dict[str, Any]) -> None:
        for kind in self.kinds:
            if kind.topic is spec and kind.where(record):
                self.ids[kind.name].add(kind.id_of(record))

    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.ids.items()}


def play(demo: Scenario) -> dict[str, int]:
    """Run every phase through the pipeline; return the count of each kind."""
    pipeline = AidPipeline(load_default_policy(), get_settings().pseudonym_key.encode())
    counted = Counted(demo)
    now = time.time_ns() // 1_000_000

    for phase in demo.phases:
        for index, publication in enumerate(phase.publications):
            at = f"{phase.name}:{index}"
            try:
                outputs = pipeline.feed(decode(publication))
            except PoisonError:
                counted.dead_letter(publication.spec, at)
                continue
            for output in outputs:
                counted.output(output, at)
        for output in pipeline.sweep(now):
            counted.output(output, "sweep")
    return counted.counts()


def decode(publication: Publication) -> AidInput:
    """Decode a publication as the flow does, the answers' key check included."""
    schema = publication.spec.schema
    assert schema is not None
    record = default_codec().decode_as(schema, publication.value)
    event: AidInput = DECODERS[publication.spec.name](record)
    if (
        isinstance(event, GuardianAnswer)
        and publication.key != event.student_ref.encode()
    ):
        raise PoisonError("key_mismatch")
    return event


@pytest.fixture(scope="module")
def demo() -> Scenario:
    """The default-size aid scenario."""
    return scenario(get_settings(), 20260901, 1.0, TODAY)


def test_expected_counts_match_the_core_pipeline(demo: Scenario) -> None:
    """Every kind the scenario expects is exactly what the pipeline produces."""
    observed = play(demo)

    assert {kind: observed.get(kind, 0) for kind in demo.expected} == demo.expected


def test_default_size_and_every_story(demo: Scenario) -> None:
    """About 2,000 students, at most 8,000 input events, every story told."""
    inputs = sum(len(phase.publications) for phase in demo.phases)

    assert 4_000 < inputs <= 8_000
    assert [phase.name for phase in demo.phases] == [
        "aid facts",
        "aid answers",
        "aid afterwards",
    ]
    assert all(demo.facts["families"][fate.value] > 0 for fate in Fate)
    assert demo.expected["aid.offers"] > 200
    assert demo.expected["aid.grants"] > demo.expected["aid.students_aided"] > 50
    assert (
        demo.expected["aid.dead_letters"] == demo.expected["aid.rejected_answers"] + 4
    )


def test_secrets_cover_every_id_number_published(demo: Scenario) -> None:
    """Every valid ID number on an upstream topic is a listed secret."""
    published = {
        found
        for phase in demo.phases
        for publication in phase.publications
        if publication.spec.personal_data
        for found in find_ids(publication.value.decode("utf-8", "replace"))
    }

    assert len(published) > 4_000
    assert published <= demo.secrets
    assert "*" not in demo.secrets


def test_people_are_apart_from_the_shared_city(demo: Scenario) -> None:
    """Every ID number is born on the 29th or 30th, which build_city never draws."""
    ids = {secret for secret in demo.secrets if find_ids(secret) == [secret]}

    assert ids
    assert {number[12:14] for number in ids} <= {"29", "30"}


@pytest.mark.parametrize(("seed", "scale"), [(7, 0.1), (11, 0.5)])
def test_other_sizes_agree_with_the_pipeline_too(seed: int, scale: float) -> None:
    """Smaller cities still tell every story, and their counts still agree."""
    small = scenario(get_settings(), seed, scale, TODAY)

    assert all(small.facts["families"][fate.value] > 0 for fate in Fate)
    assert {k: play(small).get(k, 0) for k in small.expected} == small.expected
