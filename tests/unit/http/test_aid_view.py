"""``GET /aid/figures`` and ``/aid/figures.html``: the read model's aggregates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from consumers.aid_figures import PREFIX, AidFigures
from edustream.aid.vocabulary import Outcome
from edustream.http import aid as aid_view
from edustream.http.context import Context
from edustream.settings import get_settings
from infra.broker import free_port
from infra.redis import async_client
from tests.unit.consumers.aid_records import (
    V1,
    closure,
    delivered,
    grant,
    offer,
)

Client = TestClient[web.Request, web.Application]
# The view reads the default prefix, so these tests keep to a Redis database
# of their own and empty it around each test.
TEST_DB = 15


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of a database only these tests use, emptied before and after."""
    client = async_client(redis_url.rsplit("/", 1)[0] + f"/{TEST_DB}")
    await _empty(client)
    yield client
    await _empty(client)
    await client.aclose()


async def _empty(client: Redis) -> None:
    keys = [key async for key in client.scan_iter(f"{PREFIX}:*")]
    if keys:
        await client.delete(*keys)


async def _client(redis: Redis) -> Client:
    app = web.Application()
    context = Context(get_settings(), cast(AIOKafkaProducer, None), redis)
    aid_view.routes(app, context)
    return TestClient(TestServer(app))


@pytest.fixture
async def client(redis: Redis) -> AsyncIterator[Client]:
    """A test client of an app with only the aid views, over seeded figures."""
    figures = AidFigures(redis)
    tricky = offer(1, student="stu_x", school="<SCH&2>", district="310115")
    for record in (V1, grant(V1), tricky, closure(tricky, Outcome.EXPIRED)):
        await figures.handle(delivered(record))
    async with await _client(redis) as test_client:
        yield test_client


async def test_json_gives_city_districts_and_schools(client: Client) -> None:
    """The JSON document holds the city line and one row per district and school."""
    response = await client.get("/aid/figures")
    body = await response.json()

    assert response.status == 200
    assert body["city"]["summary"] == "2 districts, 2 schools, 1 students, 500 yuan"
    assert body["city"]["offers"] == 2
    assert body["city"]["amount_fen"] == 50_000
    assert [d["district_code"] for d in body["districts"]] == ["310104", "310115"]
    schools = {s["school_id"]: s for s in body["schools"]}
    assert schools["SCH1"]["accepted"] == 1
    assert schools["SCH1"]["students_aided"] == 1
    assert schools["<SCH&2>"]["expired"] == 1
    assert "stu_a" not in await response.text()


async def test_html_is_a_table_with_escaped_names(client: Client) -> None:
    """The HTML view draws both tables and escapes what schools are called."""
    response = await client.get("/aid/figures.html")
    text = await response.text()

    assert response.status == 200
    assert response.content_type == "text/html"
    assert text.count("<table>") == 2
    assert "&lt;SCH&amp;2&gt;" in text
    assert "<SCH&2>" not in text
    assert "2 districts, 2 schools, 1 students, 500 yuan" in text
    assert '<td class="n">500</td>' in text


@pytest.mark.parametrize("path", ["/aid/figures", "/aid/figures.html"])
async def test_redis_down_answers_503(path: str) -> None:
    """Without Redis the views say unavailable instead of failing."""
    down = async_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with await _client(down) as test_client:
            response = await test_client.get(path)
    finally:
        await down.aclose()

    assert response.status == 503
