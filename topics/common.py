"""Topics shared by every flow."""

from __future__ import annotations

from topics.spec import DAY_MS, Cleanup, TopicSpec

# Written once by `edustream topics apply`. The worker checks the record is
# still there: the embedded broker is memory-only, and a broker that lost it
# has lost every topic our table state was built from.
SENTINEL = TopicSpec(
    name="edustream.sentinel",
    key="the constant b'sentinel'",
    schema=None,
    writer="provisioning",
    readers=("worker",),
    doc="Marks a broker whose topics were provisioned; its loss means the "
    "broker restarted without its data.",
    partitions=1,
    cleanup=Cleanup.COMPACT,
    retention_ms=-1,
)

ALL: tuple[TopicSpec, ...] = (SENTINEL,)

__all__ = ["ALL", "DAY_MS", "SENTINEL"]
