"""``edustream ingress``: run the HTTP service in the foreground.

The service takes the payment channels' callbacks and serves the bill
lookup, payment history and the other views (``edustream.http``). With
``KAFKA_BOOTSTRAP_SERVERS`` unset it starts the embedded broker and creates
the catalogue's topics on it first, as ``edustream worker`` does; Redis is
``REDIS_URL``, or the embedded fallback where that is allowed.

SIGINT and SIGTERM stop it in order: the listener closes, the producer
flushes what it holds, then the embedded broker (if any) stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from edustream import logs
from edustream.settings import Settings, get_settings

app = typer.Typer(add_completion=False)


@app.command()
def ingress(
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on; default EDUSTREAM_INGRESS_PORT."),
    ] = None,
) -> None:
    """Run the HTTP service: payment callbacks, bill lookup, history, health."""
    from infra.broker import kafka  # noqa: PLC0415 - keeps `--help` fast
    from infra.redis import ensure_redis  # noqa: PLC0415

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    if port is not None:
        settings = settings.model_copy(update={"ingress_port": port})

    redis_url = ensure_redis(settings.redis_url, settings.redis_embedded_fallback)
    cluster = settings.kafka_bootstrap_servers
    with kafka(cluster, settings.embedded_broker_port) as bootstrap:
        if not cluster:
            typer.echo(f"embedded broker at {bootstrap}", err=True)
            _create_topics(settings, bootstrap)
        asyncio.run(_serve_until_signalled(settings, bootstrap, redis_url))


def _create_topics(settings: Settings, bootstrap: str) -> None:
    """Give a fresh embedded broker the catalogue's topics."""
    from infra.provision import apply_topics  # noqa: PLC0415
    from topics import CATALOGUE  # noqa: PLC0415

    asyncio.run(
        apply_topics(
            bootstrap,
            CATALOGUE.values(),
            settings.partitions,
            settings.replication_factor,
        )
    )


async def _serve_until_signalled(
    settings: Settings, bootstrap: str, redis_url: str
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down in order."""
    from edustream.http.server import serve  # noqa: PLC0415

    task = asyncio.create_task(serve(settings, bootstrap, redis_url))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)

    with contextlib.suppress(asyncio.CancelledError):
        await task
