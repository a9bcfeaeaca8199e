"""What a flow's demo scenario gives the runner.

A scenario is a list of phases. Each phase publishes records to upstream
topics (and, for payments, HTTP callbacks to the ingress) and then names the
output kinds the runner waits for before the next phase starts: a guardian
can only answer an offer once it has been pushed, and a parent only pays a
bill that exists.

``expected`` is the scenario's own ground truth: the count of each output
kind, computed while generating the inputs, never from pipeline output.
``kinds`` tells the runner how to recognise each kind on the output topics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from avro_schemas import default_codec
from topics.spec import TopicSpec


@dataclass(frozen=True)
class Publication:
    """One record to produce, already encoded (or deliberately malformed)."""

    spec: TopicSpec
    key: bytes | None
    value: bytes

    @classmethod
    def record(
        cls, spec: TopicSpec, key: str | bytes | None, record: dict[str, Any]
    ) -> Publication:
        """Encode a record with the topic's schema."""
        assert spec.schema is not None
        raw_key = key.encode() if isinstance(key, str) else key
        return cls(spec, raw_key, default_codec().encode(spec.schema, record))


@dataclass(frozen=True)
class HttpCallback:
    """A channel's HTTP notification to send to the ingress."""

    path: str
    headers: dict[str, str]
    body: bytes
    expect_status: int
    # WeChat Pay signs a notification as it sends it, with that moment's
    # timestamp, and the ingress holds the timestamp to a freshness window.
    # A long run posts some callbacks many minutes after building them, so
    # one the ingress must accept is signed again when posted, exactly as
    # old as it was when built. One it must refuse is posted as built, byte
    # for byte each time, as its refusal records are counted by body.
    resign: Callable[[], tuple[dict[str, str], bytes]] | None = None

    def as_sent(self) -> HttpCallback:
        """The callback as the channel would send it now."""
        if self.resign is None or self.expect_status >= 300:
            return self
        headers, body = self.resign()
        return replace(self, headers=headers, body=body)


@dataclass(frozen=True)
class Kind:
    """How to count one output kind on an output topic."""

    name: str
    topic: TopicSpec
    id_of: Callable[[dict[str, Any]], str]
    where: Callable[[dict[str, Any]], bool] = lambda _record: True


@dataclass
class Phase:
    """Inputs sent together, then the kinds to wait for."""

    name: str
    publications: list[Publication] = field(default_factory=list)
    callbacks: list[HttpCallback] = field(default_factory=list)
    wait_for: tuple[str, ...] = ()


@dataclass
class Scenario:
    """A flow's inputs in phases, with its expected outputs."""

    flow: str
    phases: list[Phase]
    kinds: list[Kind]
    expected: dict[str, int]
    # Strings that must never appear on an output topic or in the logs:
    # every ID number and name the scenario put on upstream topics.
    secrets: set[str] = field(default_factory=set)
    facts: dict[str, Any] = field(default_factory=dict)
