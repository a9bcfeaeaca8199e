"""Poison input on every upstream topic lands on its flow's dead-letter topic."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from edustream.dead_letters import open_original, sealing_key
from edustream.demo.scenario import Publication
from edustream.settings import get_settings
from tests.e2e.helpers import Outputs, produce
from topics import aid, billing, growth
from topics.spec import TopicSpec

pytestmark = pytest.mark.e2e

POISON: list[tuple[str, TopicSpec, TopicSpec]] = [
    ("aid", aid.REGISTRY_CHANGES, aid.DEAD_LETTERS),
    ("aid", aid.GUARDIAN_ANSWERS, aid.DEAD_LETTERS),
    ("billing", billing.CALLBACKS, billing.DEAD_LETTERS),
    ("billing", billing.BILLS, billing.DEAD_LETTERS),
    ("growth", growth.SCANS, growth.DEAD_LETTERS),
    ("growth", growth.VENUES, growth.DEAD_LETTERS),
]


@pytest.mark.parametrize(("flow", "source", "dead"), POISON)
async def test_undecodable_input_is_dead_lettered_with_its_coordinates(
    bootstrap: str, worker: object, flow: str, source: TopicSpec, dead: TopicSpec
) -> None:
    """Random bytes, truncated Avro and an unknown schema id each get a dead
    letter carrying the reason, source topic, partition, offset and bytes."""
    marker = uuid.uuid4().hex.encode()
    bad = [
        b"\x00\x01\x02" + marker,
        b"not avro at all " + marker,
        b"\x00\x7f\xff\xff\xfe" + marker,
    ]
    key = sealing_key(get_settings().dead_letter_key)

    def opened(
        records: list[dict[str, Any]],
    ) -> list[tuple[bytes | None, bytes | None]]:
        return [open_original(key, r) for r in records]

    async with Outputs(bootstrap) as out:
        await produce(bootstrap, [Publication(source, marker, v) for v in bad])
        await out.wait_for(dead.name, 0)
        found: list[dict[str, Any]] = []
        for _ in range(300):
            found = [
                r
                for r in out.records(dead.name)
                if r["source_topic"] == source.name
                and open_original(key, r)[0] == marker
            ]
            if len(found) >= 3:
                break
            await out.settle(0.2)
    assert sorted(value for _, value in opened(found)) == sorted(bad)
    # Inputs from a topic with personal data are kept sealed: the dead letter
    # shows neither their key nor their bytes to an operator without the key.
    assert {r["sealed"] for r in found} == {source.personal_data}
    if source.personal_data:
        assert not any(marker in (r["original_value"] or b"") for r in found)
        assert not any(r["original_key"] == marker for r in found)
    assert {r["flow"] for r in found} == {flow}
    assert {r["source_topic"] for r in found} == {source.name}
    assert {r["reason"] for r in found} <= {"undecodable", "unknown_schema_id"}
    assert all(r["source_offset"] >= 0 for r in found)
    assert len({r["event_id"] for r in found}) == 3
