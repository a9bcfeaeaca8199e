"""`topics apply`: creates the catalogue once, then changes nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.broker import EmbeddedBroker
from infra.provision import apply_topics, existing_partitions
from topics import CATALOGUE
from topics.spec import TopicSpec

pytestmark = pytest.mark.e2e


def test_apply_twice_creates_then_changes_nothing() -> None:
    """The first run creates every topic; the second finds them unchanged."""
    with EmbeddedBroker() as broker:
        first = asyncio.run(apply_topics(broker.bootstrap, CATALOGUE.values(), 4, 1))
        second = asyncio.run(apply_topics(broker.bootstrap, CATALOGUE.values(), 4, 1))
    assert sorted(first.created) == sorted(CATALOGUE)
    assert second.created == []
    assert sorted(second.unchanged) == sorted(CATALOGUE)
    assert first.ok
    assert second.ok


def test_partition_mismatch_is_reported_not_used() -> None:
    """A topic with another partition count is a conflict, and stays as it is."""
    spec = TopicSpec(
        name="probe.mismatch",
        key="k",
        schema=None,
        writer="test",
        readers=(),
        doc="probe",
    )
    with EmbeddedBroker() as broker:
        asyncio.run(apply_topics(broker.bootstrap, [spec], 2, 1))
        result = asyncio.run(apply_topics(broker.bootstrap, [spec], 3, 1))
        have = asyncio.run(_partitions(broker.bootstrap))
    assert not result.ok
    assert result.conflicts == {"probe.mismatch": "has 2 partitions, catalogue says 3"}
    assert have["probe.mismatch"] == 2


async def _partitions(bootstrap: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await existing_partitions(admin)
    finally:
        await admin.close()


def test_cli_apply_exits_zero_and_counts() -> None:
    """`edustream topics apply` on a fresh embedded broker creates everything."""
    done = subprocess.run(
        [sys.executable, "-m", "edustream", "topics", "apply"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"created {len(CATALOGUE)}, unchanged 0, conflicts 0" in done.stdout
