"""``edustream aid report``: the figures as text or JSON, from Redis.

The command runs its own event loop, so the tests calling it are plain
functions; only the fixture that seeds Redis is asynchronous.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from consumers.aid_figures import PREFIX, AidFigures
from edustream.aid.vocabulary import Outcome
from edustream.cli import app as cli
from edustream.commands import aid as aid_commands
from edustream.settings import Settings, get_settings
from infra.broker import free_port
from infra.redis import async_client
from tests.unit.consumers.aid_records import V1, closure, delivered, grant, offer

# The command reads the default prefix, so these tests use a Redis database
# of their own and empty it around each test.
TEST_DB = 14


@pytest.fixture
def db_url(redis_url: str) -> str:
    """The URL of the database only these tests use."""
    return redis_url.rsplit("/", 1)[0] + f"/{TEST_DB}"


@pytest.fixture
async def seeded(db_url: str) -> AsyncIterator[Redis]:
    """Figures for two schools in two districts, removed afterwards."""
    client = async_client(db_url)
    await _empty(client)
    figures = AidFigures(client)
    declined = offer(1, student="stu_z", school="SCH2", district="310115")
    for record in (V1, grant(V1), declined, closure(declined, Outcome.DECLINED)):
        await figures.handle(delivered(record))
    yield client
    await _empty(client)
    await client.aclose()


async def _empty(client: Redis) -> None:
    keys = [key async for key in client.scan_iter(f"{PREFIX}:*")]
    if keys:
        await client.delete(*keys)


def _settings_at(url: str) -> Settings:
    return get_settings().model_copy(update={"redis_url": url})


def _run(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(aid_commands, "get_settings", lambda: _settings_at(url))
    result = CliRunner().invoke(cli, ["aid", "report", *args])
    return result.exit_code, result.output


def test_report_prints_districts_schools_and_the_city_line(
    seeded: Redis, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text report has a row per district and school and the city line."""
    code, output = _run(monkeypatch, db_url)
    lines = output.splitlines()

    assert code == 0
    assert lines[-1] == "2 districts, 2 schools, 1 students, 500 yuan"
    assert any(line.startswith("310104") and line.endswith("500") for line in lines)
    assert any(line.startswith("SCH2 SCH2 school") for line in lines)
    city = next(line for line in lines if line.startswith("city"))
    assert city.split()[1:] == ["2", "1", "1", "0", "0", "0", "1", "500"]


def test_report_json_is_the_same_figures(
    seeded: Redis, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--json`` prints one document with the city, districts and schools."""
    code, output = _run(monkeypatch, db_url, "--json")
    document = json.loads(output)

    assert code == 0
    assert document["city"]["students_aided"] == 1
    assert document["city"]["amount_yuan"] == "500"
    assert [s["school_id"] for s in document["schools"]] == ["SCH1", "SCH2"]
    assert document["schools"][1]["declined"] == 1


def test_report_refuses_without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nothing at REDIS_URL the command stops with a message, not a trace."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(aid_commands, "get_settings", lambda: _settings_at(url))

    result = CliRunner().invoke(cli, ["aid", "report"])

    assert result.exit_code != 0
    assert "Redis does not answer at" in str(result.exception)
