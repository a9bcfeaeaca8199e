"""Run the Faust worker with every flow registered.

Importing the flow modules registers their agents on the app. The worker
first makes sure the catalogue topics exist with the right partition counts,
so Faust never auto-creates one with a wrong count.
"""

from __future__ import annotations

import asyncio

from faust import Worker

from edustream.errors import ConfigError
from edustream.logs import get_logger
from edustream.settings import Settings
from infra.provision import apply_topics
from infra.sentinel import ensure_sentinel
from streams import aid, billing, growth, observability  # noqa: F401 - agents, probes
from streams.app import app
from streams.watchdog import exit_if_broker_lost, watch_broker
from topics import CATALOGUE

log = get_logger(component="worker")


class _Worker(Worker):
    """Faust's worker, saying when it is ready in our log."""

    async def on_startup_finished(self) -> None:
        """Tables recovered and agents running: log ``worker_ready``."""
        await super().on_startup_finished()
        log.info("worker_ready", app_id=self.app.conf.id)


def run_worker(settings: Settings) -> None:
    """Provision topics, then run the worker until it is stopped."""
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError("the worker needs KAFKA_BOOTSTRAP_SERVERS")
    result = asyncio.run(
        apply_topics(
            bootstrap,
            CATALOGUE.values(),
            settings.partitions,
            settings.replication_factor,
        )
    )
    if not result.ok:
        raise ConfigError(
            "topics disagree with the catalogue: " + str(result.conflicts)
        )
    sentinel = asyncio.run(ensure_sentinel(bootstrap))
    watch_broker(bootstrap, sentinel)
    log.info("worker_starting", bootstrap=bootstrap, app_id=settings.app_id)
    worker = _Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        if stop.code not in (0, None):
            # Faust may crash on the broker vanishing before the sentinel
            # timer fires; say why if the broker came back without our data.
            exit_if_broker_lost(bootstrap, sentinel)
        raise
