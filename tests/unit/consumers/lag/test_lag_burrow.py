"""Burrow's rules: commits from poll samples, partition status, group status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.lag.burrow import PartitionWindow, evaluate, group_status
from consumers.lag.model import Status

T0 = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)

# A poll is (committed offset, log end offset, seconds after T0), optionally
# followed by the commit's own time in seconds after T0.
Poll = tuple[int, int, float] | tuple[int, int, float, float]


def at(seconds: float) -> datetime:
    """Return the moment ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def window_of(polls: list[Poll], size: int = 10) -> PartitionWindow:
    """Build a window by recording ``polls`` in order."""
    window = PartitionWindow(size)
    for poll in polls:
        committed_at = at(poll[3]) if len(poll) == 4 else None
        window.record(poll[0], poll[1], at(poll[2]), committed_at=committed_at)
    return window


# Ten commits after one at zero lag: the zero-lag commit slides out.
_SLID_PAST_ZERO: list[Poll] = [
    (100, 100, 0),
    *((100 + 10 * k, 100 + 20 * k, 3 * k) for k in range(1, 11)),
]

# Commits at 0, 3 and 6 s with rising lag, then a poll at 9 s with no commit.
# Every log end stays above the last commit, so none shows it caught up.
_STOPS_AFTER_SIX: list[Poll] = [
    (100, 350, 0),
    (200, 460, 3),
    (300, 570, 6),
    (300, 600, 9),
]

# A zero-lag commit, then ten polls with no new commit rotate its log end out.
_QUIET_AFTER_ZERO: list[Poll] = [
    (100, 100, 0),
    (200, 260, 3),
    *((200, 260 + k, 3 + k) for k in range(1, 11)),
]

# Same offsets each commit; only the commit time shows the consumer is alive.
_SAME_OFFSET_COMMITS: list[Poll] = [
    (100, 150, 0, 0),
    (100, 160, 3, 3),
    (100, 170, 6, 6),
    (100, 180, 9, 9),
]

_REWOUND: list[Poll] = [(100, 300, 0), (200, 410, 3), (150, 420, 6), (250, 500, 9)]


@pytest.mark.parametrize(
    ("polls", "now", "expected"),
    [
        pytest.param([], 0, Status.ERR, id="empty-window-is-err"),
        pytest.param([(100, 150, 0)], 1000, Status.ERR, id="one-lagging-commit-err"),
        pytest.param(
            [(100, 100, 0), (100, 150, 5)], 1000, Status.OK, id="one-commit-zero-lag"
        ),
        pytest.param(
            [(100, 150, 0), (120, 180, 3), (180, 180, 6)],
            100,
            Status.OK,
            id="current-lag-zero-beats-stop",
        ),
        pytest.param(
            [(100, 100, 0), (150, 160, 3), (200, 230, 6)],
            7,
            Status.OK,
            id="zero-lag-in-window-beats-warn",
        ),
        pytest.param(
            [(100, 100, 0), (50, 120, 3), (80, 130, 6)],
            7,
            Status.OK,
            id="zero-lag-in-window-beats-rewind",
        ),
        pytest.param(
            [(100, 110, 0), (200, 220, 3), (300, 330, 6), (400, 440, 9)],
            10,
            Status.WARN,
            id="warn-lag-rises",
        ),
        pytest.param(
            [(100, 150, 0), (150, 200, 3), (200, 250, 6)],
            7,
            Status.WARN,
            id="warn-lag-flat",
        ),
        pytest.param(
            [(100, 150, 0), (150, 210, 3), (220, 260, 6), (300, 400, 9)],
            10,
            Status.OK,
            id="lag-fell-once-is-ok",
        ),
        pytest.param(_SLID_PAST_ZERO, 31, Status.WARN, id="zero-lag-slid-out-warn"),
        pytest.param(_SAME_OFFSET_COMMITS, 10, Status.STALL, id="stall"),
        pytest.param(
            [(100, 150, 0), (100, 160, 3), (100, 170, 6)],
            7,
            Status.ERR,
            id="same-offset-without-commit-times-is-one-commit",
        ),
        pytest.param(_STOPS_AFTER_SIX, 12.5, Status.STOP, id="stop-silence-over-span"),
        pytest.param(_STOPS_AFTER_SIX, 12, Status.WARN, id="silence-equal-span-warn"),
        pytest.param(_QUIET_AFTER_ZERO, 13.5, Status.STOP, id="stop-beats-zero-lag"),
        pytest.param(
            [(90, 110, 0), (100, 112, 2), (110, 114, 4), (110, 115, 5)],
            20,
            Status.OK,
            id="recently-caught-up-is-not-stop",
        ),
        pytest.param(
            [(90, 111, 0), (100, 112, 2), (110, 114, 4), (110, 115, 5)],
            20,
            Status.STOP,
            id="never-caught-up-is-stop",
        ),
        pytest.param(_REWOUND, 10, Status.REWIND, id="rewind"),
        pytest.param(_REWOUND, 20, Status.STOP, id="stop-beats-rewind"),
        pytest.param(
            [(100, 150, 0, 0), (100, 160, 3, 3), (90, 170, 6, 6)],
            7,
            Status.REWIND,
            id="rewind-beats-stall-and-warn",
        ),
        pytest.param(_SAME_OFFSET_COMMITS, 30, Status.STOP, id="stop-beats-stall"),
    ],
)
def test_evaluate_follows_burrow_rules(
    polls: list[Poll], now: float, expected: Status
) -> None:
    """Each window yields its status, and ties go to the earlier rule."""
    window = window_of(polls)

    assert evaluate(window, at(now)) is expected


def test_unchanged_offset_is_not_a_commit_but_refreshes_lag() -> None:
    """A poll that sees the same offset updates the current lag only."""
    window = PartitionWindow()

    first = window.record(100, 120, at(0))
    second = window.record(100, 180, at(1))

    assert (first, second) == (True, False)
    assert [(c.offset, c.lag, c.at) for c in window.commits] == [(100, 20, at(0))]
    assert window.latest is not None
    assert window.latest.lag == 80
    assert window.recent_log_ends == (120, 180)


def test_newer_commit_time_makes_a_commit_at_that_time() -> None:
    """With commit times, re-committing the same offset is a new commit."""
    window = PartitionWindow()

    window.record(100, 120, at(1), committed_at=at(0))
    repeated = window.record(100, 130, at(2), committed_at=at(0))
    newer = window.record(100, 140, at(3), committed_at=at(2.5))

    assert (repeated, newer) == (False, True)
    assert [(c.offset, c.lag, c.at) for c in window.commits] == [
        (100, 20, at(0)),
        (100, 40, at(2.5)),
    ]


def test_stale_poll_is_ignored() -> None:
    """A poll no newer than the latest one changes nothing."""
    window = PartitionWindow()
    window.record(100, 120, at(5))

    recorded = window.record(200, 300, at(5))
    earlier = window.record(200, 300, at(4))

    assert (recorded, earlier) == (False, False)
    assert window.latest is not None
    assert window.latest.committed_offset == 100
    assert len(window.commits) == 1


def test_window_keeps_the_last_size_commits() -> None:
    """The window drops its oldest commit once it holds ``size`` of them."""
    window = PartitionWindow(size=3)

    for k in range(5):
        window.record(100 * k, 100 * k + 7, at(k))

    assert [c.offset for c in window.commits] == [200, 300, 400]
    assert window.recent_log_ends == (207, 307, 407)
    assert window.size == 3


def test_lag_is_never_negative() -> None:
    """A log end offset read before the commit landed gives zero lag."""
    window = PartitionWindow()

    window.record(500, 490, at(0))

    assert window.commits[0].lag == 0
    assert evaluate(window, at(100)) is Status.OK


@pytest.mark.parametrize(
    ("committed", "log_end", "observed_at", "committed_at"),
    [
        pytest.param(-1, 10, at(0), None, id="no-committed-offset"),
        pytest.param(0, -1, at(0), None, id="negative-log-end"),
        pytest.param(0, 10, datetime(2024, 9, 2, 8), None, id="naive-observed"),
        pytest.param(0, 10, at(0), datetime(2024, 9, 2, 8), id="naive-committed"),
    ],
)
def test_record_rejects_bad_samples(
    committed: int,
    log_end: int,
    observed_at: datetime,
    committed_at: datetime | None,
) -> None:
    """Sentinel offsets and naive times are caller errors, not samples."""
    window = PartitionWindow()

    with pytest.raises(ValueError, match="must be"):
        window.record(committed, log_end, observed_at, committed_at=committed_at)

    assert window.latest is None


def test_window_needs_room_for_two_commits() -> None:
    """A one-commit window could never show movement, so it is refused."""
    with pytest.raises(ValueError, match="at least two"):
        PartitionWindow(1)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        pytest.param([], Status.ERR, id="no-partitions"),
        pytest.param([Status.OK, Status.OK], Status.OK, id="all-ok"),
        pytest.param([Status.OK, Status.WARN], Status.WARN, id="warn-over-ok"),
        pytest.param([Status.WARN, Status.ERR], Status.ERR, id="err-over-warn"),
        pytest.param([Status.STOP, Status.ERR], Status.STOP, id="stop-over-err"),
        pytest.param(
            [Status.OK, Status.STALL, Status.STOP], Status.STALL, id="stall-over-stop"
        ),
        pytest.param(
            [Status.REWIND, Status.STALL, Status.OK], Status.REWIND, id="rewind-worst"
        ),
    ],
)
def test_group_status_is_worst_partition(
    statuses: list[Status], expected: Status
) -> None:
    """A group takes its worst partition's status; no partitions is ERR."""
    assert group_status(statuses) is expected
