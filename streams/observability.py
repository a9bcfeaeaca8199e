"""The worker's metrics and health endpoints, on Faust's web server.

Duties:

- serve ``GET /metrics`` for Prometheus: the flows' counters and latency
  histogram (``edustream.metrics``) and Faust's own sensor metrics
  (``faust.sensors.prometheus``, prefixed ``faust_``), both from the
  default registry;
- serve ``GET /healthz`` (liveness): 200 while the app runs and has not
  crashed, so an orchestrator restarts a wedged or crashed worker;
- serve ``GET /readyz`` (readiness): 200 only once the app has started,
  finished its rebalance and recovered its tables from their changelogs,
  so nothing routes work to a worker whose state is still incomplete;
- judge both from a plain snapshot of the app (``read_state``,
  ``liveness``, ``readiness``), which tests can build by hand.

Importing this module installs the pages on the worker's app when
``settings.worker_web_port`` is above zero (Faust's web server is off
otherwise), the same way importing a flow module registers its agents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

import faust
from faust import web
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.tables.manager import TableManager
from prometheus_client import REGISTRY, CollectorRegistry

from edustream.logs import get_logger
from edustream.settings import Settings, get_settings
from streams.app import app

log = get_logger(component="worker")

# Faust's sensor names its metrics after the app by default; its app id is
# "edustream", which would mix Faust's metrics into our own edustream_*
# namespace.
FAUST_METRICS_PREFIX = "faust"


@dataclass(frozen=True, slots=True)
class WorkerState:
    """What health and readiness are judged on, read from the Faust app."""

    started: bool
    crashed: bool
    stopping: bool
    rebalancing: bool
    in_recovery: bool
    recovered: bool


def read_state(faust_app: faust.App) -> WorkerState:
    """Take the app's current state."""
    # The interface type omits ``recovery``; the one implementation has it.
    recovery = cast(TableManager, faust_app.tables).recovery
    return WorkerState(
        started=faust_app.started,
        crashed=faust_app.crashed,
        stopping=faust_app.should_stop,
        rebalancing=faust_app.rebalancing,
        in_recovery=faust_app.in_recovery or recovery.in_recovery,
        recovered=recovery.completed.is_set(),
    )


def liveness(state: WorkerState) -> list[str]:
    """Reasons the worker is not alive; empty when it is."""
    reasons = []
    if state.crashed:
        reasons.append("crashed")
    elif state.stopping:
        reasons.append("stopping")
    return reasons


def readiness(state: WorkerState) -> list[str]:
    """Reasons the worker is not ready for work; empty when it is."""
    reasons = liveness(state)
    if not state.started:
        reasons.append("starting")
    if state.rebalancing:
        reasons.append("rebalancing")
    if state.in_recovery or not state.recovered:
        reasons.append("recovering tables")
    return reasons


def install(
    faust_app: faust.App,
    settings: Settings,
    registry: CollectorRegistry = REGISTRY,
) -> bool:
    """Add /metrics, /healthz and /readyz to the app; False if its web is off."""
    if settings.worker_web_port <= 0:
        return False

    setup_prometheus_sensors(
        faust_app,
        pattern="/metrics",
        registry=registry,
        name_prefix=FAUST_METRICS_PREFIX,
    )
    faust_app.page("/healthz")(_probe_handler(faust_app, liveness))
    faust_app.page("/readyz")(_probe_handler(faust_app, readiness))
    log.info("worker_probes_installed", port=settings.worker_web_port)
    return True


_Judge = Callable[[WorkerState], list[str]]
_Handler = Callable[[web.View, web.Request], Awaitable[web.Response]]


def _probe_handler(faust_app: faust.App, judge: _Judge) -> _Handler:
    async def probe(view: web.View, _request: web.Request) -> web.Response:
        reasons = judge(read_state(faust_app))
        body = {"ok": not reasons, "reasons": reasons}
        return view.json(body, status=200 if not reasons else 503)

    return probe


install(app, get_settings())
