"""Build and run the HTTP service.

``start_ingress`` starts it inside a running event loop (the demo and the
tests use this); ``serve`` runs it as the ``edustream ingress`` process.
Route modules that are not installed yet are skipped, so the service always
starts with whatever views exist.

With ``settings.ingress_processes`` above one, ``serve`` also starts that
many less one helper processes, each a full copy of the service with its
own producer and Redis client, and every process binds the same port with
``SO_REUSEPORT``: the kernel spreads new connections over them. A process
binds only once its producer and Redis are up, so whichever accepts a
connection is ready to publish. Helpers stop with the first process, and
die with it if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import multiprocessing
import signal
from contextlib import AsyncExitStack
from multiprocessing.process import BaseProcess

from aiohttp import web
from aiokafka import AIOKafkaProducer

from edustream import logs
from edustream.errors import ConfigError
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
    *,
    reuse_port: bool = False,
) -> str:
    """Start the service in this loop; returns its base URL.

    ``reuse_port`` lets other processes bind the same port (``serve``).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks="all")
    await producer.start()
    stack.push_async_callback(producer.stop)
    client = async_client(redis_url)
    stack.push_async_callback(client.aclose)
    app = build_app(Context(settings, producer, client))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(
        runner, settings.ingress_host, port, reuse_port=reuse_port or None
    )
    await site.start()
    # With port 0 the system picks one; the runner knows which.
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{settings.ingress_host}:{bound}"
    log.info("http_started", url=url)
    return url


async def serve(settings: Settings, bootstrap: str, redis_url: str) -> None:
    """Run the service until cancelled (Ctrl-C), in as many processes as set.

    Raises ``ConfigError`` for several processes without a fixed port: each
    would bind a port of its own.
    """
    helpers = settings.ingress_processes - 1
    if helpers > 0 and settings.ingress_port == 0:
        raise ConfigError("ingress_processes above 1 needs a fixed ingress_port")
    async with AsyncExitStack() as stack:
        if helpers > 0:
            started = _start_helpers(helpers, settings, bootstrap, redis_url)
            stack.callback(_stop_helpers, started)
        await start_ingress(
            stack,
            settings,
            bootstrap,
            redis_url,
            settings.ingress_port,
            reuse_port=helpers > 0,
        )
        await asyncio.Event().wait()


# Spawned, not forked: a fork would copy this process's running event loop
# and its open broker and Redis connections.
_SPAWN = multiprocessing.get_context("spawn")
_PR_SET_PDEATHSIG = 1
HELPER_STOP_S = 10.0


def _start_helpers(
    count: int, settings: Settings, bootstrap: str, redis_url: str
) -> list[BaseProcess]:
    helpers: list[BaseProcess] = [
        _SPAWN.Process(
            target=_helper_main,
            args=(settings, bootstrap, redis_url),
            name=f"edustream-ingress-{index + 1}",
            daemon=True,
        )
        for index in range(count)
    ]
    for helper in helpers:
        helper.start()
    log.info("http_helpers_started", helpers=count)
    return helpers


def _stop_helpers(helpers: list[BaseProcess]) -> None:
    for helper in helpers:
        helper.terminate()
    for helper in helpers:
        helper.join(HELPER_STOP_S)
        if helper.is_alive():
            helper.kill()
            helper.join()


def _helper_main(settings: Settings, bootstrap: str, redis_url: str) -> None:
    """One helper process: the service on the shared port until SIGTERM."""
    # A SIGTERM when the first process dies, even by kill -9 (Linux).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # Ctrl-C reaches the whole process group; the first process stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(_helper_serve(settings, bootstrap, redis_url))


async def _helper_serve(settings: Settings, bootstrap: str, redis_url: str) -> None:
    task = asyncio.create_task(_serve_shared(settings, bootstrap, redis_url))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _serve_shared(settings: Settings, bootstrap: str, redis_url: str) -> None:
    async with AsyncExitStack() as stack:
        await start_ingress(
            stack,
            settings,
            bootstrap,
            redis_url,
            settings.ingress_port,
            reuse_port=True,
        )
        await asyncio.Event().wait()
