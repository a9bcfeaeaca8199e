"""The lag monitor's HTTP service: dashboard, JSON API, metrics and health.

Duties:

- serve the dashboard, a single self-contained page (``dashboard.html``:
  inline CSS, plain JavaScript and SVG, no CDN) so it works with no
  internet;
- serve ``GET /api/lag`` (the latest ``LagView`` document, the same one
  ``edustream lag --json`` prints) and ``GET /api/history`` (the series the
  charts draw);
- serve ``GET /metrics`` for Prometheus from the monitor's own registry;
- serve ``GET /healthz`` (the poll loop runs) and ``GET /readyz`` (a poll
  succeeded recently);
- run the whole monitor in one call (``run_monitor``) for
  ``edustream monitor``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.process_collector import ProcessCollector

from consumers.lag.exporter import LagCollector
from consumers.lag.offsets import OffsetReader
from consumers.lag.service import LagService
from edustream.logs import get_logger
from edustream.settings import Settings

log = get_logger(component="lag")

DASHBOARD = Path(__file__).with_name("dashboard.html")

_SERVICE = web.AppKey("service", LagService)
_REGISTRY = web.AppKey("registry", CollectorRegistry)


def monitor_registry(service: LagService) -> CollectorRegistry:
    """A registry with the lag metrics and this process's own."""
    registry = CollectorRegistry()
    registry.register(LagCollector(service))
    ProcessCollector(registry=registry)
    return registry


def build_app(service: LagService, registry: CollectorRegistry) -> web.Application:
    """The aiohttp application serving the monitor's pages."""
    app = web.Application()
    app[_SERVICE] = service
    app[_REGISTRY] = registry
    app.router.add_get("/", _dashboard)
    app.router.add_get("/api/lag", _lag)
    app.router.add_get("/api/history", _history)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


async def start_web(
    stack: AsyncExitStack, service: LagService, host: str, port: int
) -> str:
    """Serve the monitor in this loop until the stack closes; return its URL."""
    app = build_app(service, monitor_registry(service))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    await site.start()

    # Port 0 asks the system for a free port; the runner knows which one.
    bound = runner.addresses[0][1] if runner.addresses else port
    url = f"http://{host}:{bound}"
    log.info("lag_web_started", url=url)
    return url


async def run_monitor(
    settings: Settings, bootstrap: str, stop: asyncio.Event, port: int | None = None
) -> None:
    """Poll, serve the dashboard and metrics until ``stop`` is set."""
    async with AsyncExitStack() as stack:
        reader = OffsetReader(bootstrap)
        await reader.start()
        stack.push_async_callback(reader.stop)
        service = LagService(
            reader,
            poll_interval_s=settings.monitor_poll_interval_s,
            window_size=settings.monitor_window_size,
            history_s=settings.monitor_history_s,
        )
        await start_web(
            stack,
            service,
            settings.monitor_host,
            settings.monitor_port if port is None else port,
        )
        await service.run(stop)


async def _dashboard(_request: web.Request) -> web.StreamResponse:
    return web.FileResponse(DASHBOARD, headers={"Cache-Control": "no-cache"})


async def _lag(request: web.Request) -> web.Response:
    view = request.app[_SERVICE].view
    if view is None:
        return web.json_response({"error": "no poll has succeeded yet"}, status=503)
    return web.json_response(view.to_dict())


async def _history(request: web.Request) -> web.Response:
    return web.json_response(request.app[_SERVICE].history.to_dict())


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    alive = service.running
    return web.json_response(
        {"status": "ok" if alive else "stopped", "polls": service.polls},
        status=200 if alive else 503,
    )


async def _readyz(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    ready = service.is_fresh(datetime.now(UTC))
    last = service.last_success
    return web.json_response(
        {
            "ready": ready,
            "last_poll": None if last is None else last.isoformat(),
            "failures": service.failures,
        },
        status=200 if ready else 503,
    )
