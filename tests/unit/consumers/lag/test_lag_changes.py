"""Group status changes between polls, and which of them are trouble."""

from __future__ import annotations

import pytest

from consumers.lag.changes import StatusChange, status_changes
from consumers.lag.model import Status

OK, WARN, STOP = Status.OK, Status.WARN, Status.STOP


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({}, {}, []),
        ({"a": OK}, {"a": OK}, []),
        ({}, {"a": OK}, [StatusChange("a", None, OK)]),
        ({"a": OK}, {"a": STOP}, [StatusChange("a", OK, STOP)]),
        ({"a": STOP}, {}, [StatusChange("a", STOP, None)]),
        (
            {"b": WARN, "a": OK},
            {"a": OK, "b": OK, "c": STOP},
            [StatusChange("b", WARN, OK), StatusChange("c", None, STOP)],
        ),
    ],
)
def test_changes_list_every_group_that_moved(
    before: dict[str, Status], after: dict[str, Status], expected: list[StatusChange]
) -> None:
    """Only groups whose status differs are listed, ordered by group."""
    assert status_changes(before, after) == expected


@pytest.mark.parametrize(
    ("change", "trouble"),
    [
        (StatusChange("a", OK, STOP), True),
        (StatusChange("a", None, Status.ERR), True),
        (StatusChange("a", STOP, OK), False),
        (StatusChange("a", None, OK), False),
        (StatusChange("a", STOP, None), False),
    ],
)
def test_trouble_is_any_status_but_ok(change: StatusChange, trouble: bool) -> None:
    """A change is trouble when the group now reads anything but OK."""
    assert change.is_trouble is trouble
