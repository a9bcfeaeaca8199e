"""Burrow's consumer status rules over a sliding window of commits.

Duties:

- turn the poller's samples into commits (``PartitionWindow.record``);
- judge one partition from its window (``evaluate``);
- judge a group from its partitions (``group_status``).

Samples and commits
-------------------
The poller samples each partition on every poll: the committed offset, the
log end offset and when it looked. Burrow's window holds commits, not polls,
so a sample counts as a new commit only when

- its committed offset differs from the newest commit's, or
- it carries the commit's own time (``committed_at``, when the poller can
  read it) and that time is newer than the newest commit's.

Any other sample only refreshes the current lag and the ring of recent log
end offsets. A commit's time is ``committed_at`` when known, else the time of
the poll that first saw the new offset (late by at most one poll interval).
Its lag is that sample's log end offset minus the committed offset, never
below zero, as Burrow stores it.

Without commit times, a consumer that keeps committing the same offset looks
exactly like one that stopped committing: it reads STOP, never STALL. Only a
poller that supplies ``committed_at`` can see STALL.

Rules, in order; the first that matches decides
-----------------------------------------------
1. ERR if the window holds no sample yet.
2. OK if the current lag is zero.
3. STOP if the window holds at least two commits, the time since the newest
   commit is longer than the window's span (newest minus oldest commit
   time), and none of the log end offsets seen in the last ``size`` polls is
   at or below the newest committed offset. That last clause is Burrow's: a
   consumer that was caught up a few polls ago is idle, not stopped, so STOP
   waits until those polls have moved past the point it reached.
4. OK if any commit in the window had zero lag.
5. ERR if the window holds a single commit: it shows neither movement nor a
   commit rhythm to measure silence against.
6. REWIND if any committed offset is below the one before it.
7. STALL if every commit in the window has the same offset.
8. WARN if the lag never falls from one commit to the next.
9. OK otherwise.

STOP comes before the zero-lag rule, as in Burrow's current evaluator,
because a zero lag in an old window must not hide a consumer that has since
gone quiet. Rule 5 departs from Burrow, which judges a one-commit window with
a span of zero: every lagging partition would read STOP one poll after the
monitor starts. The cost of the departure: a partition whose offset has not
moved since the monitor started reads ERR rather than STOP, while its offset
lag and time lag keep growing on the dashboard.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from consumers.lag.model import Status

# Burrow's default `intervals`: the window holds the last ten commits.
WINDOW_SIZE = 10


@dataclass(frozen=True, slots=True)
class Sample:
    """What one poll saw for one group on one partition."""

    committed_offset: int
    log_end_offset: int
    observed_at: datetime

    @property
    def lag(self) -> int:
        """Offset lag; zero when a stale log end offset trails the commit."""
        return max(0, self.log_end_offset - self.committed_offset)


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit in the window: its offset, its lag, and when it happened."""

    offset: int
    lag: int
    at: datetime


class PartitionWindow:
    """The last ``size`` commits of one group on one partition."""

    def __init__(self, size: int = WINDOW_SIZE) -> None:
        if size < 2:
            raise ValueError("a window needs room for at least two commits")

        self._commits: deque[Commit] = deque(maxlen=size)
        self._log_ends: deque[int] = deque(maxlen=size)
        self._latest: Sample | None = None

    @property
    def size(self) -> int:
        """How many commits the window keeps."""
        return self._commits.maxlen or 0

    @property
    def commits(self) -> tuple[Commit, ...]:
        """Commits in the window, oldest first."""
        return tuple(self._commits)

    @property
    def latest(self) -> Sample | None:
        """The newest sample, or None before the first."""
        return self._latest

    @property
    def recent_log_ends(self) -> tuple[int, ...]:
        """Log end offsets of the last ``size`` samples, oldest first."""
        return tuple(self._log_ends)

    def record(
        self,
        committed_offset: int,
        log_end_offset: int,
        observed_at: datetime,
        *,
        committed_at: datetime | None = None,
    ) -> bool:
        """Take one poll's sample; return True if it counted as a new commit.

        A sample no newer than the latest one is ignored: a late or repeated
        poll carries nothing the window does not already know.
        """
        _check_offsets(committed_offset, log_end_offset)
        _check_aware(observed_at, committed_at)
        if self._latest is not None and observed_at <= self._latest.observed_at:
            return False

        sample = Sample(committed_offset, log_end_offset, observed_at)
        is_commit = self._is_new_commit(committed_offset, committed_at)

        self._latest = sample
        self._log_ends.append(log_end_offset)
        if is_commit:
            at = observed_at if committed_at is None else committed_at
            self._commits.append(Commit(committed_offset, sample.lag, at))
        return is_commit

    def _is_new_commit(self, offset: int, committed_at: datetime | None) -> bool:
        if not self._commits:
            return True

        newest = self._commits[-1]
        if committed_at is not None:
            return committed_at > newest.at
        return offset != newest.offset


def evaluate(window: PartitionWindow, now: datetime) -> Status:
    """Return the partition's status under the rules in the module docstring."""
    latest = window.latest
    if latest is None:
        return Status.ERR
    if latest.lag == 0:
        return Status.OK

    commits = window.commits
    if _has_stopped(window, now):
        return Status.STOP
    if any(commit.lag == 0 for commit in commits):
        return Status.OK
    if len(commits) < 2:
        return Status.ERR

    return _judge_movement(commits)


def group_status(statuses: Iterable[Status]) -> Status:
    """Return the worst status by severity; ERR for a group with no partition.

    Burrow folds STOP, STALL and REWIND into ERR at group level. Here the
    group keeps its worst partition's own word, so a dashboard says what is
    wrong without a second look.
    """
    return max(statuses, key=lambda status: status.severity, default=Status.ERR)


def _has_stopped(window: PartitionWindow, now: datetime) -> bool:
    commits = window.commits
    if len(commits) < 2:
        return False

    oldest, newest = commits[0], commits[-1]
    silent_for = now - newest.at
    span = newest.at - oldest.at
    caught_up = any(end <= newest.offset for end in window.recent_log_ends)
    return silent_for > span and not caught_up


def _judge_movement(commits: Sequence[Commit]) -> Status:
    steps = list(pairwise(commits))
    if any(after.offset < before.offset for before, after in steps):
        return Status.REWIND
    if all(after.offset == before.offset for before, after in steps):
        return Status.STALL
    if all(after.lag >= before.lag for before, after in steps):
        return Status.WARN
    return Status.OK


def _check_offsets(committed_offset: int, log_end_offset: int) -> None:
    # A group with no committed offset is reported by Kafka as -1 or None;
    # the poller must skip it rather than pass a sentinel in as a position.
    if committed_offset < 0 or log_end_offset < 0:
        raise ValueError("offsets must be zero or more")


def _check_aware(*moments: datetime | None) -> None:
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError("times must be timezone-aware")
