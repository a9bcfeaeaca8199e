"""The worker's fetch wait: short, and longer while a partition starves.

The embedded broker answers a fetch at its deadline with only the partitions
it has read by then, so a short wait can leave a partition of many small
batches with no records at all while others stream on. ``FetchWait`` sees
that from what each fetch brought and lengthens the wait until it passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faust.types import TP

from streams.faust_compat import LONGEST_FETCH_WAIT_MS, STARVED_AFTER_S, FetchWait

BIG = TP("aid.registry-changes", 0)
SMALL = TP("aid.person-facts", 0)
QUIET = TP("aid.guardian-answers", 0)
SHORTEST = 50


@dataclass
class State:
    """What aiokafka knows of one partition; like aiokafka's, its position
    may not be read while the partition is being reset."""

    highwater: int | None
    _position: int | None
    paused: bool = False

    @property
    def has_valid_position(self) -> bool:
        """Whether the position may be read."""
        return self._position is not None

    @property
    def position(self) -> int:
        """The next offset to fetch."""
        assert self._position is not None
        return self._position


def _fetches(
    wait: FetchWait,
    states: dict[TP, State],
    served: set[TP],
    seconds: float,
    start: float = 0.0,
) -> list[int]:
    """One fetch every 0.1 s for ``seconds``; the wait after each second."""
    waits = []
    steps = round(seconds / 0.1)
    for step in range(1, steps + 1):
        now = start + step * 0.1
        records: dict[TP, Any] = {tp: [object()] for tp in served}
        result = wait.observe(now, frozenset(states), records, states.get)
        if step % 10 == 0:
            waits.append(result)
    return waits


def test_a_partition_with_records_and_no_deliveries_lengthens_the_wait() -> None:
    """The small-batch partition has 10,000 records waiting and gets none:
    after STARVED_AFTER_S the wait doubles each second up to the longest."""
    wait = FetchWait(SHORTEST)
    states = {BIG: State(1_000_000, 10), SMALL: State(10_000, 0)}

    waits = _fetches(wait, states, {BIG}, seconds=10)

    assert waits[0] == SHORTEST
    first_longer = next(i for i, w in enumerate(waits) if w > SHORTEST)
    assert first_longer + 1 >= STARVED_AFTER_S
    assert waits[first_longer] == 2 * SHORTEST
    assert waits[-1] == LONGEST_FETCH_WAIT_MS


def test_the_wait_comes_back_once_every_partition_is_served() -> None:
    """Once the starved partition gets records again, the wait halves each
    second back to the shortest, and stays there."""
    wait = FetchWait(SHORTEST)
    states = {BIG: State(1_000_000, 10), SMALL: State(10_000, 0)}
    _fetches(wait, states, {BIG}, seconds=10)
    assert wait.wait_ms == LONGEST_FETCH_WAIT_MS

    waits = _fetches(wait, states, {BIG, SMALL}, seconds=10, start=10.0)

    assert waits[0] == LONGEST_FETCH_WAIT_MS // 2
    assert waits[-1] == SHORTEST


def test_quiet_paused_and_unknown_partitions_never_count_as_starved() -> None:
    """A partition at its high watermark, a paused one with records, one
    whose high watermark is not known yet, and one being reset keep the
    wait short."""
    wait = FetchWait(SHORTEST)
    states = {
        BIG: State(1_000_000, 10),
        QUIET: State(500, 500),
        SMALL: State(10_000, 0, paused=True),
        TP("aid.student-facts", 0): State(None, 0),
        TP("aid.student-facts", 1): State(10_000, None),
    }

    waits = _fetches(wait, states, {BIG}, seconds=10)

    assert waits == [SHORTEST] * 10
