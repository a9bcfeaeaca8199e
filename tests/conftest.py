"""Shared fixtures: the real embedded broker, real Redis, a real worker.

The broker and the worker are started once per test session; tests keep out
of each other's way by using their own ids. Threads and tasks a test leaks
make it fail (see ``no_leaked_tasks``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from infra.redis import ensure_redis
from topics import CATALOGUE


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    """Undo any logging configuration a test (or a CLI it ran) made."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A provisioned broker: the cluster in KAFKA_BOOTSTRAP_SERVERS, or our own."""
    settings = get_settings()
    if settings.kafka_bootstrap_servers:
        _provision(settings.kafka_bootstrap_servers)
        yield settings.kafka_bootstrap_servers
        return
    with EmbeddedBroker() as broker:
        _provision(broker.bootstrap)
        yield broker.bootstrap


def _provision(bootstrap: str) -> None:
    settings = get_settings()
    result = asyncio.run(
        apply_topics(bootstrap, CATALOGUE.values(), settings.partitions, 1)
    )
    assert result.ok, result.conflicts


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Real Redis at REDIS_URL, or the embedded fallback."""
    return ensure_redis(get_settings().redis_url, embedded_fallback=True)


@pytest.fixture(scope="session")
def worker(
    bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A real worker process for the whole session; yields its log path."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = start_worker(bootstrap, redis_url, log_path)
    yield log_path
    stop_worker(proc)


def start_worker(
    bootstrap: str,
    redis_url: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `edustream worker` against the given broker and Redis."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "EDUSTREAM_LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edustream", "worker"],
            env=env,
            stdout=out,
            stderr=out,
        )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Stop a worker politely, then firmly."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
