"""The ingress against the real broker: signed callbacks in, records out.

A verified callback must be on ``billing.payment-callbacks``, keyed by its
order id, before the channel hears success; a refusal must be on
``billing.rejected-callbacks`` with its reason; and with the broker gone the
channel hears failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from avro_schemas import default_codec
from edustream.channels.keys import ChannelKeys, generate_test_keys
from edustream.errors import CodecError
from edustream.http.payments import callback_event_id
from edustream.http.server import start_ingress
from edustream.settings import Settings, get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from tests.e2e.signed_callbacks import (
    SignedCallback,
    alipay_paid,
    new_order_id,
    reserialised,
    unionpay_paid,
    wechat_paid,
)
from topics import billing
from topics.spec import TopicSpec

pytestmark = pytest.mark.e2e

Keyed = tuple[bytes | None, dict[str, Any]]


@pytest.fixture(scope="module")
def channel_keys() -> ChannelKeys:
    """One key set for the module; RSA keys are slow to make."""
    return generate_test_keys()


@pytest.fixture
def ingress_settings(channel_keys: ChannelKeys, tmp_path: Path) -> Settings:
    """Settings with the channel keys saved where the ingress loads them."""
    channel_keys.save(tmp_path / "keys")
    return get_settings().model_copy(update={"channel_keys_dir": tmp_path / "keys"})


@pytest.fixture
async def ingress(
    bootstrap: str, redis_url: str, ingress_settings: Settings
) -> AsyncIterator[str]:
    """The HTTP service on the session's broker; yields its base URL."""
    async with AsyncExitStack() as stack:
        yield await start_ingress(stack, ingress_settings, bootstrap, redis_url)


async def _post(base: str, callback: SignedCallback) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base + callback.path, data=callback.body, headers=callback.headers
        ) as resp,
    ):
        return resp.status, await resp.read()


async def _read(
    bootstrap: str,
    spec: TopicSpec,
    wanted: Callable[[dict[str, Any]], bool],
    count: int,
    timeout_s: float = 20.0,
) -> list[Keyed]:
    """Records of ``spec`` from the start that ``wanted`` accepts, with keys."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [
            TopicPartition(spec.name, p)
            for p in consumer.partitions_for_topic(spec.name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        return await _collect(consumer, spec, wanted, count, timeout_s)
    finally:
        await consumer.stop()


async def _collect(
    consumer: AIOKafkaConsumer,
    spec: TopicSpec,
    wanted: Callable[[dict[str, Any]], bool],
    count: int,
    timeout_s: float,
) -> list[Keyed]:
    codec = default_codec()
    found: list[Keyed] = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        for messages in batches.values():
            for message in messages:
                # Other tests put malformed or foreign records here.
                try:
                    schema, record = codec.decode(message.value)
                except CodecError:
                    continue
                if schema == spec.schema and wanted(record):
                    found.append((message.key, record))
    return found


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (alipay_paid, (200, b"success")),
        (wechat_paid, (204, b"")),
        (unionpay_paid, (200, b"ok")),
    ],
    ids=["alipay", "wechat", "unionpay"],
)
async def test_signed_callback_is_on_the_topic_keyed_by_order(
    ingress: str,
    bootstrap: str,
    channel_keys: ChannelKeys,
    build: Callable[..., SignedCallback],
    expected: tuple[int, bytes],
) -> None:
    """Success is replied, and the normalised record is there to read."""
    callback = build(channel_keys, new_order_id(), 45_600)

    answer = await _post(ingress, callback)

    assert answer == expected
    [(key, record)] = await _read(
        bootstrap,
        billing.CALLBACKS,
        lambda r: r["order_id"] == callback.order_id,
        count=1,
    )
    assert key == callback.order_id.encode()
    assert record["channel"] == callback.channel
    assert record["amount_fen"] == 45_600
    assert record["status"] == "PAID"
    assert record["source"] == "INGRESS"
    assert str(record["event_id"]) == callback_event_id(
        callback.channel, callback.notify_id
    )


async def test_duplicate_callbacks_are_both_published_with_one_id(
    ingress: str, bootstrap: str, channel_keys: ChannelKeys
) -> None:
    """Two deliveries 0.2 s apart: two records, one event id, two successes."""
    callback = wechat_paid(channel_keys, new_order_id())

    first = await _post(ingress, callback)
    await asyncio.sleep(0.2)
    second = await _post(ingress, callback)

    assert first == second == (204, b"")
    found = await _read(
        bootstrap,
        billing.CALLBACKS,
        lambda r: r["order_id"] == callback.order_id,
        count=2,
    )
    assert len(found) == 2
    assert len({str(record["event_id"]) for _key, record in found}) == 1


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [
        (
            lambda keys: alipay_paid(keys, new_order_id(), signed_by_app_key=True),
            "bad_signature",
        ),
        (
            lambda keys: reserialised(wechat_paid(keys, new_order_id())),
            "bad_signature",
        ),
        (
            lambda keys: wechat_paid(
                keys, new_order_id(), timestamp=int(time.time()) - 3600
            ),
            "stale_timestamp",
        ),
    ],
    ids=["app-key", "reserialised", "stale"],
)
async def test_refused_callback_is_recorded_with_its_reason(
    ingress: str,
    bootstrap: str,
    channel_keys: ChannelKeys,
    refuse: Callable[[ChannelKeys], SignedCallback],
    reason: str,
) -> None:
    """The refusal, its reason and the exact body are on the rejected topic."""
    callback = refuse(channel_keys)
    digest = hashlib.sha256(callback.body).hexdigest()

    answer_status, _body = await _post(ingress, callback)

    assert answer_status == 400
    [(key, record)] = await _read(
        bootstrap,
        billing.REJECTED_CALLBACKS,
        lambda r: r["body_sha256"] == digest,
        count=1,
    )
    assert key == callback.channel.encode()
    assert record["reason"] == reason
    assert record["body"] == callback.body
    nothing = await _read(
        bootstrap,
        billing.CALLBACKS,
        lambda r: r["order_id"] == callback.order_id,
        count=1,
        timeout_s=1.0,
    )
    assert nothing == []


async def test_oversized_body_is_refused_and_recorded_without_it(
    ingress: str, bootstrap: str, ingress_settings: Settings
) -> None:
    """413, and a rejected record naming the size but holding no body."""
    size = ingress_settings.ingress_max_body_bytes + 12_345
    body = b"x" * size

    async with (
        aiohttp.ClientSession() as session,
        session.post(ingress + "/callbacks/alipay", data=body) as resp,
    ):
        assert resp.status == 413

    [(_key, record)] = await _read(
        bootstrap,
        billing.REJECTED_CALLBACKS,
        lambda r: r["reason"] == "oversized_body" and r["body_length"] == size,
        count=1,
    )
    assert record["body"] is None


async def test_ready_when_broker_and_redis_answer(ingress: str) -> None:
    """/readyz is 200 on a provisioned broker with Redis up."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(ingress + "/readyz") as resp,
    ):
        assert resp.status == 200
        assert await resp.json() == {"status": "ready", "kafka": "ok", "redis": "ok"}


async def test_broker_gone_means_failure_never_success(
    redis_url: str, ingress_settings: Settings, channel_keys: ChannelKeys
) -> None:
    """Broker stopped: 503 and not ready. Broker back: the resend succeeds."""
    broker = EmbeddedBroker()
    # start() waits with its own event loop, so it runs off this one.
    await asyncio.to_thread(broker.start)
    revived = EmbeddedBroker(broker.port)
    try:
        await apply_topics(broker.bootstrap, billing.ALL, 1, 1)
        async with AsyncExitStack() as stack:
            base = await start_ingress(
                stack, ingress_settings, broker.bootstrap, redis_url
            )
            before = await _post(base, alipay_paid(channel_keys, new_order_id()))

            broker.stop()
            resent = alipay_paid(channel_keys, new_order_id())
            after = await _post(base, resent)
            ready = await _get_json(base + "/readyz")

            await asyncio.to_thread(revived.start)
            await apply_topics(revived.bootstrap, billing.ALL, 1, 1)
            again = await _post_until_accepted(base, resent)
    finally:
        broker.stop()
        revived.stop()

    assert before == (200, b"success")
    assert after == (503, b"fail")
    assert ready[0] == 503
    assert ready[1]["kafka"] == "unavailable"
    assert again == (200, b"success")


async def _get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def _post_until_accepted(
    base: str, callback: SignedCallback, timeout_s: float = 30.0
) -> tuple[int, bytes]:
    """Resend as a channel would, until success or the time is up."""
    deadline = time.monotonic() + timeout_s
    answer = await _post(base, callback)
    while answer[0] != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        answer = await _post(base, callback)
    return answer
