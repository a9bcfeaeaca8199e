"""A restarted embedded broker loses its memory; the worker must stop loudly."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from streams.watchdog import EXIT_BROKER_LOST
from tests.conftest import start_worker, stop_worker
from topics import CATALOGUE

pytestmark = pytest.mark.e2e


def test_worker_exits_with_a_clear_message_after_broker_restart(
    tmp_path: Path, redis_url: str
) -> None:
    """After the broker restarts empty, the worker exits non-zero and says why."""
    log_path = tmp_path / "worker.log"
    broker = EmbeddedBroker()
    broker.start()
    try:
        asyncio.run(
            apply_topics(
                broker.bootstrap, CATALOGUE.values(), get_settings().partitions, 1
            )
        )
        worker = start_worker(broker.bootstrap, redis_url, log_path)
        _wait_for_log(log_path, "worker_starting", worker)
        time.sleep(3)
        broker.stop()
        restarted = EmbeddedBroker(broker.port)
        restarted.start()
        try:
            code = worker.wait(timeout=120)
        finally:
            stop_worker(worker)
            restarted.stop()
    finally:
        broker.stop()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert code == EXIT_BROKER_LOST
    assert "broker_lost" in log
    assert "embedded broker restarted" in log


def _wait_for_log(path: Path, needle: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, path.read_text(errors="replace")
        time.sleep(0.2)
    raise AssertionError(f"{needle} not logged")
