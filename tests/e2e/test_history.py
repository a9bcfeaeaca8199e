"""Payment history through the real broker, Redis, HTTP view and command.

The read models run as they do in production, as consumer groups over the
billing output topics; replaying those topics from the start changes
nothing. The last test goes all the way from a signed callback at the
ingress through the worker's receipt to the parent's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from consumers.base import Subscriber, run_subscriber
from consumers.billing_history import PaymentHistory
from consumers.bills_lookup import BillsLookup
from edustream.channels.keys import generate_test_keys
from edustream.demo.scenario import Publication
from edustream.http.server import start_ingress
from edustream.settings import get_settings
from infra.redis import async_client
from tests.e2e.billing_records import (
    TOPICS,
    bill_record,
    exception_record,
    new_bill,
    receipt_record,
    red_letter_record,
)
from tests.e2e.helpers import produce
from tests.e2e.signed_callbacks import alipay_paid

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)
KINDS = ["payment", "receipt", "exception", "refund", "red_letter_receipt"]


def _student() -> str:
    return f"stu_{uuid.uuid4().hex[:26]}"


def _publications(ref: str) -> list[Publication]:
    """A paid bill, a second payment to refund, then a partial refund."""
    bill = new_bill(ref, total_items=(150_000,))
    records = [
        ("bill", bill_record(bill)),
        ("receipt", receipt_record(bill, T0)),
        ("exception", exception_record(bill, bill.bill_id, T0 + timedelta(minutes=3))),
        ("red_letter", red_letter_record(bill, 30_000, T0 + timedelta(days=1))),
    ]
    return [
        Publication.record(TOPICS[kind], bill.bill_id, record)
        for kind, record in records
    ]


@contextlib.asynccontextmanager
async def _running(bootstrap: str, *subs: Subscriber) -> AsyncIterator[None]:
    """Run subscribers in the background for the duration of the block."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_subscriber(s, bootstrap, stop)) for s in subs]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _history(base: str, ref: str, count: int, timeout_s: float = 30.0) -> Any:
    """GET the history until it holds ``count`` entries or time is up."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{base}/history/{ref}") as resp:
                answer = await resp.json()
            if len(answer["entries"]) >= count or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.2)


@pytest.fixture
async def ingress(bootstrap: str, redis_url: str) -> AsyncIterator[str]:
    """The HTTP service on the session's broker and Redis."""
    async with AsyncExitStack() as stack:
        yield await start_ingress(stack, get_settings(), bootstrap, redis_url)


async def test_history_is_built_from_the_topics_and_survives_a_replay(
    bootstrap: str, redis_url: str, ingress: str
) -> None:
    """Five entries in time order; a second group replaying it all adds none."""
    ref = _student()
    publications = _publications(ref)
    await produce(bootstrap, publications)
    redis = async_client(redis_url)
    group = f"test-history-{uuid.uuid4().hex}"

    try:
        async with _running(bootstrap, PaymentHistory(redis, group=group)):
            first = await _history(ingress, ref, 5)

        await produce(bootstrap, publications)
        async with _running(bootstrap, PaymentHistory(redis, group=group + "-replay")):
            await asyncio.sleep(3)
            replayed = await _history(ingress, ref, 5)
    finally:
        await redis.aclose()

    assert [entry["kind"] for entry in first["entries"]] == KINDS
    assert replayed == first


async def test_history_command_prints_the_same_history(
    bootstrap: str, redis_url: str, ingress: str
) -> None:
    """``edustream billing history REF --json`` reads the same read model."""
    ref = _student()
    await produce(bootstrap, _publications(ref))
    redis = async_client(redis_url)
    try:
        group = f"test-history-{uuid.uuid4().hex}"
        async with _running(bootstrap, PaymentHistory(redis, group=group)):
            served = await _history(ingress, ref, 5)
    finally:
        await redis.aclose()

    env = {**os.environ, "REDIS_URL": redis_url, "EDUSTREAM_LOG_FORMAT": "json"}
    as_json = await _run_cli(["billing", "history", ref, "--json"], env)
    as_text = await _run_cli(["billing", "history", ref], env)

    assert json.loads(as_json) == served["entries"]
    lines = as_text.splitlines()
    assert [line.split()[1] for line in lines] == KINDS
    assert lines[3].split()[2] == "-300.00"


async def _run_cli(args: list[str], env: dict[str, str]) -> str:
    """Run ``edustream`` in a child process and return what it printed."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "edustream", *args],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return result.stdout.decode()


@pytest.mark.skipif(
    not all(
        importlib.util.find_spec(f"streams.{flow}")
        for flow in ("aid", "billing", "growth")
    ),
    reason="the worker needs every flow module",
)
async def test_paid_callback_reaches_the_parents_history(
    bootstrap: str, redis_url: str, worker: Path, tmp_path: Path
) -> None:
    """Bill, signed Alipay callback, worker receipt, history: end to end."""
    keys = generate_test_keys()
    keys.save(tmp_path / "keys")
    settings = get_settings().model_copy(update={"channel_keys_dir": tmp_path / "keys"})
    ref = _student()
    bill = new_bill(ref, total_items=(88_800,))
    await produce(
        bootstrap, [Publication.record(TOPICS["bill"], bill.bill_id, bill_record(bill))]
    )

    redis = async_client(redis_url)
    group = f"test-history-{uuid.uuid4().hex}"
    try:
        async with AsyncExitStack() as stack:
            base = await start_ingress(stack, settings, bootstrap, redis_url)
            callback = alipay_paid(keys, bill.bill_id, 88_800)
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    base + callback.path, data=callback.body, headers=callback.headers
                ) as resp,
            ):
                assert (resp.status, await resp.read()) == (200, b"success")

            subs = (
                PaymentHistory(redis, group=group),
                BillsLookup(redis, group=group + "-b"),
            )
            async with _running(bootstrap, *subs):
                answer = await _history(base, ref, 2, timeout_s=60)
    finally:
        await redis.aclose()

    payment, receipt = answer["entries"]
    assert payment["kind"] == "payment"
    assert payment["channel"] == "alipay"
    assert payment["amount_fen"] == 88_800
    assert receipt["kind"] == "receipt"
    assert receipt["order_id"] == bill.bill_id
    assert len(receipt["receipt_number"]) == 10
