"""The callback endpoints: verify, publish, then reply; refuse and record.

The app runs in-process with aiohttp's test server and a fake producer, so
these tests see exactly what would have gone to Kafka.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from http_fakes import FakeProducer
from redis.asyncio import Redis
from structlog.testing import capture_logs

from avro_schemas import default_codec
from edustream.channels.keys import ChannelKeys
from edustream.http import payments
from edustream.http.context import Context
from edustream.settings import Settings
from tests.e2e.signed_callbacks import (
    SignedCallback,
    alipay_paid,
    new_order_id,
    reserialised,
    unionpay_paid,
    wechat_paid,
)
from topics import billing

CALLBACKS = billing.CALLBACKS.name
REJECTED = billing.REJECTED_CALLBACKS.name

Client = TestClient[web.Request, web.Application]


def _app(settings: Settings, producer: FakeProducer) -> web.Application:
    app = web.Application(client_max_size=settings.ingress_max_body_bytes)
    ctx = Context(settings, cast(AIOKafkaProducer, producer), cast(Redis, None))
    payments.routes(app, ctx)
    return app


@pytest.fixture
async def client(settings: Settings, producer: FakeProducer) -> AsyncIterator[Client]:
    """A test client of an app with only the callback endpoints."""
    async with TestClient(TestServer(_app(settings, producer))) as test_client:
        yield test_client


async def _post(client: Client, callback: SignedCallback) -> tuple[int, bytes]:
    async with client.post(
        callback.path, data=callback.body, headers=callback.headers
    ) as resp:
        return resp.status, await resp.read()


def _published(producer: FakeProducer) -> list[tuple[bytes | None, dict[str, Any]]]:
    codec = default_codec()
    return [
        (key, codec.decode_as(payments.CALLBACK_SCHEMA, value))
        for key, value in producer.on(CALLBACKS)
    ]


def _rejected(producer: FakeProducer) -> list[dict[str, Any]]:
    codec = default_codec()
    return [
        codec.decode_as(payments.REJECTED_SCHEMA, value)
        for _key, value in producer.on(REJECTED)
    ]


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (alipay_paid, (200, b"success")),
        (wechat_paid, (204, b"")),
        (unionpay_paid, (200, b"ok")),
    ],
    ids=["alipay", "wechat", "unionpay"],
)
async def test_verified_callback_is_published_then_acknowledged(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    build: Callable[..., SignedCallback],
    expected: tuple[int, bytes],
) -> None:
    """Each channel's paid callback lands on CALLBACKS keyed by order id."""
    callback = build(channel_keys, new_order_id(), 12_300)

    answer = await _post(client, callback)

    assert answer == expected
    [(key, record)] = _published(producer)
    assert key == callback.order_id.encode()
    assert record["order_id"] == callback.order_id
    assert record["channel"] == callback.channel
    assert record["notify_id"] == callback.notify_id
    assert record["status"] == "PAID"
    assert record["amount_fen"] == 12_300
    assert record["source"] == "INGRESS"
    assert str(record["event_id"]) == payments.callback_event_id(
        callback.channel, callback.notify_id
    )
    assert producer.on(REJECTED) == []


async def test_resend_after_a_fifth_of_a_second_is_published_again_with_same_id(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """Both copies succeed and publish; the flow drops the second by id."""
    callback = alipay_paid(channel_keys, new_order_id())

    first = await _post(client, callback)
    await asyncio.sleep(0.2)
    second = await _post(client, callback)

    assert first == second == (200, b"success")
    records = [record for _key, record in _published(producer)]
    assert len(records) == 2
    assert records[0]["event_id"] == records[1]["event_id"]
    assert records[0]["notify_id"] == records[1]["notify_id"] == callback.notify_id


async def test_signature_by_the_apps_own_key_is_refused_and_recorded(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """Only Alipay's key may sign: the merchant app's key is bad_signature."""
    callback = alipay_paid(channel_keys, new_order_id(), signed_by_app_key=True)

    answer = await _post(client, callback)

    assert answer == (400, b"fail")
    assert producer.on(CALLBACKS) == []
    [refusal] = _rejected(producer)
    assert refusal["reason"] == "bad_signature"
    assert refusal["channel"] == "alipay"
    assert refusal["body"] == callback.body
    assert refusal["body_length"] == len(callback.body)
    assert refusal["headers"] == {"Content-Type": callback.headers["Content-Type"]}


async def test_tampered_amount_fails_the_signature(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """Changing one signed value after signing is bad_signature."""
    callback = alipay_paid(channel_keys, new_order_id(), 12_300)
    forged = dataclasses.replace(
        callback,
        body=callback.body.replace(b"total_amount=123.00", b"total_amount=1.00"),
    )
    assert forged.body != callback.body

    answer = await _post(client, forged)

    assert answer == (400, b"fail")
    assert [r["reason"] for r in _rejected(producer)] == ["bad_signature"]


async def test_gbk_form_verifies_and_publishes(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A GBK-encoded form with Chinese text is verified in its own charset."""
    callback = alipay_paid(
        channel_keys,
        new_order_id(),
        charset="GBK",
        overrides={"subject": "学费（2025学年）", "body": "住宿费"},
    )
    assert b"%D1%A7" in callback.body  # 学 in GBK, not UTF-8

    answer = await _post(client, callback)

    assert answer == (200, b"success")
    [(_key, record)] = _published(producer)
    assert record["order_id"] == callback.order_id


async def test_html_escaped_json_field_is_verified_as_received(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """``passback_params`` holding ``{&quot;...`` verifies untouched."""
    escaped = "{&quot;school&quot;:&quot;S310104001&quot;,&quot;n&quot;:1}"
    callback = alipay_paid(
        channel_keys, new_order_id(), overrides={"passback_params": escaped}
    )

    answer = await _post(client, callback)

    assert answer == (200, b"success")
    assert len(_published(producer)) == 1


async def test_reserialised_wechat_body_is_refused(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """JSON parsed and dumped again no longer matches the signed bytes."""
    callback = reserialised(wechat_paid(channel_keys, new_order_id()))

    status, body = await _post(client, callback)

    assert status == 400
    assert body == b'{"code": "FAIL", "message": "bad_signature"}'
    [refusal] = _rejected(producer)
    assert refusal["reason"] == "bad_signature"
    assert set(refusal["headers"]) == {
        "Content-Type",
        "Wechatpay-Serial",
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Signature",
        "Wechatpay-Signature-Type",
    }
    assert producer.on(CALLBACKS) == []


@pytest.mark.parametrize("skew_s", [-301, 301, -3600], ids=["stale", "future", "old"])
async def test_wechat_timestamp_outside_the_window_is_refused(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    settings: Settings,
    skew_s: int,
) -> None:
    """A replayed (or pre-dated) notification is stale_timestamp, 400."""
    assert settings.wechat_timestamp_window_s == 300
    stamp = int(time.time()) + skew_s
    callback = wechat_paid(channel_keys, new_order_id(), timestamp=stamp)

    status, _body = await _post(client, callback)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["stale_timestamp"]
    assert producer.on(CALLBACKS) == []


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [("0.01", 1), ("0.29", 29), ("12", 1_200), ("1234.56", 123_456), ("99.9", 9_990)],
)
async def test_alipay_yuan_strings_become_exact_fen(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    yuan: str,
    fen: int,
) -> None:
    """Yuan strings are read exactly, with no float rounding on the way."""
    callback = alipay_paid(
        channel_keys,
        new_order_id(),
        overrides={"total_amount": yuan, "receipt_amount": yuan},
    )

    answer = await _post(client, callback)

    assert answer == (200, b"success")
    [(_key, record)] = _published(producer)
    assert (record["amount_fen"], record["paid_fen"]) == (fen, fen)


@pytest.mark.parametrize(
    ("build", "overrides"),
    [
        (alipay_paid, {"total_amount": "12.345"}),
        (alipay_paid, {"total_amount": "1e3"}),
        (alipay_paid, {"total_amount": "-5.00"}),
        (unionpay_paid, {"txnAmt": "123.00"}),
    ],
    ids=["three-decimals", "exponent", "negative", "yuan-in-a-fen-field"],
)
async def test_amount_in_the_wrong_unit_or_shape_is_refused(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    build: Callable[..., SignedCallback],
    overrides: dict[str, str],
) -> None:
    """A correctly signed but unreadable amount is bad_amount, never guessed."""
    callback = build(channel_keys, new_order_id(), overrides=overrides)

    status, _body = await _post(client, callback)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["bad_amount"]
    assert producer.on(CALLBACKS) == []


@pytest.mark.parametrize(
    "amount",
    [
        {"total": "123.00", "payer_total": "123.00", "currency": "CNY"},
        {"total": 123.0, "payer_total": 123.0, "currency": "CNY"},
        {"total": True, "payer_total": 1, "currency": "CNY"},
    ],
    ids=["yuan-string", "float", "boolean"],
)
async def test_wechat_amount_must_be_integer_fen(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    amount: dict[str, Any],
) -> None:
    """WeChat Pay amounts are JSON integers of fen; anything else is refused."""
    callback = wechat_paid(channel_keys, new_order_id(), amount=amount)

    status, _body = await _post(client, callback)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["bad_amount"]


async def test_a_field_sent_twice_is_refused(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A form that would parse into a list is duplicate_field, never one pick."""
    callback = alipay_paid(channel_keys, new_order_id())
    doubled = dataclasses.replace(
        callback, body=callback.body + b"&out_trade_no=" + new_order_id().encode()
    )

    status, _body = await _post(client, doubled)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["duplicate_field"]


async def test_zero_order_total_is_refused_as_invalid_record(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A signed ``0.00`` total cannot be a payment the flow could receipt."""
    callback = alipay_paid(
        channel_keys,
        new_order_id(),
        overrides={"total_amount": "0.00", "receipt_amount": "0.00"},
    )

    status, _body = await _post(client, callback)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["invalid_record"]


async def test_notification_for_another_merchant_is_refused(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A valid UnionPay signature for someone else's merchant id is refused."""
    callback = unionpay_paid(
        channel_keys, new_order_id(), overrides={"merId": "777290058100000"}
    )

    status, _body = await _post(client, callback)

    assert status == 400
    assert [r["reason"] for r in _rejected(producer)] == ["wrong_merchant"]


async def test_oversized_body_is_refused_unread(
    client: Client, producer: FakeProducer, settings: Settings
) -> None:
    """A body over the limit is 413 and recorded without the body."""
    body = b"a=" + b"x" * settings.ingress_max_body_bytes

    async with client.post(
        "/callbacks/alipay", data=body, headers={"Content-Type": "text/plain"}
    ) as resp:
        status, reply = resp.status, await resp.read()

    assert (status, reply) == (413, b"fail")
    [refusal] = _rejected(producer)
    assert refusal["reason"] == "oversized_body"
    assert refusal["body"] is None
    assert refusal["body_sha256"] is None
    assert refusal["body_length"] == len(body)
    assert producer.on(CALLBACKS) == []


async def test_oversized_chunked_body_is_cut_off(
    client: Client, producer: FakeProducer, settings: Settings
) -> None:
    """Without a Content-Length the body is read only up to the limit."""
    limit = settings.ingress_max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * (limit // 2)

    async with client.post("/callbacks/unionpay", data=chunks()) as resp:
        assert resp.status == 413

    [refusal] = _rejected(producer)
    assert refusal["reason"] == "oversized_body"
    assert limit < refusal["body_length"] <= limit + 1


@pytest.mark.parametrize(
    ("build", "body"),
    [
        (alipay_paid, b"fail"),
        (wechat_paid, b'{"code": "FAIL", "message": "unavailable"}'),
        (unionpay_paid, b"fail"),
    ],
    ids=["alipay", "wechat", "unionpay"],
)
async def test_kafka_down_means_failure_so_the_channel_resends(
    client: Client,
    producer: FakeProducer,
    channel_keys: ChannelKeys,
    build: Callable[..., SignedCallback],
    body: bytes,
) -> None:
    """No acknowledgement from the broker, no success reply: 503."""
    producer.failure = KafkaConnectionError("broker down")

    answer = await _post(client, build(channel_keys, new_order_id()))

    assert answer == (503, body)
    assert producer.sent == []


async def test_refusal_that_cannot_be_recorded_is_a_503(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A refusal must leave a trace; without Kafka the channel resends."""
    producer.failure = KafkaConnectionError("broker down")
    callback = alipay_paid(channel_keys, new_order_id(), signed_by_app_key=True)

    answer = await _post(client, callback)

    assert answer == (503, b"fail")


async def test_broker_that_never_answers_times_out_to_503(
    settings: Settings, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """A hung send is given up after the publish timeout, never acknowledged."""
    producer.hang = True
    verifier = payments.load_verifier(settings.channel_keys_dir)
    ingress = payments.CallbackIngress(
        cast(AIOKafkaProducer, producer), settings, verifier, publish_timeout_s=0.2
    )
    app = web.Application()
    app.router.add_post("/callbacks/alipay", ingress.alipay)

    async with TestClient(TestServer(app)) as test_client:
        started = time.monotonic()
        answer = await _post(test_client, alipay_paid(channel_keys, new_order_id()))
        elapsed = time.monotonic() - started

    assert answer == (503, b"fail")
    assert elapsed < 2.0


async def test_missing_channel_keys_make_every_callback_a_503(
    settings: Settings, producer: FakeProducer, channel_keys: ChannelKeys, tmp_path: Any
) -> None:
    """Without verification material nothing is accepted or refused."""
    empty = settings.model_copy(update={"channel_keys_dir": tmp_path / "absent"})
    async with TestClient(TestServer(_app(empty, producer))) as test_client:
        status, _body = await _post(
            test_client, wechat_paid(channel_keys, new_order_id())
        )

    assert status == 503
    assert producer.sent == []


async def test_logs_carry_no_value_from_the_callback(
    client: Client, producer: FakeProducer, channel_keys: ChannelKeys
) -> None:
    """Order ids, amounts and signatures stay out of every log line."""
    accepted = alipay_paid(channel_keys, new_order_id(), 98_765)
    refused = reserialised(wechat_paid(channel_keys, new_order_id(), 45_678))

    with capture_logs() as lines:
        await _post(client, accepted)
        await _post(client, refused)

    text = repr(lines)
    assert [line["outcome"] for line in lines] == ["published", "rejected"]
    for value in (
        accepted.order_id,
        refused.order_id,
        accepted.notify_id,
        refused.headers["Wechatpay-Signature"],
        "987.65",
        "45678",
    ):
        assert value not in text
