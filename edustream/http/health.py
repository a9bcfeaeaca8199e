"""Liveness and readiness of the HTTP service.

Duties:

- ``GET /healthz``: the process serves requests (liveness). It checks
  nothing else, so a broker outage never gets the process restarted;
- ``GET /readyz``: the service can do its work (readiness): the Kafka
  producer gets cluster metadata that lists the callback topics, and Redis
  answers ``PING``. 200 when both answer, 503 naming the one that does not.

Each check has its own short timeout and they run side by side, so a
readiness probe answers within ``CHECK_TIMEOUT_S`` whatever is down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from edustream.http.context import Context
from edustream.logs import get_logger
from topics import billing

log = get_logger(component="http")

CHECK_TIMEOUT_S = 2.0
_NEEDED_TOPICS = (billing.CALLBACKS.name, billing.REJECTED_CALLBACKS.name)


def routes(app: web.Application, ctx: Context) -> None:
    """Add ``/healthz`` and ``/readyz``."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        return await readiness(ctx.producer, ctx.redis)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def readiness(producer: AIOKafkaProducer, redis: Redis) -> web.Response:
    """Check Kafka and Redis together; 200 if both answer, else 503."""
    kafka_ok, redis_ok = await asyncio.gather(
        _within_timeout(kafka_answers(producer)),
        _within_timeout(redis_answers(redis)),
    )
    checks = {"kafka": _word(kafka_ok), "redis": _word(redis_ok)}
    ready = kafka_ok and redis_ok

    if not ready:
        log.warning("not_ready", **checks)
    body = {"status": "ready" if ready else "not_ready", **checks}
    return web.json_response(body, status=200 if ready else 503)


async def kafka_answers(producer: AIOKafkaProducer) -> bool:
    """Whether the cluster returns metadata that lists the callback topics."""
    try:
        metadata = await producer.client.fetch_all_metadata()
    except KafkaError:
        return False
    return set(_NEEDED_TOPICS) <= set(metadata.topics())


async def redis_answers(redis: Redis) -> bool:
    """Whether Redis answers ``PING``."""
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False


async def _within_timeout(check: Awaitable[bool]) -> bool:
    """A check that takes longer than ``CHECK_TIMEOUT_S`` counts as failed."""
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return False


def _word(ok: bool) -> str:
    return "ok" if ok else "unavailable"
