"""The lag dashboard in headless Chromium, fed by a scripted source.

No broker here: the source replays offsets that make a group stop and
recover, so the page's rendering is checked in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.lag.flows import FlowTopics
from consumers.lag.offsets import OffsetSnapshot
from consumers.lag.service import LagService
from consumers.lag.web import start_web
from tests.e2e.chromium import Chromium, chromium_binary

pytestmark = pytest.mark.browser

TOPIC = "growth.scans"
FLOWS = [FlowTopics("growth", (TOPIC,), ("growth.statements",), "growth.dead")]
# A name that would run script if the page inserted it as HTML.
HOSTILE = '<img src=x onerror="document.body.dataset.owned=1">'


class PlayedSource:
    """Offsets the test moves on: commits advance only while ``consuming``."""

    def __init__(self) -> None:
        self.consuming = True
        self.log_end = 0
        self.committed = 0

    async def read(self) -> OffsetSnapshot:
        """The log grows 5 records a poll; the commit keeps up while consuming."""
        self.log_end += 5
        if self.consuming:
            self.committed = self.log_end
        groups = {
            "notify": {(TOPIC, 0): self.committed},
            HOSTILE: {(TOPIC, 0): self.log_end},
        }
        return OffsetSnapshot(
            datetime.now(UTC),
            {(TOPIC, 0): self.log_end, ("growth.dead", 0): 7},
            groups,
        )


@contextlib.asynccontextmanager
async def served(source: PlayedSource) -> AsyncIterator[str]:
    """The monitor polling the source every 0.2 s, served on a free port."""
    async with AsyncExitStack() as stack:
        service = LagService(source, poll_interval_s=0.2, window_size=3, flows=FLOWS)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))

        async def halt() -> None:
            stop.set()
            await task

        stack.push_async_callback(halt)
        yield await start_web(stack, service, "127.0.0.1", 0)


def row_status(group: str) -> str:
    """JavaScript: the status a group's row shows."""
    return (
        "Array.from(document.querySelectorAll('#groups tr[data-group]'))"
        f".find((row) => row.dataset.group === {group!r})?.dataset.status"
    )


async def test_dashboard_shows_stop_then_ok(tmp_path: Path) -> None:
    """The group row turns STOP (red) when commits halt, then OK when they resume."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    source = PlayedSource()

    async with served(source) as url, Chromium(binary, tmp_path) as page:
        await page.navigate(url + "/")
        await page.wait_for(f"{row_status('notify')} === 'OK'")
        source.consuming = False
        await page.wait_for(f"{row_status('notify')} === 'STOP'")
        colour = await page.evaluate(
            "getComputedStyle(document.querySelector("
            "'#groups tr[data-status=\"STOP\"] .badge')).backgroundColor"
        )
        lines = await page.evaluate(
            "document.querySelectorAll('#charts .chart[data-group=\"notify\"] path')"
            ".length"
        )
        dead = await page.evaluate(
            "document.querySelector('[data-flow=\"growth\"] [data-dead-letters]')"
            ".dataset.deadLetters"
        )
        await page.screenshot(tmp_path / "stopped.png")

        source.consuming = True
        await page.wait_for(f"{row_status('notify')} === 'OK'")
        await page.screenshot(tmp_path / "recovered.png")
        hostile_shown = await page.evaluate(f"{row_status(HOSTILE)} !== undefined")
        owned = await page.evaluate("document.body.dataset.owned === '1'")

    assert colour == "rgb(198, 40, 40)"
    assert lines >= 1
    assert dead == "7"
    assert hostile_shown is True
    assert owned is False
    assert (tmp_path / "stopped.png").stat().st_size > 10_000
    assert (tmp_path / "recovered.png").stat().st_size > 10_000
