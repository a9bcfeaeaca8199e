"""The worker's /metrics, /healthz and /readyz on Faust's web server."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry, Counter

from edustream.settings import Settings
from streams.app import make_app
from streams.observability import (
    WorkerState,
    install,
    liveness,
    read_state,
    readiness,
)

READY = WorkerState(
    started=True,
    crashed=False,
    stopping=False,
    rebalancing=False,
    in_recovery=False,
    recovered=True,
)


@pytest.mark.parametrize(
    ("changes", "alive", "ready"),
    [
        ({}, [], []),
        ({"started": False}, [], ["starting"]),
        ({"rebalancing": True}, [], ["rebalancing"]),
        ({"in_recovery": True}, [], ["recovering tables"]),
        ({"recovered": False}, [], ["recovering tables"]),
        ({"stopping": True}, ["stopping"], ["stopping"]),
        ({"crashed": True, "stopping": True}, ["crashed"], ["crashed"]),
    ],
)
def test_liveness_and_readiness_give_their_reasons(
    changes: dict[str, bool], alive: list[str], ready: list[str]
) -> None:
    """Each unhealthy state names why; a recovered running worker has none."""
    state = replace(READY, **changes)

    assert liveness(state) == alive
    assert readiness(state) == ready


def test_nothing_is_installed_while_the_web_server_is_off() -> None:
    """With worker_web_port 0 Faust serves no pages and install does nothing."""
    app = make_app(Settings(app_id="observability-off"))

    assert install(app, Settings(worker_web_port=0), CollectorRegistry()) is False
    assert app.conf.web_enabled is False


async def test_pages_answer_from_the_app_state() -> None:
    """A worker that has not started is alive, not ready, and serves metrics."""
    settings = Settings(app_id="observability-on", worker_web_port=16999)
    app = make_app(settings)
    registry = CollectorRegistry()
    flow_counter = Counter("edustream_test_events", "a flow counter", registry=registry)
    flow_counter.inc(3)

    assert install(app, settings, registry) is True
    views = app.web.views
    health = await views["/healthz"](make_mocked_request("GET", "/healthz"))
    ready = await views["/readyz"](make_mocked_request("GET", "/readyz"))
    metrics = await views["/metrics"](make_mocked_request("GET", "/metrics"))

    assert health.status == 200
    assert ready.status == 503
    assert json.loads(ready.body) == {
        "ok": False,
        "reasons": ["starting", "recovering tables"],
    }
    text = metrics.body.decode()
    assert "edustream_test_events_total 3.0" in text
    assert "faust_messages_received_total" in text


def test_state_is_read_from_faust() -> None:
    """A fresh app reads as not started and not yet recovered."""
    state = read_state(make_app(Settings(app_id="observability-state")))

    assert state == replace(READY, started=False, recovered=False)
