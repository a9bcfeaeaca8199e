"""``POST /bills/lookup``: ID number and name in, the child's open bills out."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from structlog.testing import capture_logs

from consumers.bills_lookup import BillsLookup
from edustream.billing.bills import Bill
from edustream.http import bills
from edustream.http.context import Context
from edustream.pseudonym import name_digest, normalise_name, pseudonymise
from edustream.settings import Settings
from infra.broker import free_port
from infra.redis import async_client
from tests.e2e.billing_records import bill_record, delivered, new_bill, random_id_number

Client = TestClient[web.Request, web.Application]
NAME = "欧阳·娜娜"


class Family:
    """One child's ID number, name, reference and bills, stored in Redis."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.id_number = random_id_number()
        self.name = NAME
        self.ref = pseudonymise(key, self.id_number)
        self.bills: list[Bill] = []

    async def publish(self, redis: Redis, bill: Bill, *, digest: bool = True) -> None:
        """Feed a bill (carrying the name digest unless told) to the read model."""
        item = delivered("bill", bill_record(bill))
        if digest:
            item.record["student_name_digest"] = name_digest(
                self.key, self.ref, self.name
            )
        await BillsLookup(redis).handle(item)
        self.bills.append(bill)


@pytest.fixture
def lookup_settings(settings: Settings) -> Settings:
    """Settings with a pseudonym key of this test only, so references are new."""
    return settings.model_copy(update={"pseudonym_key": secrets.token_hex(16)})


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis."""
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def family(lookup_settings: Settings, redis: Redis) -> AsyncIterator[Family]:
    """A child with two open bills; its read-model keys are removed after."""
    found = Family(lookup_settings.pseudonym_key.encode())
    await found.publish(redis, new_bill(found.ref, total_items=(250_000, 80_000)))
    await found.publish(
        redis, new_bill(found.ref, total_items=(3_500,), term="2025-2026-2")
    )
    yield found
    keys = [f"billing:lookup:bill:{bill.bill_id}" for bill in found.bills]
    keys += [
        f"billing:lookup:student:{found.ref}",
        f"billing:lookup:student:{found.ref}:bills",
    ]
    await redis.delete(*keys)


def _app(settings: Settings, redis: Redis) -> web.Application:
    app = web.Application()
    bills.routes(app, Context(settings, cast(AIOKafkaProducer, None), redis))
    return app


@pytest.fixture
async def client(lookup_settings: Settings, redis: Redis) -> AsyncIterator[Client]:
    """A test client of an app with only the lookup endpoint."""
    async with TestClient(TestServer(_app(lookup_settings, redis))) as test_client:
        yield test_client


async def _lookup(client: Client, payload: Any) -> tuple[int, dict[str, Any]]:
    async with client.post("/bills/lookup", json=payload) as resp:
        return resp.status, await resp.json()


async def test_id_number_and_name_find_the_open_bills(
    client: Client, family: Family
) -> None:
    """The answer lists both bills with items, totals and school."""
    status, answer = await _lookup(
        client, {"id_number": family.id_number, "name": family.name}
    )

    assert status == 200
    assert answer["student_ref"] == family.ref
    assert [b["bill_id"] for b in answer["bills"]] == [b.bill_id for b in family.bills]
    assert [b["total_fen"] for b in answer["bills"]] == [330_000, 3_500]
    assert answer["total_fen"] == 333_500
    assert answer["bills"][0]["school_id"] == "S310104001"
    assert [i["kind"] for i in answer["bills"][0]["items"]] == [
        "TUITION",
        "ACCOMMODATION",
    ]


@pytest.mark.parametrize(
    "typed",
    ["欧阳·娜娜", " 欧阳 · 娜娜 ", "欧阳•娜娜", "欧阳・娜娜", "欧阳.娜娜"],
    ids=["exact", "spaces", "bullet", "katakana-dot", "full-stop"],
)
async def test_the_name_is_compared_after_normalising(
    client: Client, family: Family, typed: str
) -> None:
    """Spaces and whichever separator dot the keyboard gave do not matter."""
    status, _answer = await _lookup(
        client, {"id_number": family.id_number, "name": typed}
    )

    assert status == 200


async def test_registry_number_and_lower_case_x_find_the_same_child(
    client: Client, family: Family
) -> None:
    """``G`` plus the ID number, or a lower-case check ``x``, is the same person."""
    status, answer = await _lookup(
        client, {"id_number": "G" + family.id_number.lower(), "name": family.name}
    )

    assert status == 200
    assert answer["student_ref"] == family.ref


@pytest.mark.parametrize(
    "change",
    ["wrong-name", "unknown-id"],
)
async def test_a_wrong_name_and_an_unknown_id_look_the_same(
    client: Client, family: Family, change: str
) -> None:
    """Both are 404 not_found, so the answer never confirms an ID number."""
    payload = {"id_number": family.id_number, "name": family.name}
    if change == "wrong-name":
        payload["name"] = "欧阳·娜"
    else:
        payload["id_number"] = random_id_number()

    status, answer = await _lookup(client, payload)

    assert (status, answer) == (404, {"error": "not_found"})


async def test_a_child_whose_bills_carry_no_name_digest_is_not_found(
    client: Client, lookup_settings: Settings, redis: Redis
) -> None:
    """Without a digest to check against, the lookup refuses rather than guess."""
    child = Family(lookup_settings.pseudonym_key.encode())
    bill = new_bill(child.ref)
    await child.publish(redis, bill, digest=False)

    try:
        status, _answer = await _lookup(
            client, {"id_number": child.id_number, "name": child.name}
        )
    finally:
        await redis.delete(
            f"billing:lookup:bill:{bill.bill_id}",
            f"billing:lookup:student:{child.ref}:bills",
        )

    assert status == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"id_number": "34052419800101001X"[:-1] + "3", "name": NAME},
        {"id_number": "12345", "name": NAME},
        {"id_number": "34052419800101001X", "name": ""},
        {"id_number": "34052419800101001X", "name": "名" * 65},
        {"id_number": 34052419800101001, "name": NAME},
        {"name": NAME},
        ["34052419800101001X", NAME],
    ],
    ids=["bad-check", "short", "empty-name", "long-name", "number", "missing", "list"],
)
async def test_unusable_queries_are_400(client: Client, payload: Any) -> None:
    """A malformed body is refused without touching the read model."""
    status, answer = await _lookup(client, payload)

    assert (status, answer) == (400, {"error": "invalid_request"})


async def test_a_body_that_is_not_json_is_400(client: Client) -> None:
    """Form data or garbage is invalid_request too."""
    async with client.post("/bills/lookup", data=b"id_number=1&name=2") as resp:
        assert resp.status == 400


async def test_redis_down_is_503(lookup_settings: Settings) -> None:
    """An unreachable read model is unavailable, not not-found."""
    dead = async_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with TestClient(TestServer(_app(lookup_settings, dead))) as test_client:
            status, answer = await _lookup(
                test_client, {"id_number": random_id_number(), "name": NAME}
            )
    finally:
        await dead.aclose()

    assert (status, answer) == (503, {"error": "unavailable"})


async def test_logs_never_hold_the_id_number_or_the_name(
    client: Client, family: Family
) -> None:
    """Found, not found and invalid all log without the query's values."""
    with capture_logs() as lines:
        await _lookup(client, {"id_number": family.id_number, "name": family.name})
        await _lookup(client, {"id_number": family.id_number, "name": "别人"})
        await _lookup(client, {"id_number": family.id_number[:10], "name": family.name})

    assert [line["outcome"] for line in lines] == [
        "found",
        "not_found",
        "invalid_request",
    ]
    text = repr(lines)
    for secret in (
        family.id_number,
        family.id_number[:10],
        family.name,
        "别人",
        "娜娜",
    ):
        assert secret not in text


def test_name_digest_is_bound_to_the_student() -> None:
    """One name gives unrelated digests for two children."""
    key = b"k" * 32

    first = name_digest(key, "stu_aaaa", NAME)
    second = name_digest(key, "stu_bbbb", NAME)

    assert first != second
    assert len(first) == 32
    assert name_digest(key, "stu_aaaa", " 欧阳•娜娜") == first
    assert normalise_name(" 欧阳 ．娜娜\u3000") == "欧阳·娜娜"
