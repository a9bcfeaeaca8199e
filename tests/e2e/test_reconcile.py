"""Reconciliation against the real callbacks topic, and the command itself.

Callbacks arrive through the real ingress for a business day of their own,
so other tests' callbacks on the shared topic never fall on it. The channel's
bill file lists one payment more than we received; ``--inject`` replays it
and the next run is clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from avro_schemas import default_codec
from edustream.channels.billfiles import BillLine, write_bill_file
from edustream.channels.keys import ChannelKeys, generate_test_keys
from edustream.channels.times import BEIJING
from edustream.commands.billing import reconcile_day
from edustream.errors import CodecError
from edustream.http.payments import CALLBACK_SCHEMA
from edustream.http.server import start_ingress
from edustream.settings import get_settings
from tests.e2e.signed_callbacks import alipay_paid, new_order_id
from topics import billing

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def channel_keys() -> ChannelKeys:
    """One key set for the module."""
    return generate_test_keys()


@pytest.fixture
async def ingress(
    bootstrap: str, redis_url: str, channel_keys: ChannelKeys, tmp_path: Path
) -> AsyncIterator[str]:
    """The HTTP service with the module's channel keys."""
    channel_keys.save(tmp_path / "keys")
    settings = get_settings().model_copy(update={"channel_keys_dir": tmp_path / "keys"})
    async with AsyncExitStack() as stack:
        yield await start_ingress(stack, settings, bootstrap, redis_url)


def _unused_day() -> date:
    """A business day in the 2030s that no other test pays on."""
    return date(2031, 1, 1) + timedelta(days=random.randrange(3000))


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=BEIJING).astimezone(UTC)


async def _pay(base: str, keys: ChannelKeys, day: date, hour: int) -> BillLine:
    """Send one Alipay payment made on ``day``; return its bill line."""
    moment = _at(day, hour)
    order_id = new_order_id()
    trade_no = "2031" + order_id[-20:]
    callback = alipay_paid(
        keys, order_id, 20_000, now=moment, overrides={"trade_no": trade_no}
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + callback.path, data=callback.body, headers=callback.headers
        ) as resp,
    ):
        assert resp.status == 200
    return BillLine("alipay", order_id, trade_no, "payment", 20_000, None, moment)


async def test_missing_payment_is_found_injected_and_then_matched(
    ingress: str, bootstrap: str, channel_keys: ChannelKeys
) -> None:
    """Two received and one missing; after injection all three match."""
    day = _unused_day()
    received = [await _pay(ingress, channel_keys, day, hour) for hour in (9, 15)]
    missing = BillLine(
        "alipay",
        new_order_id(),
        "2031MISSING0001",
        "payment",
        20_000,
        None,
        _at(day, 11),
    )
    lines = [*received, missing]

    first = await reconcile_day(bootstrap, "alipay", day, lines, inject=True)
    second = await reconcile_day(bootstrap, "alipay", day, lines)

    assert first.report.matched == 2
    assert [d.order_id for d in first.report.missing_here] == [missing.order_id]
    assert first.report.missing_at_channel == []
    [event] = first.injected
    assert (event.channel, event.source, event.order_id) == (
        "alipay",
        "RECONCILIATION",
        missing.order_id,
    )
    assert second.report.is_clean
    assert second.report.matched == 3
    assert second.injected == []


async def test_reconcile_command_prints_json_and_exits_by_outcome(
    ingress: str, bootstrap: str, channel_keys: ChannelKeys, tmp_path: Path
) -> None:
    """``edustream billing reconcile --json`` reads a real bill file."""
    day = _unused_day()
    paid = await _pay(ingress, channel_keys, day, 10)
    extra = BillLine(
        "alipay",
        new_order_id(),
        "2031EXTRA000001",
        "payment",
        9_900,
        None,
        _at(day, 12),
    )
    bill_file = tmp_path / "alipay.csv"
    bill_file.write_bytes(write_bill_file("alipay", day, [paid, extra]))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EDUSTREAM_LOG_FORMAT": "json",
    }
    args = ["billing", "reconcile", "--channel", "alipay", "--date", day.isoformat()]

    dirty = await _run([*args, "--json", "--inject", str(bill_file)], env)
    clean = await _run([*args, "--json", str(bill_file)], env)

    assert dirty[0] == 1
    assert json.loads(dirty[1])["missing_here"][0]["order_id"] == extra.order_id
    assert json.loads(dirty[1])["injected"] == 1
    assert clean[0] == 0
    assert json.loads(clean[1])["matched"] == 2
    injected = await _callbacks_for(bootstrap, extra.order_id)
    assert [r["source"] for r in injected] == ["RECONCILIATION"]
    assert injected[0]["channel"] == "alipay"
    assert injected[0]["amount_fen"] == 9_900


async def _run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edustream", *args],
        env=env,
        capture_output=True,
        timeout=120,
    )
    return result.returncode, result.stdout.decode()


async def _callbacks_for(bootstrap: str, order_id: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        name = billing.CALLBACKS.name
        parts = [
            TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found: list[dict[str, Any]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    # Other tests put deliberately malformed records here.
                    try:
                        record = default_codec().decode_as(
                            CALLBACK_SCHEMA, message.value
                        )
                    except CodecError:
                        continue
                    if record["order_id"] == order_id:
                        found.append(record)
        return found
    finally:
        await consumer.stop()
