"""The embedded broker: starts ready, stops clean, never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from infra.broker import EmbeddedBroker, wait_until_ready

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_broker_answers_metadata_then_stops() -> None:
    """Start waits for a metadata answer; stop leaves no process behind."""
    broker = EmbeddedBroker()
    broker.start()
    pid = broker.pid
    assert pid is not None
    wait_until_ready(broker.bootstrap, 2.0)
    broker.stop()
    assert not _alive(pid)


def test_broker_dies_with_a_killed_parent() -> None:
    """kill -9 of the owning process takes the broker down too."""
    code = (
        "from edustream import logs; logs.configure()\n"
        "from infra.broker import EmbeddedBroker\n"
        "import sys, time\n"
        "b = EmbeddedBroker(); b.start(); print(b.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    assert _alive(broker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(broker_pid)


def test_ctrl_c_stops_the_broker() -> None:
    """SIGINT to `edustream broker` stops it and its broker child."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edustream", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    while not line.startswith("KAFKA_BOOTSTRAP_SERVERS="):
        line = proc.stdout.readline().decode()
    children = _children(proc.pid)
    assert children
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()
    time.sleep(0.2)
    assert not any(_alive(c) for c in children)


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]
