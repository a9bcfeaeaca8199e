"""Headless Chromium driven over the DevTools protocol, for dashboard tests.

A small client: start Debian's ``chromium`` with a debugging port, attach to
its page over a websocket (aiohttp's client), then navigate, evaluate
JavaScript and capture screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp

from infra.broker import free_port

_START_TIMEOUT_S = 20.0
_ANSWER_TIMEOUT_S = 20.0


def chromium_binary() -> str | None:
    """Path of the chromium binary, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless browser with one page."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary = binary
        self._workdir = workdir
        self._proc: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0

    async def __aenter__(self) -> Chromium:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the browser and attach to its first page."""
        port = free_port()
        log = (self._workdir / "chromium.log").open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            self._binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--window-size=1280,1400",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={self._workdir / 'profile'}",
            "about:blank",
            stdout=log,
            stderr=log,
        )
        log.close()
        self._session = aiohttp.ClientSession()
        try:
            page = await self._first_page(port)
            self._ws = await self._session.ws_connect(
                page["webSocketDebuggerUrl"], max_msg_size=0
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the connection and end the browser."""
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()

    async def navigate(self, url: str) -> None:
        """Open url and wait until the document has loaded."""
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Wait until the expression is truthy in the page; return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {expression}")
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page."""
        result = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(result["data"]))
        return path

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result."""
        assert self._ws is not None, "browser not started"
        self._next_id += 1
        command_id = self._next_id
        await self._ws.send_json({"id": command_id, "method": method, "params": params})
        while True:
            message = await self._ws.receive_json(timeout=_ANSWER_TIMEOUT_S)
            if message.get("id") != command_id:
                continue  # an event, or an answer to an abandoned command
            if "error" in message:
                raise RuntimeError(f"{method} failed: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    async def _first_page(self, port: int) -> dict[str, Any]:
        assert self._session is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with self._session.get(
                    f"http://127.0.0.1:{port}/json/list"
                ) as response:
                    targets: list[dict[str, Any]] = await response.json()
                    pages = [t for t in targets if t.get("type") == "page"]
                    if pages:
                        return pages[0]
            await asyncio.sleep(0.1)
        raise TimeoutError("chromium did not open its debugging port")
