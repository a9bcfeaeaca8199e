"""The growth report page, drawn by headless Chromium from the real flow.

A student visits one venue of each of the five educations; the visits go
through the broker and the worker, the read model keeps them in Redis, and
the HTTP view serves the report page to a browser that the portal's gateway
header signs in. The test then reads what the browser laid out: one bar per
education, in 德智体美劳 order, each carrying its minutes and drawn to
scale against the longest.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from edustream.http.server import start_ingress
from edustream.settings import get_settings
from tests.e2e.chromium import Chromium, chromium_binary
from tests.e2e.growth_world import MINUTE, World, caller, enrol, read_model, visit
from tests.e2e.helpers import Outputs, produce
from topics import growth

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

MINUTES = {
    "MORAL": 30,
    "INTELLECTUAL": 60,
    "PHYSICAL": 90,
    "AESTHETIC": 45,
    "LABOUR": 120,
}
# The chart's plot height in the page, for the longest bar.
PLOT_HEIGHT = 160.0

BARS = """
[...document.querySelectorAll('svg.chart rect.mark')].map(rect => {
  const box = rect.getBBox();
  return {
    category: rect.dataset.category,
    minutes: Number(rect.dataset.value),
    height: box.height,
    width: box.width,
    x: box.x,
    fill: getComputedStyle(rect).fill,
  };
})
"""


async def test_report_page_draws_the_five_educations_to_scale(
    bootstrap: str, redis_url: str, worker: object, tmp_path: Path
) -> None:
    """Chromium lays out five bars, one per education in 德智体美劳 order,
    each with the student's minutes and a height proportional to them."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")

    world = World()
    async with AsyncExitStack() as stack:
        out = await stack.enter_async_context(Outputs(bootstrap))
        await stack.enter_async_context(read_model(bootstrap, redis_url))
        base = await start_ingress(stack, get_settings(), bootstrap, redis_url)
        venues = [world.venue(c.lower(), c) for c in MINUTES]
        account = await enrol(bootstrap, out, world, venues)
        scans = [
            p
            for i, (category, minutes) in enumerate(MINUTES.items())
            for p in visit(
                account,
                world.venue_id(category.lower()),
                world.base + i * 20 * MINUTE,
                minutes,
            )
        ]
        await produce(bootstrap, scans)
        await out.wait_for(growth.STATEMENTS.name, 5, archive_account=account)

        page = await stack.enter_async_context(Chromium(binary, tmp_path))
        await page.send("Network.enable")
        await page.send("Network.setExtraHTTPHeaders", headers=caller(account))
        bars = await _bars_when_drawn(page, f"{base}/growth/{account}/report.html")
        await page.screenshot(tmp_path / "growth-report.png")

    assert [b["category"] for b in bars] == list(MINUTES)
    assert {b["category"]: b["minutes"] for b in bars} == MINUTES
    longest = max(MINUTES.values())
    for bar in bars:
        expected = bar["minutes"] / longest * PLOT_HEIGHT
        assert bar["height"] == pytest.approx(expected, abs=0.2), bar["category"]
        assert bar["width"] > 0
    assert len({b["fill"] for b in bars}) == 5
    assert [b["x"] for b in bars] == sorted(b["x"] for b in bars)


async def _bars_when_drawn(
    page: Chromium, url: str, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Reload the page until the read model has every visit, then read it."""
    deadline = time.monotonic() + timeout_s
    while True:
        await page.navigate(url)
        bars: list[dict[str, Any]] = await page.evaluate(BARS) or []
        total = sum(b["minutes"] for b in bars)
        if total == sum(MINUTES.values()) or time.monotonic() > deadline:
            return bars
        await asyncio.sleep(0.5)
