"""Stop the worker loudly when the broker lost the topics our state came from.

See ``infra.sentinel``. The check runs on a Faust timer; on a loss it logs a
critical line and exits the process with a non-zero code, because no amount
of retrying can make table state and topics agree again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import NoReturn

from aiokafka.errors import KafkaError

from edustream.errors import BrokerLostError
from edustream.logs import get_logger
from infra.sentinel import check_sentinel
from streams.app import app

log = get_logger(component="watchdog")

CHECK_INTERVAL_S = 5.0
EXIT_BROKER_LOST = 75


def exit_if_broker_lost(bootstrap: str, sentinel: str, wait_s: float = 10.0) -> None:
    """After a crash: exit with EXIT_BROKER_LOST if the broker lost our data.

    Waits up to wait_s for a broker to answer; a broker that stays away is
    an outage, and the crash's own exit code stands.
    """
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            asyncio.run(check_sentinel(bootstrap, sentinel, strict=True))
        except BrokerLostError as exc:
            _die(exc)
        except KafkaError:
            time.sleep(0.5)
            continue
        return


def _die(exc: BrokerLostError) -> NoReturn:
    log.critical("broker_lost", error=str(exc))
    print(f"edustream worker: {exc}", file=sys.stderr, flush=True)
    os._exit(EXIT_BROKER_LOST)


def watch_broker(bootstrap: str, sentinel: str) -> None:
    """Register the periodic sentinel check on the app."""

    async def broker_sentinel() -> None:
        try:
            await check_sentinel(bootstrap, sentinel)
        except BrokerLostError as exc:
            _die(exc)

    app.timer(interval=CHECK_INTERVAL_S, name="broker-sentinel")(broker_sentinel)
