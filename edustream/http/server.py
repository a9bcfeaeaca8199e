"""Build and run the HTTP service.

``start_ingress`` starts it inside a running event loop (the demo and the
tests use this); ``serve`` runs it as the ``edustream ingress`` process.
Route modules that are not installed yet are skipped, so the service always
starts with whatever views exist.
"""

from __future__ import annotations

import asyncio
import importlib
from contextlib import AsyncExitStack

from aiohttp import web
from aiokafka import AIOKafkaProducer

from edustream.http.context import Context
from edustream.logs import get_logger
from edustream.settings import Settings
from infra.redis import async_client

log = get_logger(component="http")

ROUTE_MODULES = ("health", "payments", "bills", "history", "growth", "aid")


def build_app(ctx: Context) -> web.Application:
    """The aiohttp application with every route module's routes."""
    app = web.Application(client_max_size=ctx.settings.ingress_max_body_bytes)
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(f"edustream.http.{name}")
        except ModuleNotFoundError as missing:
            if missing.name != f"edustream.http.{name}":
                raise
            continue
        module.routes(app, ctx)
    return app


async def start_ingress(
    stack: AsyncExitStack,
    settings: Settings,
    bootstrap: str,
    redis_url: str,
    port: int = 0,
) -> str:
    """Start the service in this loop; returns its base URL."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    stack.push_async_callback(producer.stop)
    client = async_client(redis_url)
    stack.push_async_callback(client.aclose)
    app = build_app(Context(settings, producer, client))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, settings.ingress_host, port)
    await site.start()
    # With port 0 the system picks one; the runner knows which.
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{settings.ingress_host}:{bound}"
    log.info("http_started", url=url)
    return url


async def serve(settings: Settings, bootstrap: str, redis_url: str) -> None:
    """Run the service until cancelled (Ctrl-C)."""
    async with AsyncExitStack() as stack:
        await start_ingress(
            stack, settings, bootstrap, redis_url, settings.ingress_port
        )
        await asyncio.Event().wait()
