"""Worker processes for the demo and the fault harness.

The demo runs one ``edustream worker`` child; the fault harness runs one or
two and kills and restarts them. Every child appends to one log file, so the
privacy scan reads everything every worker wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from edustream.logs import get_logger

log = get_logger(component="workers")


class WorkerPool:
    """Numbered worker slots, each holding at most one live process."""

    def __init__(self, bootstrap: str, redis_url: str, log_path: Path) -> None:
        self.bootstrap = bootstrap
        self.redis_url = redis_url
        self.log_path = log_path
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.starts = 0

    def start(self, slot: int = 0) -> None:
        """Start a worker in slot (replacing a dead one)."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REDIS_URL": self.redis_url,
            "EDUSTREAM_LOG_FORMAT": "json",
        }
        out = self.log_path.open("ab")
        self.procs[slot] = subprocess.Popen(
            [sys.executable, "-m", "edustream", "worker"],
            env=env,
            stdout=out,
            stderr=out,
        )
        out.close()
        self.starts += 1

    def kill(self, slot: int = 0) -> None:
        """kill -9 the worker in slot, as a crash would."""
        proc = self.procs.get(slot)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.warning("worker_killed", slot=slot, pid=proc.pid)

    def stop(self, slot: int = 0) -> None:
        """SIGTERM the worker in slot and wait until it has left the group."""
        proc = self.procs.get(slot)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def any_alive(self) -> bool:
        """Whether at least one worker is running."""
        return any(p.poll() is None for p in self.procs.values())

    def exit_codes(self) -> list[int]:
        """Exit codes of workers that stopped."""
        return [p.returncode for p in self.procs.values() if p.poll() is not None]

    def stop_all(self) -> None:
        """SIGTERM every worker, then SIGKILL what lingers."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
