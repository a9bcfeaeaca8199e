"""The topic catalogue: every topic edustream reads or writes, in one place.

No other module spells a topic name. Code refers to a topic through the
constants in ``topics.aid``, ``topics.billing``, ``topics.growth`` and
``topics.common``; ``CATALOGUE`` maps every name to its ``TopicSpec`` for
provisioning, the demo's dumps, the privacy scan and the lag monitor.
"""

from __future__ import annotations

from topics import aid, billing, common, growth
from topics.spec import TopicSpec

_ALL: tuple[TopicSpec, ...] = (*aid.ALL, *billing.ALL, *growth.ALL, *common.ALL)

CATALOGUE: dict[str, TopicSpec] = {spec.name: spec for spec in _ALL}

if len(CATALOGUE) != len(_ALL):  # pragma: no cover - caught by the first test run
    raise RuntimeError("duplicate topic name in the catalogue")

DEAD_LETTERS = {
    "aid": aid.DEAD_LETTERS,
    "billing": billing.DEAD_LETTERS,
    "growth": growth.DEAD_LETTERS,
}


def dead_letter_topic_for(flow: str) -> TopicSpec:
    """The dead-letter topic of a flow."""
    return DEAD_LETTERS[flow]


FLOWS = ("aid", "billing", "growth")


def upstream() -> list[TopicSpec]:
    """Topics written outside the flows: upstream systems and the ingress."""
    return [s for s in _ALL if s.writer not in (*FLOWS, "provisioning")]


def outputs() -> list[TopicSpec]:
    """Every topic edustream itself writes (for dumps and privacy scans)."""
    return [
        s for s in _ALL if s.writer.startswith(("aid", "billing", "growth", "ingress"))
    ]
