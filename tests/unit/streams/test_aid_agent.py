"""The aid flow's agents and steps, without a broker.

The decider agent is driven through Faust's ``test_context``; the steps are
also called directly with inputs from each source topic. Sends, dead
letters and changelog writes are captured instead of produced, and every
test uses students of its own, since the tables live as long as the app.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from unittest import mock

import pytest

from avro_schemas import default_codec
from edustream.aid.facts import (
    LinkFact,
    PersonFact,
    person_fact_to_dict,
    student_fact_to_dict,
)
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.intake import Intake
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import Answer, Category, Change, Relation, Stage
from edustream.errors import PoisonError
from edustream.ids import make_id
from edustream.settings import get_settings
from streams import aid as flow
from streams.runtime import Input
from topics import aid

HOUR = 3_600_000
DAY = 24 * HOUR
codec = default_codec()
_random = random.SystemRandom()


@dataclass
class Sent:
    """What the steps sent, dead-lettered and wrote to changelogs."""

    records: list[tuple[str, bytes | None, bytes, int | None]] = field(
        default_factory=list
    )
    dead: list[tuple[str, str]] = field(default_factory=list)
    changelog: list[tuple[str, int | None, bytes]] = field(default_factory=list)

    def on(self, spec: Any) -> list[dict[str, Any]]:
        """Decoded records sent to ``spec``."""
        return [codec.decode(v)[1] for t, _, v, _ in self.records if t == spec.name]

    def keys(self, spec: Any) -> list[bytes | None]:
        """Keys of the records sent to ``spec``."""
        return [k for t, k, _, _ in self.records if t == spec.name]


@pytest.fixture
def sent() -> Iterator[Sent]:
    """Capture sends, dead letters and changelog writes of the aid flow."""
    captured = Sent()

    async def send_raw(
        spec: Any, key: bytes | None, value: bytes, *, partition: int | None = None
    ) -> asyncio.Future[None]:
        captured.records.append((spec.name, key, value, partition))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def dead_letter(_flow: str, _item: Input, reason: str, message: str) -> None:
        captured.dead.append((reason, message))

    def changelog(name: str) -> Any:
        def write(
            partition: int | None, key: bytes, *_: Any, **__: Any
        ) -> asyncio.Future[None]:
            captured.changelog.append((name, partition, key))
            stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            stored.set_result(None)
            return stored

        return write

    with (
        mock.patch.object(flow, "_send_raw", send_raw),
        mock.patch.object(flow, "dead_letter", dead_letter),
        mock.patch.object(flow.students, "send_changelog", changelog("students")),
        mock.patch.object(flow.persons, "send_changelog", changelog("persons")),
        mock.patch.object(flow.expiry_index, "send_changelog", changelog("expiry")),
    ):
        yield captured


@dataclass
class Family:
    """A student and guardian with fresh ID numbers, in pseudonymous form."""

    since: int = field(default_factory=lambda: flow.now_millis() - 2 * HOUR)
    student_id: str = field(
        default_factory=lambda: make_id(
            "310115", date(2015, 5, _random.randint(1, 28)), _random.randint(0, 999)
        )
    )
    guardian_id: str = field(
        default_factory=lambda: make_id(
            "310104", date(1985, 5, _random.randint(1, 28)), _random.randint(0, 999)
        )
    )
    account: str = field(default_factory=lambda: f"portal-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self.intake = Intake(get_settings().pseudonym_key.encode())

    def registry_change(self, at: int = 0) -> RegistryChange:
        return RegistryChange(
            event_id=str(uuid.uuid4()),
            occurred_at=self.since + at,
            change=Change.ENROL,
            student_id=self.student_id,
            student_name="李小红",
            school_id="SCH-1",
            school_name="SCH-1 school",
            district_code="310115",
            stage=Stage.JUNIOR,
            grade=2,
            boarding=True,
        )

    def link(self) -> FamilyLink:
        return FamilyLink(
            event_id=str(uuid.uuid4()),
            occurred_at=self.since + 1,
            guardian_id=self.guardian_id,
            guardian_account=self.account,
            student_id=self.student_id,
            relation=Relation.FATHER,
            linked=True,
        )

    def status(self) -> AssistanceStatus:
        return AssistanceStatus(
            event_id=str(uuid.uuid4()),
            occurred_at=self.since + 2,
            person_id=self.guardian_id,
            category=Category.DISABILITY,
            granted=True,
            valid_from=date(2026, 1, 1),
            valid_to=None,
            status_id=f"MZ-{uuid.uuid4().hex[:8]}",
        )

    @property
    def registry(self) -> RegistryRecord:
        return self.intake.registry(self.registry_change())

    @property
    def ref(self) -> str:
        return self.intake.student_ref(self.student_id)

    def link_fact(self) -> LinkFact:
        link: LinkRecord = self.intake.link(self.link())
        status: StatusRecord = self.intake.status(self.status())
        return LinkFact.addressed(link, (status,))

    def answer(self, offer_id: str, account: str | None = None) -> GuardianAnswer:
        return GuardianAnswer(
            event_id=str(uuid.uuid4()),
            occurred_at=self.since + HOUR,
            offer_id=offer_id,
            student_ref=self.ref,
            guardian_account=account or self.account,
            answer=Answer.ACCEPT,
            signature_ref="esign-7",
        )


def item(spec: Any, key: str | bytes | None, value: bytes, offset: int = 0) -> Input:
    """An input as the runtime hands it to a step."""
    raw_key = key.encode() if isinstance(key, str) else key
    return Input(raw_key, value, spec.name, 1, offset, 0)


def fact_value(fact: Any) -> bytes:
    return codec.encode(flow.STUDENT_FACT_SCHEMA, student_fact_to_dict(fact))


async def test_decider_agent_makes_an_offer_in_its_test_context(sent: Sent) -> None:
    """Through the agent: an enrolment, then the guardian's link and status,
    give one offer keyed by the student and the student's state in the table."""
    family = Family()

    async with flow.decider_agent.test_context() as agent:
        for fact in (family.registry, family.link_fact()):
            await agent.put(value=fact_value(fact), key=family.ref.encode())

    (offer,) = sent.on(aid.OFFERS)
    assert sent.keys(aid.OFFERS) == [family.ref.encode()]
    assert offer["guardian_account"] == family.account
    assert offer["aid_kind"] == "BOARDING_SUBSIDY"
    assert offer["amount_fen"] == 62_500
    assert flow.students.data.get(family.ref.encode()) is not None
    assert ("students", 0, family.ref.encode()) in sent.changelog


async def test_intake_pseudonymises_and_rekeys(sent: Sent) -> None:
    """Registry entries go to student facts by student reference, links and
    statuses to person facts by person reference; no ID number goes on."""
    family = Family()
    inputs = [
        item(
            aid.REGISTRY_CHANGES,
            "G" + family.student_id,
            codec.encode(flow.REGISTRY_SCHEMA, family.registry_change().to_dict()),
        ),
        item(
            aid.FAMILY_LINKS,
            family.guardian_id,
            codec.encode(flow.LINK_SCHEMA, family.link().to_dict()),
        ),
        item(
            aid.ASSISTANCE_STATUS,
            family.guardian_id,
            codec.encode(flow.STATUS_SCHEMA, family.status().to_dict()),
        ),
    ]

    outcomes = [await flow.intake_step(i) for i in inputs]

    guardian_ref = family.intake.person_ref(family.guardian_id)
    assert outcomes == ["registry", "link", "status"]
    assert sent.keys(aid.STUDENT_FACTS) == [family.ref.encode()]
    assert sent.keys(aid.PERSON_FACTS) == [guardian_ref.encode()] * 2
    everything = b"".join(value for _, _, value, _ in sent.records)
    assert family.student_id.encode() not in everything
    assert family.guardian_id.encode() not in everything
    assert "李小红".encode() not in everything


async def test_router_addresses_a_status_to_linked_students(sent: Sent) -> None:
    """A link then a status of the guardian reach the student as facts."""
    family = Family()
    link = family.intake.link(family.link())
    status = family.intake.status(family.status())
    person = family.intake.person_ref(family.guardian_id)

    records: tuple[PersonFact, ...] = (link, status)
    for index, record in enumerate(records):
        value = codec.encode(flow.PERSON_FACT_SCHEMA, person_fact_to_dict(record))
        await flow.route_step(item(aid.PERSON_FACTS, person, value, index))

    facts = sent.on(aid.STUDENT_FACTS)
    assert sent.keys(aid.STUDENT_FACTS).count(family.ref.encode()) == 2
    assert [f["link"] is not None for f in facts if f["student_ref"] == family.ref] == [
        True,
        False,
    ]
    assert ("persons", 1, person.encode()) in sent.changelog


async def test_answers_grant_once_and_refusals_become_dead_letters(sent: Sent) -> None:
    """An acceptance grants; another family's answer and an unknown offer are
    dead-lettered with their reasons; a wrong key is poison."""
    family = Family()
    for offset, fact in enumerate((family.registry, family.link_fact())):
        await flow.decide_step(
            item(aid.STUDENT_FACTS, family.ref, fact_value(fact), offset)
        )
    offer_id = str(sent.on(aid.OFFERS)[0]["offer_id"])

    def answer_item(answer: GuardianAnswer, key: str | None = None) -> Input:
        value = codec.encode(flow.ANSWER_SCHEMA, answer.to_dict())
        return item(aid.GUARDIAN_ANSWERS, key or family.ref, value)

    stranger = await flow.decide_step(answer_item(family.answer(offer_id, "portal-x")))
    granted = await flow.decide_step(answer_item(family.answer(offer_id)))
    unknown = await flow.decide_step(answer_item(family.answer(str(uuid.uuid4()))))
    with pytest.raises(PoisonError) as wrong_key:
        await flow.decide_step(answer_item(family.answer(offer_id), "stu_other"))

    assert (stranger, granted, unknown) == (
        "rejected:wrong_guardian",
        "grant",
        "rejected:unknown_offer",
    )
    assert [reason for reason, _ in sent.dead] == ["wrong_guardian", "unknown_offer"]
    assert [g["offer_id"] for g in sent.on(aid.GRANTS)] == [uuid.UUID(offer_id)]
    assert wrong_key.value.reason == "key_mismatch"


async def test_an_offer_is_sent_only_once_the_state_recording_it_is_stored(
    sent: Sent,
) -> None:
    """A guardian can only answer an offer a restarted decider knows: the
    student's state with the offer is stored before the offer is sent."""
    family = Family()
    await flow.decide_step(
        item(aid.STUDENT_FACTS, family.ref, fact_value(family.registry))
    )
    stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sent.changelog.clear()

    def write(partition: int | None, key: bytes, *_: Any, **__: Any) -> Any:
        sent.changelog.append(("students", partition, key))
        return stored

    with mock.patch.object(flow.students, "send_changelog", write):
        deciding = asyncio.create_task(
            flow.decide_step(
                item(aid.STUDENT_FACTS, family.ref, fact_value(family.link_fact()), 1)
            )
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert not deciding.done()
        assert sent.on(aid.OFFERS) == []
        assert ("students", family.ref.encode()) in [
            (name, key) for name, _, key in sent.changelog
        ]

        stored.set_result(None)
        assert await deciding == "offer"
    assert len(sent.on(aid.OFFERS)) == 1


async def test_a_tick_closes_expired_offers_and_empties_the_index(sent: Sent) -> None:
    """Offers indexed by expiry hour close at the first tick past it, once,
    and only after the closures are sent is the hour dropped."""
    family = Family(since=flow.now_millis() - 60 * DAY)
    partition = 1
    for offset, fact in enumerate((family.registry, family.link_fact())):
        await flow.decide_step(
            item(aid.STUDENT_FACTS, family.ref, fact_value(fact), offset)
        )
    (offer,) = sent.on(aid.OFFERS)
    expires_at = int(offer["expires_at"].timestamp() * 1000)
    hour = expires_at // flow.HOUR_MS
    assert hour in flow.index_hours(partition)

    tick = item(aid.EXPIRY_TICKS, None, flow.tick_value(flow.now_millis()))
    first = await flow.decide_step(tick)
    again = await flow.decide_step(tick)

    (closure,) = sent.on(aid.CLOSURES)
    assert closure["outcome"] == "EXPIRED"
    assert closure["offer_id"] == offer["offer_id"]
    assert first == "swept:1"
    assert again == "swept:0"
    assert hour not in flow.index_hours(partition)


@pytest.mark.parametrize("value", [b"", b"{}", b'{"now": "soon"}', b"[1]", None])
def test_a_tick_that_is_not_a_time_is_poison(value: bytes | None) -> None:
    """Only ``{"now": millis}`` is a tick."""
    with pytest.raises(PoisonError):
        flow.read_tick(value)


def test_tick_round_trips() -> None:
    """A tick carries the time it was made."""
    assert flow.read_tick(flow.tick_value(1_788_220_800_123)) == 1_788_220_800_123
