"""Flow throughput and dead letters from log end offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.lag.flows import (
    FlowReading,
    FlowTopics,
    flow_topics,
    rates,
    read_flows,
)
from topics import CATALOGUE, DEAD_LETTERS, aid, billing, growth


def test_catalogue_sorts_into_inputs_outputs_and_dead_letters() -> None:
    """Inputs are read from others, outputs written for others, plumbing left out."""
    flows = {flow.flow: flow for flow in flow_topics(CATALOGUE.values(), DEAD_LETTERS)}

    assert list(flows) == ["aid", "billing", "growth"]
    assert growth.SCANS.name in flows["growth"].inputs
    # The registry feeds both aid and growth.
    assert aid.REGISTRY_CHANGES.name in flows["growth"].inputs
    assert aid.REGISTRY_CHANGES.name in flows["aid"].inputs
    assert growth.STATEMENTS.name in flows["growth"].outputs
    assert billing.CALLBACKS.name in flows["billing"].inputs
    assert aid.OFFERS.name in flows["aid"].outputs
    # Topics a flow writes and reads back are its own plumbing.
    assert growth.ENROLMENTS.name not in flows["growth"].inputs
    assert growth.ENROLMENTS.name not in flows["growth"].outputs
    assert flows["growth"].dead_letters == growth.DEAD_LETTERS.name
    assert growth.DEAD_LETTERS.name not in flows["growth"].outputs


def test_readings_sum_every_partition_of_every_topic() -> None:
    """A flow's totals add the log end offsets over its topics' partitions."""
    flow = FlowTopics("growth", ("in.a", "in.b"), ("out.a",), "growth.dl")
    log_ends = {
        ("in.a", 0): 10,
        ("in.a", 1): 5,
        ("in.b", 0): 7,
        ("out.a", 0): 3,
        ("growth.dl", 0): 2,
        ("growth.dl", 1): 1,
        ("unrelated", 0): 1000,
    }

    assert read_flows([flow], log_ends) == [FlowReading("growth", 22, 3, 3)]


def test_rates_divide_growth_by_elapsed_seconds() -> None:
    """Records per second come from the totals' growth over the interval."""
    before = FlowReading("aid", 100, 40, 2)
    after = FlowReading("aid", 150, 60, 4)

    rate = rates(before, after, 10.0)

    assert (rate.records_in, rate.records_out, rate.dead_letters) == (150, 60, 4)
    assert (rate.in_per_s, rate.out_per_s, rate.dead_letters_per_s) == (5.0, 2.0, 0.2)


@pytest.mark.parametrize(
    ("before", "seconds"),
    [
        (None, 5.0),
        (FlowReading("aid", 100, 40, 2), 0.0),
        # Totals that fell: the broker forgot its topics.
        (FlowReading("aid", 900, 900, 900), 5.0),
    ],
)
def test_rates_are_zero_without_a_usable_interval(
    before: FlowReading | None, seconds: float
) -> None:
    """No previous reading, no elapsed time or a reset log gives zero rates."""
    rate = rates(before, FlowReading("aid", 150, 60, 4), seconds)

    assert (rate.in_per_s, rate.out_per_s, rate.dead_letters_per_s) == (0, 0, 0)
    assert rate.dead_letters == 4


@given(
    st.tuples(*[st.integers(0, 10**9)] * 3),
    st.tuples(*[st.integers(0, 10**9)] * 3),
    st.floats(0, 3600, allow_nan=False),
)
def test_rates_are_never_negative(
    old: tuple[int, int, int], new: tuple[int, int, int], seconds: float
) -> None:
    """Whatever the totals do, no rate drawn on the dashboard is below zero."""
    rate = rates(FlowReading("aid", *old), FlowReading("aid", *new), seconds)

    assert min(rate.in_per_s, rate.out_per_s, rate.dead_letters_per_s) >= 0


def test_rate_serialises_every_field() -> None:
    """The JSON form carries the totals and the rates under stable names."""
    rate = rates(FlowReading("billing", 1, 2, 3), FlowReading("billing", 3, 4, 5), 2)

    assert rate.to_dict() == {
        "flow": "billing",
        "records_in": 3,
        "records_out": 4,
        "dead_letters": 5,
        "in_per_s": 1.0,
        "out_per_s": 1.0,
        "dead_letters_per_s": 1.0,
    }
