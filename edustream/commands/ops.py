"""Operators' commands: ``edustream lag`` and ``edustream monitor``.

``lag`` prints every consumer group's lag like ``kafka-consumer-groups
--describe`` with a STATUS column. It either asks a running monitor
(``--url``), whose windows span minutes of polls, or polls the cluster
itself a few times: Burrow's rules need at least two commits to judge a
lagging partition, so a short local run shows ERR where the monitor would
already say WARN or STOP.

``monitor`` runs the poll loop, the dashboard, the JSON API and the
Prometheus endpoint in one process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Annotated, Any

import aiohttp
import typer

from edustream import logs
from edustream.errors import ConfigError, RetriableError
from edustream.settings import Settings, get_settings

app = typer.Typer()

# ANSI: erase the screen and move the cursor home, so --watch redraws in place.
_CLEAR_SCREEN = "\x1b[2J\x1b[H"


@app.command()
def lag(
    *,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON document.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh until Ctrl-C.")
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(help="Ask a running monitor (http://host:port) instead."),
    ] = None,
    polls: Annotated[
        int, typer.Option(min=1, help="Polls before the first report.")
    ] = 3,
    interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between polls or refreshes.")
    ] = 1.0,
    lagging: Annotated[
        bool, typer.Option("--lagging", help="Only partitions behind or not OK.")
    ] = False,
) -> None:
    """Print consumer group lag, time lag and Burrow status per partition."""
    settings = _settings()

    def show(document: dict[str, Any]) -> None:
        if watch and sys.stdout.isatty():
            typer.echo(_CLEAR_SCREEN, nl=False)
        if as_json:
            typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
        else:
            from consumers.lag.table import render  # noqa: PLC0415

            typer.echo(render(document, lagging_only=lagging), nl=False)

    if url:
        asyncio.run(_show_remote(url, show, watch=watch, interval=interval))
    else:
        bootstrap = _bootstrap(settings)
        asyncio.run(
            _show_local(
                settings, bootstrap, show, polls=polls, watch=watch, interval=interval
            )
        )


@app.command()
def monitor(
    port: Annotated[
        int | None, typer.Option(help="Port of the dashboard and /metrics.")
    ] = None,
) -> None:
    """Run the lag monitor: dashboard, /api/lag, /metrics, /healthz, /readyz."""
    from consumers.lag.web import run_monitor  # noqa: PLC0415

    settings = _settings()
    bootstrap = _bootstrap(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_monitor(settings, bootstrap, stop, port)

    asyncio.run(main())


def _settings() -> Settings:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings


def _bootstrap(settings: Settings) -> str:
    # An embedded broker started here would be empty: the groups worth
    # watching live on the cluster the worker uses.
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "set KAFKA_BOOTSTRAP_SERVERS to the cluster to watch, "
            "or pass --url of a running monitor"
        )
    return settings.kafka_bootstrap_servers


async def _show_local(
    settings: Settings,
    bootstrap: str,
    show: Any,
    *,
    polls: int,
    watch: bool,
    interval: float,
) -> None:
    from consumers.lag.offsets import OffsetReader  # noqa: PLC0415
    from consumers.lag.service import LagService  # noqa: PLC0415

    async with OffsetReader(bootstrap) as reader:
        service = LagService(
            reader,
            poll_interval_s=interval,
            window_size=settings.monitor_window_size,
            history_s=max(interval * 2, settings.monitor_history_s),
        )
        for remaining in range(polls, 0, -1):
            view = await service.poll()
            if remaining > 1:
                await asyncio.sleep(interval)
        show(view.to_dict())

        while watch:
            await asyncio.sleep(interval)
            show((await service.poll()).to_dict())


async def _show_remote(url: str, show: Any, *, watch: bool, interval: float) -> None:
    endpoint = url.rstrip("/") + "/api/lag"
    async with aiohttp.ClientSession() as session:
        show(await _fetch(session, endpoint))
        while watch:
            await asyncio.sleep(interval)
            show(await _fetch(session, endpoint))


async def _fetch(session: aiohttp.ClientSession, endpoint: str) -> dict[str, Any]:
    try:
        async with session.get(endpoint) as response:
            document: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RetriableError(
                    f"{endpoint} answered {response.status}: {document.get('error')}"
                )
            return document
    except aiohttp.ClientError as exc:
        raise RetriableError(f"cannot reach the monitor at {endpoint}") from exc
