"""``edustream topics apply``: make the broker match the topic catalogue.

Creates every missing catalogue topic with its partitions and config. A topic
that already exists with the right partition count is left alone, so running
apply twice changes nothing. A topic that exists with a different count is
reported as a conflict and never used silently: keyed state and ordering both
depend on the partition count, so a mismatch must be fixed by a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from edustream.errors import ConfigError, RetriableError
from edustream.logs import get_logger
from topics.spec import TopicSpec

log = get_logger(component="provision")


@dataclass
class ApplyResult:
    """What one apply run found and did."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the broker now matches the catalogue."""
        return not self.conflicts


async def apply_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    default_partitions: int,
    replication: int,
) -> ApplyResult:
    """Create missing topics and check existing ones against the catalogue."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await admin.start()
        return await _apply(admin, list(specs), default_partitions, replication)
    except KafkaError as exc:
        raise RetriableError(f"topic provisioning failed: {exc}") from exc
    finally:
        await admin.close()


async def existing_partitions(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partition count of every topic the broker has."""
    names = [n for n in await admin.list_topics() if not n.startswith("__")]
    if not names:
        return {}
    described = await admin.describe_topics(names)
    return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}


async def _apply(
    admin: AIOKafkaAdminClient,
    specs: list[TopicSpec],
    default_partitions: int,
    replication: int,
) -> ApplyResult:
    result = ApplyResult()
    have = await existing_partitions(admin)
    missing: list[NewTopic] = []
    for spec in specs:
        want = spec.partitions or default_partitions
        if spec.name not in have:
            missing.append(
                NewTopic(
                    spec.name,
                    num_partitions=want,
                    replication_factor=replication,
                    topic_configs=spec.config(),
                )
            )
        elif have[spec.name] != want:
            result.conflicts[spec.name] = (
                f"has {have[spec.name]} partitions, catalogue says {want}"
            )
        else:
            result.unchanged.append(spec.name)
    if missing:
        await _create(admin, missing, result)
    for name, problem in result.conflicts.items():
        log.error("topic_conflict", topic=name, problem=problem)
    log.info(
        "topics_applied",
        created=len(result.created),
        unchanged=len(result.unchanged),
        conflicts=len(result.conflicts),
    )
    return result


async def _create(
    admin: AIOKafkaAdminClient, missing: list[NewTopic], result: ApplyResult
) -> None:
    try:
        response = await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        # Another process created them between our listing and this call.
        result.unchanged.extend(t.name for t in missing)
        return
    for name, code, message in _errors(response):
        if code == 0:
            result.created.append(name)
        elif code == TopicAlreadyExistsError.errno:
            result.unchanged.append(name)
        else:
            raise ConfigError(f"cannot create topic {name}: error {code} {message}")


def _errors(response: object) -> list[tuple[str, int, str | None]]:
    found = []
    for entry in getattr(response, "topic_errors", []):
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        found.append((name, int(code), message))
    return found
