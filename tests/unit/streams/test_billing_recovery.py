"""What a restarted billing worker gets back: its tables and its inputs.

A restart rebuilds the billing tables from their changelogs and then resumes
the agents' inputs. These tests pin the two halves without a broker: the
bytes a table writes come back from its changelog unchanged, and records
fetched while streams resume are never handed to an agent only to be
cleared from its queue.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from faust.tables.recovery import Recovery
from faust.types.tuples import Message
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from avro_schemas import default_codec
from edustream.billing.bills import Bill
from streams import billing as flow
from streams.app import app
from streams.faust_compat import suspend_flow_first
from tests.unit.streams.test_billing_agent import bill_input, new_bill

codec = default_codec()


def _through_changelog(table: Any, key: str, value: bytes | None) -> Any:
    """Encode a write as the table's changelog does and decode it as recovery."""
    changelog = table.changelog_topic
    raw_key = app.serializers.dumps_key(
        table.key_type, key, serializer=table.key_serializer
    )
    raw_value = app.serializers.dumps_value(
        table.value_type, value, serializer=table.value_serializer
    )
    message = Message(
        topic=changelog.get_topic_name(),
        partition=1,
        offset=0,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=raw_key,
        value=raw_value,
        checksum=None,
    )
    return (
        changelog.schema.loads_key(app, message),
        changelog.schema.loads_value(app, message),
    )


TABLES = [flow.bills, flow.parked, flow.orders, flow.remittance]


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_table_values_come_back_from_the_changelog_as_written(table: Any) -> None:
    """Avro and JSON values, and text keys, survive the changelog byte for byte:
    recovery hands the flow the bytes it wrote, not parsed documents."""
    bill_bytes = bill_input(new_bill()).value
    assert bill_bytes is not None
    state = json.dumps({"order_id": "O1", "status": "PAID"}).encode()
    key = "unit:CU" + uuid.uuid4().hex[:8]

    for value in (bill_bytes, state):
        assert _through_changelog(table, key, value) == (key, value)
    assert _through_changelog(table, key, None) == (key, None)
    _, recovered = _through_changelog(table, key, bill_bytes)
    assert Bill.from_record(codec.decode_as(flow.BILL_SCHEMA, recovered)).order_id


class _App:
    """The part of a Faust app a recovery step touches here."""

    def __init__(self) -> None:
        self.flow_control = FlowControlEvent(initially_suspended=False)


class _Recovery:
    def __init__(self) -> None:
        self.app = _App()


async def _resume_as_faust(recovery: _Recovery, generation_id: int = 0) -> None:
    """Faust's end of recovery: resume inputs, await the seek, resume flow.

    Resuming flow control clears every agent's queue.
    """
    await asyncio.sleep(0.01)  # the seek to the committed offsets
    recovery.app.flow_control.resume()


async def _hand_over(app: _App, queue: FlowControlQueue[str], record: str) -> None:
    """The conductor: wait for flow control, then queue the record."""
    await app.flow_control.acquire()
    queue.put_nowait(record)


async def _fetched_while_resuming(resume: Any) -> list[str]:
    """A record handed over while streams resume; what its agent's queue holds."""
    recovery = _Recovery()
    queue: FlowControlQueue[str] = FlowControlQueue(
        flow_control=recovery.app.flow_control, clear_on_resume=True
    )
    resuming = asyncio.create_task(resume(recovery))
    await asyncio.sleep(0)  # inputs resumed, the seek is being awaited
    handing = asyncio.create_task(_hand_over(recovery.app, queue, "bill@99"))

    await asyncio.wait_for(asyncio.gather(resuming, handing), timeout=1)
    return [queue.get_nowait() for _ in range(queue.qsize())]


async def test_faust_alone_clears_a_record_handed_over_during_the_seek() -> None:
    """The failure being guarded: handed over while the seek is awaited, the
    record is cleared from the queue when flow control resumes."""
    assert await _fetched_while_resuming(_resume_as_faust) == []


async def test_a_record_fetched_as_streams_resume_reaches_its_agent() -> None:
    """With flow control suspended first, the record waits and is queued
    after the clear, so its agent processes it."""
    resume = suspend_flow_first(_resume_as_faust)
    assert await _fetched_while_resuming(resume) == ["bill@99"]


def test_every_way_out_of_recovery_suspends_flow_control_first() -> None:
    """Both recovery steps that resume streams are wrapped once the billing
    flow is imported."""
    for name in ("on_recovery_completed", "_resume_streams"):
        assert getattr(Recovery, name).__qualname__.startswith("suspend_flow_first")
