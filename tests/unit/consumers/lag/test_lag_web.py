"""The monitor's HTTP service: dashboard, JSON API, metrics and probes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumers.lag.flows import FlowTopics
from consumers.lag.offsets import OffsetSnapshot
from consumers.lag.service import LagService
from consumers.lag.web import DASHBOARD, build_app, monitor_registry

FLOWS = [FlowTopics("growth", ("growth.scans",), (), "dl")]


class NowSnapshot:
    """One group one record behind, observed now."""

    async def read(self) -> OffsetSnapshot:
        """Return the snapshot."""
        return OffsetSnapshot(
            datetime.now(UTC),
            {("growth.scans", 0): 8},
            {"edustream": {("growth.scans", 0): 7}},
        )


@pytest.fixture
async def service() -> LagService:
    """A service that has not polled yet."""
    return LagService(NowSnapshot(), poll_interval_s=1.0, flows=FLOWS)


@pytest.fixture
async def client(service: LagService) -> AsyncIterator[TestClient[Any, Any]]:
    """A test client of the monitor's app."""
    app = build_app(service, monitor_registry(service))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_api_waits_for_the_first_poll(client: TestClient[Any, Any]) -> None:
    """Before a poll succeeds the API and readiness answer 503."""
    lag = await client.get("/api/lag")
    ready = await client.get("/readyz")

    assert lag.status == 503
    assert (await lag.json()) == {"error": "no poll has succeeded yet"}
    assert ready.status == 503
    assert (await ready.json())["ready"] is False


async def test_api_serves_the_view_document(
    client: TestClient[Any, Any], service: LagService
) -> None:
    """After a poll GET /api/lag is the view's document, the CLI's --json."""
    view = await service.poll()

    response = await client.get("/api/lag")

    assert response.status == 200
    document = await response.json()
    assert document == view.to_dict()
    assert document["groups"][0]["group"] == "edustream"
    assert document["partitions"][0]["lag"] == 1


async def test_history_has_one_time_per_poll(
    client: TestClient[Any, Any], service: LagService
) -> None:
    """GET /api/history returns the aligned series."""
    await service.poll()

    document = await (await client.get("/api/history")).json()

    assert len(document["times"]) == 1
    assert document["groups"]["edustream"]["partitions"] == {"growth.scans/0": [1]}


async def test_metrics_are_prometheus_text(
    client: TestClient[Any, Any], service: LagService
) -> None:
    """GET /metrics serves the lag gauges and process metrics as text."""
    await service.poll()

    response = await client.get("/metrics")
    text = await response.text()

    assert response.headers["Content-Type"].startswith("text/plain")
    assert (
        'kafka_consumergroup_group_lag{group="edustream",partition="0",'
        'topic="growth.scans"} 1.0' in text
    )
    assert "process_cpu_seconds_total" in text


async def test_probes_follow_the_poll_loop(
    client: TestClient[Any, Any], service: LagService
) -> None:
    """Liveness needs the loop running; readiness a recent successful poll."""
    assert (await client.get("/healthz")).status == 503

    service.running = True
    await service.poll()

    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["ready"] is True


async def test_dashboard_is_self_contained(client: TestClient[Any, Any]) -> None:
    """The page loads nothing from another host: no CDN, no web fonts."""
    response = await client.get("/")
    html = await response.text()

    assert response.status == 200
    assert response.content_type == "text/html"
    assert html == DASHBOARD.read_text(encoding="utf-8")
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert external == []
    assert "@import" not in html
    # Only the SVG namespace URI names another host, and it is never fetched.
    hosts = set(re.findall(r"https?://([^/\"' ]+)", html))
    assert hosts == {"www.w3.org"}
    assert '"api/lag"' in html
