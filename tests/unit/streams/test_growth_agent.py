"""The growth flow's steps without a broker: the whole demo city, replayed.

``ArchiveFlow`` and ``EnrolmentFlow`` run over in-memory tables, a filled
catalogue and a capturing emitter, with the demo scenario's records split
into partitions by the producer's own partitioner. The outputs must equal
what the scenario planned, whatever order the partitions are read in, and
delivering every input again must change nothing.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from avro_schemas import default_codec
from edustream.demo.growth import scenario
from edustream.demo.scenario import Publication, Scenario
from edustream.growth.certificates import load_rules
from edustream.growth.events import Activity, Venue
from edustream.growth.rejections import Reason
from edustream.settings import get_settings
from streams import growth as flow
from streams import runtime
from streams.growth_catalogue import Catalogue
from streams.growth_state import InputOffsets, StudentStore
from topics import aid, growth
from topics.spec import TopicSpec

PARTITIONS = 4
# Broker timestamp of every record: when it reached the platform, after the
# demo's dates.
NOW = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
codec = default_codec()


class FakeTable(dict[bytes, Any]):
    """A Faust table's mapping and changelog writes, in memory."""

    def __init__(self, name: str = "", journal: list[str] | None = None) -> None:
        super().__init__()
        self.changelog: list[tuple[int, bytes]] = []
        self.name = name
        self.journal = journal

    @property
    def data(self) -> FakeTable:
        """Faust's store behind the table: here the table itself."""
        return self

    def send_changelog(self, partition: int, key: bytes, _value: Any) -> None:
        """Record where the changelog record would go."""
        self.changelog.append((partition, key))
        if self.journal is not None:
            self.journal.append(self.name)


class FakeCatalogue(Catalogue):
    """A catalogue filled directly; the read barrier has nothing to wait for."""

    async def catch_up(self, since: float) -> bool:
        """Everything is already read."""
        del since
        return True


@dataclass
class Outputs:
    """What the flow emitted and dead-lettered."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    dead: dict[str, str] = field(default_factory=dict)
    # Sends, deliveries and table writes in the order they happened.
    journal: list[str] = field(default_factory=list)

    async def send(self, spec: TopicSpec, key: str, record: dict[str, Any]) -> None:
        """Capture one output, after checking it encodes under its schema."""
        assert spec.schema is not None
        codec.encode(spec.schema, record)
        self.sent.append((spec.name, key, record))
        self.journal.append("send")

    async def delivered(self) -> None:
        """Note the wait for the broker's acknowledgements."""
        self.journal.append("delivered")

    async def stored(self, writes: Sequence[Any]) -> None:
        """Note the wait for the broker to store table writes."""
        del writes
        self.journal.append("delivered")

    async def dead_letter(
        self, _flow: str, item: runtime.Input, reason: str, _message: str
    ) -> None:
        """Capture a dead letter under its source coordinates, as its id is."""
        self.dead[f"{item.topic}:{item.partition}:{item.offset}"] = reason
        self.journal.append("send")

    def of(self, topic: str) -> list[dict[str, Any]]:
        """Records sent to one topic."""
        return [record for name, _, record in self.sent if name == topic]


@dataclass
class Harness:
    """The archive flow over fakes, and a log of partitioned inputs."""

    outputs: Outputs
    archive: flow.ArchiveFlow
    enrolments: flow.EnrolmentFlow
    logs: dict[tuple[str, int], list[runtime.Input]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def append(self, spec: TopicSpec, key: bytes | None, value: bytes) -> None:
        """Write one record to its partition of the in-memory log."""
        partition = _partition(key)
        log = self.logs[spec.name, partition]
        log.append(runtime.Input(key, value, spec.name, partition, len(log), NOW))


def _partition(key: bytes | None) -> int:
    assert key is not None
    return int(DefaultPartitioner()(key, list(range(PARTITIONS)), []))


@pytest.fixture
def outputs(monkeypatch: pytest.MonkeyPatch) -> Outputs:
    """Capture dead letters the runtime would send."""
    found = Outputs()
    monkeypatch.setattr(runtime, "dead_letter", found.dead_letter)
    return found


def _harness(outputs: Outputs, catalogue: Catalogue) -> Harness:
    archive = flow.ArchiveFlow(
        StudentStore(
            FakeTable("state", outputs.journal), FakeTable("archive", outputs.journal)
        ),
        InputOffsets(FakeTable("offsets", outputs.journal)),
        catalogue,
        outputs,  # type: ignore[arg-type]
        rules=load_rules(),
    )
    key = get_settings().pseudonym_key.encode()
    enrolments = flow.EnrolmentFlow(outputs, key)  # type: ignore[arg-type]
    return Harness(outputs, archive, enrolments)


def _catalogue(city: Scenario) -> FakeCatalogue:
    catalogue = FakeCatalogue()
    for phase in city.phases:
        for p in phase.publications:
            if p.spec is growth.VENUES:
                venue = Venue.from_dict(
                    codec.decode_as("edustream.growth.Venue", p.value)
                )
                catalogue.venues[venue.venue_id] = venue
            elif p.spec is growth.ACTIVITIES:
                schema = "edustream.growth.Activity"
                activity = Activity.from_dict(codec.decode_as(schema, p.value))
                catalogue.activities[activity.activity_id] = activity
    return catalogue


ARCHIVE_TOPICS = {
    growth.SCANS.name,
    growth.CONFIRMATIONS.name,
    growth.AWARDS.name,
    growth.VOIDS.name,
    growth.ENROLMENTS.name,
}


async def _play(harness: Harness, city: Scenario, order: random.Random) -> None:
    """Every phase: registry to enrolment facts, then the archive inputs."""
    for phase in city.phases:
        start = {tp: len(log) for tp, log in harness.logs.items()}
        await _enrol(harness, phase.publications)
        for p in phase.publications:
            if p.spec.name in ARCHIVE_TOPICS:
                harness.append(p.spec, p.key, p.value)
        await _drain(harness, start, order)


async def _enrol(harness: Harness, publications: list[Publication]) -> None:
    sent_before = len(harness.outputs.sent)
    for index, p in enumerate(publications):
        if p.spec is aid.REGISTRY_CHANGES:
            item = runtime.Input(p.key, p.value, p.spec.name, 0, index, NOW)
            await harness.enrolments.step(item)
    for name, key, record in harness.outputs.sent[sent_before:]:
        if name == growth.ENROLMENTS.name:
            value = codec.encode("edustream.growth.EnrolmentFact", record)
            harness.append(growth.ENROLMENTS, key.encode(), value)


async def _drain(
    harness: Harness, start: dict[tuple[str, int], int], order: random.Random
) -> None:
    """Read every partition's new records in random-sized, interleaved batches."""
    cursors = {tp: start.get(tp, 0) for tp in harness.logs}
    while any(cursors[tp] < len(log) for tp, log in harness.logs.items()):
        batch: list[runtime.Input] = []
        for tp, log in harness.logs.items():
            take = order.randint(1, 300)
            batch.extend(log[cursors[tp] : cursors[tp] + take])
            cursors[tp] = min(len(log), cursors[tp] + take)
        await harness.archive.process_items(batch)


def _observed(outputs: Outputs, city: Scenario) -> dict[str, int]:
    accounts = {r["student_account"] for r in outputs.of(growth.ENROLMENTS.name)}
    statements = outputs.of(growth.STATEMENTS.name)
    certificates = outputs.of(growth.CERTIFICATES.name)
    reasons = {reason.value for reason in Reason}
    del city
    return {
        "growth.enrolments": len(
            {
                r["event_id"]
                for r in outputs.of(growth.ENROLMENTS.name)
                if r["student_account"] in accounts
            }
        ),
        "growth.records": len({r["id"] for r in statements if r["verb_id"] != VOIDED}),
        "growth.voided": len({r["id"] for r in statements if r["verb_id"] == VOIDED}),
        "growth.certificates": len(
            {r["certificate_id"] for r in certificates if r["status"] == "ISSUED"}
        ),
        "growth.withdrawn": len(
            {r["certificate_id"] for r in certificates if r["status"] == "WITHDRAWN"}
        ),
        "growth.rejected": sum(1 for r in outputs.dead.values() if r in reasons),
        "growth.dead_letters": len(outputs.dead),
    }


@pytest.fixture(scope="module")
def city() -> Scenario:
    """A small demo city."""
    return scenario(get_settings(), 7, 0.3, date(2026, 9, 15))


@pytest.mark.parametrize("order_seed", [1, 2])
async def test_demo_city_gives_exactly_what_the_scenario_planned(
    outputs: Outputs, city: Scenario, order_seed: int
) -> None:
    """Statements, certificates issued and withdrawn, voids and refusals
    equal the plan's counts, for two different interleavings of the
    partitions and batch sizes."""
    harness = _harness(outputs, _catalogue(city))

    await _play(harness, city, random.Random(order_seed))

    observed = _observed(outputs, city)
    expected = {k: v for k, v in city.expected.items() if k in observed}
    assert observed == expected


async def test_every_statement_is_emitted_once_and_ids_are_stable(
    outputs: Outputs, city: Scenario
) -> None:
    """No statement or certificate event is emitted twice, and a second run
    over fresh state derives the very same ids."""
    first = _harness(outputs, _catalogue(city))
    await _play(first, city, random.Random(3))
    ids = [r["id"] for r in outputs.of(growth.STATEMENTS.name)]
    events = [r["event_id"] for r in outputs.of(growth.CERTIFICATES.name)]

    again = Outputs()
    second = _harness(again, _catalogue(city))
    await _play(second, city, random.Random(4))

    assert len(ids) == len(set(ids))
    assert len(events) == len(set(events))
    assert {r["id"] for r in again.of(growth.STATEMENTS.name)} == set(ids)


async def test_inputs_delivered_again_change_nothing(
    outputs: Outputs, city: Scenario
) -> None:
    """After a rewind to the start of every partition, no input is applied
    twice: nothing is emitted and nothing is refused."""
    harness = _harness(outputs, _catalogue(city))
    await _play(harness, city, random.Random(5))
    sent, dead = len(outputs.sent), dict(outputs.dead)

    await _drain(harness, {}, random.Random(6))

    assert len(outputs.sent) == sent
    assert outputs.dead == dead


async def test_inputs_delivered_again_after_their_offsets_were_lost_change_nothing(
    outputs: Outputs, city: Scenario
) -> None:
    """A crash can keep a student's state and lose the applied-offsets record
    written beside it. Every input delivered again is then still known as
    applied, by the student's own record: nothing is emitted or refused."""
    harness = _harness(outputs, _catalogue(city))
    await _play(harness, city, random.Random(8))
    sent, dead = len(outputs.sent), dict(outputs.dead)

    offsets = harness.archive.offsets
    offsets._table.clear()  # type: ignore[attr-defined]
    offsets.clear_cache()
    harness.archive.store.clear_cache()
    await _drain(harness, {}, random.Random(9))

    assert len(outputs.sent) == sent
    assert outputs.dead == dead


async def test_changelog_writes_go_to_the_students_partition(
    outputs: Outputs, city: Scenario
) -> None:
    """Every coalesced table write lands in the partition its key is read
    from, so a rebalance recovers each student with their partition."""
    harness = _harness(outputs, _catalogue(city))
    await _play(harness, city, random.Random(7))

    store = harness.archive.store
    tables: Iterator[FakeTable] = iter(
        (store._states, store._archives)  # type: ignore[misc]
    )
    for table in tables:
        assert table.changelog
        assert all(_partition(key) == partition for partition, key in table.changelog)


async def test_each_batch_stores_outputs_then_archives_then_states(
    outputs: Outputs, city: Scenario
) -> None:
    """Archive writes wait until the outputs before them are stored, and
    state records and applied offsets wait until the outputs and archives
    before them are: a kept mark of an input applied always has its archive
    and outputs."""
    harness = _harness(outputs, _catalogue(city))
    await _play(harness, city, random.Random(10))

    undelivered: set[str] = set()
    written = {"archive": 0, "state": 0, "offsets": 0}
    for entry in outputs.journal:
        if entry == "delivered":
            undelivered.clear()
            continue
        if entry == "archive":
            assert "send" not in undelivered
        if entry in {"state", "offsets"}:
            assert not undelivered & {"send", "archive"}
        else:
            undelivered.add(entry)
        written[entry] = written.get(entry, 0) + 1
    assert written["archive"] > 0
    assert written["state"] > written["archive"]
    assert written["offsets"] > 0


async def test_a_crash_that_kept_archives_but_lost_states_loses_nothing(
    outputs: Outputs, city: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch is handled, then the worker "crashes" after its archive
    writes were stored and before its state records were: a new flow starts
    over the tables as they were then and handles the batch again. The
    outputs keep the same ids as a run without crashes, and nothing more is
    refused."""
    calm = Outputs()
    monkeypatch.setattr(runtime, "dead_letter", calm.dead_letter)
    await _play(_harness(calm, _catalogue(city)), city, random.Random(11))
    monkeypatch.setattr(runtime, "dead_letter", outputs.dead_letter)

    monkeypatch.setattr(flow, "_assigned_partitions", lambda: set(range(PARTITIONS)))
    harness = _harness(outputs, _catalogue(city))
    first = harness.archive
    states: FakeTable = first.store._states  # type: ignore[attr-defined]
    archives: FakeTable = first.store._archives  # type: ignore[attr-defined]
    offsets: FakeTable = first.offsets._table  # type: ignore[attr-defined]
    crashes = 0

    class CrashingFlow(flow.ArchiveFlow):
        async def process_items(self, items: Sequence[runtime.Input]) -> None:
            nonlocal crashes
            kept_states, kept_offsets = dict(states), dict(offsets)
            await flow.ArchiveFlow.process_items(self, items)
            states.clear()
            states.update(kept_states)
            offsets.clear()
            offsets.update(kept_offsets)
            crashes += 1
            restarted = flow.ArchiveFlow(
                StudentStore(states, archives),
                InputOffsets(offsets),
                first.catalogue,
                first.emitter,
                rules=first.rules,
            )
            restarted.on_generation(crashes)
            await restarted.process_items(items)
            self.store, self.offsets = restarted.store, restarted.offsets
            self.watermarks, self._due = restarted.watermarks, restarted._due

    harness.archive = CrashingFlow(
        first.store, first.offsets, first.catalogue, first.emitter, rules=first.rules
    )
    await _play(harness, city, random.Random(11))

    def ids(found: Outputs) -> dict[str, set[str]]:
        return {
            "statements": {r["id"] for r in found.of(growth.STATEMENTS.name)},
            "certificates": {
                r["event_id"] for r in found.of(growth.CERTIFICATES.name)
            },
        }

    assert crashes > 5
    assert ids(calm)["statements"]
    assert ids(outputs) == ids(calm)
    assert calm.dead
    assert outputs.dead == calm.dead
