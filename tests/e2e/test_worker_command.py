"""`edustream worker` with no cluster named: the embedded broker and a child.

The command starts its own broker and runs the worker in a child process.
A supervisor sees only the command, so the command must report the
worker's exit code and must never leave the worker running without it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WAIT_S = 60.0


def _command(log: Path, **env: str) -> subprocess.Popen[bytes]:
    variables = {**os.environ, "EDUSTREAM_LOG_FORMAT": "json", **env}
    variables.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the embedded broker path
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edustream", "worker"],
            env=variables,
            stdout=out,
            stderr=out,
        )


def _ready_worker(parent: int, log: Path) -> int:
    """The pid of the command's worker child, once it logged it is ready."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if '"worker_ready"' in log.read_text():
            for pid in _children(parent):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"edustream\x00worker" in cmdline:
                    return pid
        time.sleep(0.2)
    raise AssertionError("the command's worker did not get ready")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _gone(pid: int) -> bool:
    """Whether pid has exited (a zombie not yet reaped counts as gone)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


def test_a_worker_that_cannot_start_gives_the_command_its_exit_code(
    tmp_path: Path,
) -> None:
    """A worker stopped by its configuration makes the command exit 2.

    The aid policy file is read by the worker itself, in the child, so the
    command learns of it only through the child's exit code.
    """
    policy = tmp_path / "policy.toml"
    policy.write_text('offer_expiry_days = "soon"\n')
    log = tmp_path / "worker.log"
    command = _command(log, EDUSTREAM_AID_POLICY_PATH=str(policy))

    assert command.wait(timeout=WAIT_S) == 2
    assert "embedded broker at" in log.read_text()  # the child was started
    assert f"{policy}: offer_expiry_days: Input should be" in log.read_text()


def test_sigterm_stops_the_worker_child_and_the_command_in_order(
    tmp_path: Path,
) -> None:
    """SIGTERM reaches the worker; both exit cleanly, the worker first."""
    log = tmp_path / "worker.log"
    command = _command(log)
    child = _ready_worker(command.pid, log)

    command.send_signal(signal.SIGTERM)

    assert command.wait(timeout=WAIT_S) == 0
    assert _gone(child)


def test_a_killed_command_takes_its_worker_along(tmp_path: Path) -> None:
    """kill -9 of the command leaves no worker running on its own."""
    log = tmp_path / "worker.log"
    command = _command(log)
    child = _ready_worker(command.pid, log)

    command.kill()
    command.wait()

    assert _gone(child), "the worker outlived the command"
