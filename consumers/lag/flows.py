"""Each flow's throughput and dead letters, read from log end offsets.

Duties:

- name each flow's input, output and dead-letter topics from the catalogue
  (``flow_topics``);
- add up a flow's log end offsets from one poll (``FlowReading``,
  ``read_flows``);
- turn two readings into rates (``FlowRate``, ``rates``).

A topic is a flow's input when the flow reads it and someone else writes
it; an output when the flow writes it and does not read it back. Topics a
flow both writes and reads (re-keyed facts) are its own plumbing and count
as neither. A log end offset counts every record ever written to the
partition, so the dead-letter figure is "dead letters since the topic was
created", which retention does not lower.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from topics.spec import TopicSpec

FLOWS: tuple[str, ...] = ("aid", "billing", "growth")


@dataclass(frozen=True, slots=True)
class FlowTopics:
    """The topic names one flow reads, writes and dead-letters to."""

    flow: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dead_letters: str


@dataclass(frozen=True, slots=True)
class FlowReading:
    """One flow's summed log end offsets at one poll."""

    flow: str
    records_in: int
    records_out: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class FlowRate:
    """One flow's totals and its records per second since the poll before."""

    flow: str
    records_in: int
    records_out: int
    dead_letters: int
    in_per_s: float
    out_per_s: float
    dead_letters_per_s: float

    def to_dict(self) -> dict[str, str | int | float]:
        """Return the rate as a JSON-ready dictionary."""
        return {
            "flow": self.flow,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "dead_letters": self.dead_letters,
            "in_per_s": self.in_per_s,
            "out_per_s": self.out_per_s,
            "dead_letters_per_s": self.dead_letters_per_s,
        }


def flow_topics(
    catalogue: Iterable[TopicSpec], dead_letters: Mapping[str, TopicSpec]
) -> list[FlowTopics]:
    """Sort the catalogue's topics into each flow's inputs and outputs."""
    specs = list(catalogue)
    return [_topics_of(flow, specs, dead_letters[flow].name) for flow in FLOWS]


def read_flows(
    flows: Iterable[FlowTopics], log_ends: Mapping[tuple[str, int], int]
) -> list[FlowReading]:
    """Sum each flow's log end offsets over every partition of its topics."""
    by_topic: dict[str, int] = {}
    for (topic, _partition), offset in log_ends.items():
        by_topic[topic] = by_topic.get(topic, 0) + offset

    return [
        FlowReading(
            flow=flow.flow,
            records_in=sum(by_topic.get(name, 0) for name in flow.inputs),
            records_out=sum(by_topic.get(name, 0) for name in flow.outputs),
            dead_letters=by_topic.get(flow.dead_letters, 0),
        )
        for flow in flows
    ]


def rates(before: FlowReading | None, after: FlowReading, seconds: float) -> FlowRate:
    """Rates from ``before`` to ``after``; zero without a usable interval.

    A total that fell means the topics were recreated (the embedded broker
    forgets them on restart): that interval's rate is unknown, and zero is
    drawn rather than a negative spike.
    """
    usable = before is not None and seconds > 0

    def per_second(old: int, new: int) -> float:
        if not usable or new < old:
            return 0.0
        return (new - old) / seconds

    return FlowRate(
        flow=after.flow,
        records_in=after.records_in,
        records_out=after.records_out,
        dead_letters=after.dead_letters,
        in_per_s=per_second(before.records_in if before else 0, after.records_in),
        out_per_s=per_second(before.records_out if before else 0, after.records_out),
        dead_letters_per_s=per_second(
            before.dead_letters if before else 0, after.dead_letters
        ),
    )


def _topics_of(flow: str, specs: list[TopicSpec], dead_letters: str) -> FlowTopics:
    inputs = [
        spec.name for spec in specs if flow in spec.readers and spec.writer != flow
    ]
    outputs = [
        spec.name
        for spec in specs
        if spec.writer == flow
        and flow not in spec.readers
        and spec.name != dead_letters
    ]
    return FlowTopics(flow, tuple(inputs), tuple(outputs), dead_letters)
