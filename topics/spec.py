"""The shape of a catalogue entry.

A ``TopicSpec`` says everything an operator or a developer needs to know
about a topic: its name, what its key is, which schema its values follow,
its partitions, cleanup policy and retention, which flow writes it and
which flows and consumers read it, and whether a consumer of it may see
personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DAY_MS = 24 * 60 * 60 * 1000


class Cleanup(StrEnum):
    """Kafka cleanup.policy values we use."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """One topic in the catalogue."""

    name: str
    key: str
    schema: str | None
    writer: str
    readers: tuple[str, ...]
    doc: str
    partitions: int | None = None
    cleanup: Cleanup = Cleanup.DELETE
    retention_ms: int = 7 * DAY_MS
    # The upstream topics carry ID numbers and names because the systems that
    # write them own that data. Everything edustream writes has this False,
    # and the privacy scan holds it to that.
    personal_data: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Topic-level Kafka configuration to create the topic with."""
        conf = {
            "cleanup.policy": str(self.cleanup),
            "retention.ms": str(self.retention_ms),
        }
        conf.update(self.extra_config)
        return conf
