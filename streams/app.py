"""The one Faust application that runs every flow.

Flows register their agents on ``app`` when their module is imported;
``streams.worker`` imports them all. Settings come from
``edustream.settings``; nothing here reads the environment itself.

Processing is at-least-once: the embedded broker has no transactions, so
``exactly_once`` would fail at InitProducerId. Every output therefore has a
deterministic id, and the state that decides whether to emit it is kept in
Faust tables, so a replay after a crash re-emits the same record at most.
"""

from __future__ import annotations

from datetime import timedelta

import faust

from edustream.settings import Settings, get_settings
from streams import faust_compat
from topics import CATALOGUE
from topics.spec import TopicSpec


def make_app(settings: Settings) -> faust.App:
    """Build the Faust app for these settings."""
    bootstrap = settings.kafka_bootstrap_servers or "127.0.0.1:9092"
    return faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_commit_interval=settings.broker_commit_interval_s,
        consumer_auto_offset_reset="earliest",
        producer_linger=settings.broker_producer_linger_ms / 1000,
        table_cleanup_interval=timedelta(minutes=5).total_seconds(),
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_host="127.0.0.1",
        datadir=str(settings.data_dir),
        # Faust's own logging goes through our structlog setup.
        loghandlers=[],
    )


# A restarted worker must recover every changelog record and lose no input
# at a rebalance; faust-streaming 0.15 does neither on the embedded broker
# without these fixes (see the module). They serve every flow.
faust_compat.install()

app = make_app(get_settings())


def topic(*specs: TopicSpec) -> faust.TopicT:
    """The Faust topic for catalogue entries; values stay raw Avro bytes.

    Agents decode values themselves so that a value which does not decode
    reaches our dead-letter path instead of Faust's serializer error log.
    Several entries make one source read together; they must be keyed alike
    and have the same partition count, so one key's records share a number.
    """
    partitions = {spec.partitions or get_settings().partitions for spec in specs}
    assert len(partitions) == 1, [spec.name for spec in specs]
    assert all(spec.name in CATALOGUE for spec in specs), specs
    return app.topic(
        *(spec.name for spec in specs),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions.pop(),
        internal=False,
    )
