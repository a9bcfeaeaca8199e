"""Stop the worker loudly when the broker lost the topics our state came from.

See ``infra.sentinel``. The check runs on a Faust timer; on a loss it logs a
critical line and exits the process with a non-zero code, because no amount
of retrying can make table state and topics agree again.
"""

from __future__ import annotations

import os
import sys

from edustream.errors import BrokerLostError
from edustream.logs import get_logger
from infra.sentinel import check_sentinel
from streams.app import app

log = get_logger(component="watchdog")

CHECK_INTERVAL_S = 5.0
EXIT_BROKER_LOST = 75


def watch_broker(bootstrap: str, sentinel: str) -> None:
    """Register the periodic sentinel check on the app."""

    async def broker_sentinel() -> None:
        try:
            await check_sentinel(bootstrap, sentinel)
        except BrokerLostError as exc:
            log.critical("broker_lost", error=str(exc))
            print(f"edustream worker: {exc}", file=sys.stderr, flush=True)
            os._exit(EXIT_BROKER_LOST)

    app.timer(interval=CHECK_INTERVAL_S, name="broker-sentinel")(broker_sentinel)
