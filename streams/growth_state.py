"""Per-student state of the growth-archive agent: tables, cache, writes.

Duties:

- ``Student``: one student's live state: the latest enrolment fact, the
  visit state (open check-ins per venue), the archive, and the inputs parked
  until the student's enrolment fact arrives;
- ``StudentStore``: reads a student from the Faust tables on first use and
  keeps the decoded objects in a bounded LRU cache; collects what changed in
  a batch and writes each changed student once (``flush``);
- ``due_times``: after a rebalance, finds every stored student with an open
  check-in or parked inputs, so their deadlines are watched again;
- ``InputOffsets``: the offset of the last input applied per source
  partition, written in the same flush as the state it produced, so an input
  delivered again (a crash before the commit, a rewound group) is known as
  already applied instead of being judged against state that includes it;

Three tables: ``growth-students`` holds enrolment, visits and parked inputs
(small, written on most events); ``growth-archives`` holds the archive
(larger, written only when a statement is new); ``growth-inputs`` holds the
applied offsets. Both are keyed by the raw
account bytes of the source message and hold JSON. A student's value also
records its partition, because coalesced writes and deadline sweeps happen
outside any single event.

Known cost: an archive is written whole, so a student with a long archive
costs more per new statement (a few hundred statements is tens of kB). A
per-statement table would fix that at the price of a prefix scan to rebuild
one archive.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TableT

from edustream.growth.archive import Archive
from edustream.growth.events import EnrolmentFact
from edustream.growth.visits import VisitState
from streams.runtime import Input

# Students whose live state is kept decoded. The tables hold everyone; the
# cache only saves decoding, so its size bounds memory, not correctness.
CACHE_SIZE = 50_000


@dataclass(slots=True)
class Student:
    """One student's live state."""

    key: bytes
    account: str
    partition: int
    enrolment: EnrolmentFact | None
    visits: VisitState
    archive: Archive
    parked: list[Input] = field(default_factory=list)
    parked_until: int | None = None
    # Per source partition ("topic:partition"), the offset of the last input
    # applied to this student. Kept in the same record as the state it
    # produced, so the two survive a crash together (see ``StudentStore``).
    applied: dict[str, int] = field(default_factory=dict)

    def state_record(self) -> dict[str, Any]:
        """The ``growth-students`` table value."""
        enrolment = self.enrolment
        return {
            "partition": self.partition,
            "enrolment": None if enrolment is None else enrolment.to_dict(),
            "visits": self.visits.to_dict(),
            "parked": [_input_record(item) for item in self.parked],
            "parked_until": self.parked_until,
            # A copy: the record may be serialized after later inputs
            # already moved the live offsets on.
            "applied": dict(self.applied),
        }


@dataclass(slots=True)
class _Dirty:
    student: Student
    state: bool = False
    archive: bool = False


class StudentStore:
    """Student state: the tables, a decoded cache and coalesced writes."""

    def __init__(
        self,
        states: TableT[bytes, Any],
        archives: TableT[bytes, Any],
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._states = states
        self._archives = archives
        self._cache: OrderedDict[bytes, Student] = OrderedDict()
        self._cache_size = cache_size
        self._dirty: dict[bytes, _Dirty] = {}

    def clear_cache(self) -> None:
        """Forget decoded state (after a rebalance); the tables still hold it."""
        self._cache.clear()

    def student(self, key: bytes, partition: int) -> Student:
        """The live state of the student keyed ``key``."""
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found

        student = self._load(key, partition)
        self._cache[key] = student
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return student

    def applied(self, item: Input) -> bool:
        """Whether the input was already applied to its student's state.

        ``InputOffsets`` answers the same per partition, but from a table of
        its own: a crash can keep a student's new state and lose the offset
        written beside it, and the input delivered again would then be
        judged against the state it produced (a check-in refused as inside
        its own visit). The student's own record cannot disagree with itself.
        """
        if item.key is None:
            return False
        cached = self._cache.get(item.key)
        if cached is not None:
            last = cached.applied.get(_offset_key(item.topic, item.partition).decode())
        else:
            stored = self._states.get(item.key) or {}
            last = stored.get("applied", {}).get(
                _offset_key(item.topic, item.partition).decode()
            )
        return last is not None and item.offset <= last

    def mark_applied(self, item: Input) -> None:
        """Record the input in its student's state, if it reached a student.

        An input that never loaded its student (poison, a bad key) leaves no
        mark: delivered again, it is refused again with the same dead letter.
        """
        student = self._cache.get(item.key) if item.key is not None else None
        if student is None:
            return
        student.applied[_offset_key(item.topic, item.partition).decode()] = item.offset
        self.touch(student, state=True)

    def touch(
        self, student: Student, *, state: bool = False, archive: bool = False
    ) -> None:
        """Mark what changed; written once per batch by ``flush``."""
        dirty = self._dirty.get(student.key)
        if dirty is None:
            dirty = self._dirty[student.key] = _Dirty(student)
        dirty.state = dirty.state or state
        dirty.archive = dirty.archive or archive

    def flush_archives(self) -> list[Awaitable[Any]]:
        """Write every changed archive; what resolves as each is stored.

        Archives go first, and the caller waits for them to be stored before
        ``flush_states``: a state record marks its inputs applied, so it
        must never outlive the archive entries those inputs made. The other
        way round is harmless: an input delivered again over a kept archive
        finds its statement already there and adds nothing.
        """
        stored = []
        for key, dirty in self._dirty.items():
            if dirty.archive:
                student = dirty.student
                archive = student.archive.to_dict()
                stored.append(_put(self._archives, key, archive, student.partition))
        return stored

    def flush_states(self) -> None:
        """Write every changed state record, after the archives."""
        for key, dirty in self._dirty.items():
            if dirty.state:
                student = dirty.student
                _put(self._states, key, student.state_record(), student.partition)
        self._dirty.clear()

    def due_times(
        self, partitions: set[int], grace_ms: int
    ) -> Iterable[tuple[int, int, bytes]]:
        """(partition, deadline, key) of stored students with something due.

        The deadline is the earliest of an open check-in's cap plus the grace
        and the end of the wait for an enrolment fact.
        """
        for key, value in self._states.items():
            if not value or value.get("partition") not in partitions:
                continue
            deadlines = [
                presence["open"]["closes_at"] + grace_ms
                for presence in value["visits"]["presences"].values()
                if presence.get("open")
            ]
            if value.get("parked_until") is not None:
                deadlines.append(value["parked_until"])
            if deadlines:
                yield value["partition"], min(deadlines), key

    def _load(self, key: bytes, partition: int) -> Student:
        account = key.decode()
        state = self._states.get(key)
        stored = self._archives.get(key)
        archive = Archive.from_dict(stored) if stored else Archive(account)
        if not state:
            return Student(
                key, account, partition, None, VisitState.empty(account), archive
            )

        enrolment = state.get("enrolment")
        return Student(
            key=key,
            account=account,
            partition=partition,
            enrolment=None if enrolment is None else EnrolmentFact.from_dict(enrolment),
            visits=VisitState.from_dict(state["visits"]),
            archive=archive,
            parked=[_input_from(item) for item in state.get("parked", ())],
            parked_until=state.get("parked_until"),
            applied=dict(state.get("applied", {})),
        )


def _put(
    table: TableT[bytes, Any], key: bytes, value: Any, partition: int
) -> Awaitable[Any]:
    """Set a table key, writing its changelog to the student's partition.

    Faust's ``table[key] = value`` takes the partition from the current
    event; a coalesced write after a batch has no single current event, so
    the partition the student was read from is given explicitly. The result
    resolves once the broker has stored the changelog record.
    """
    table.data[key] = value
    return table.send_changelog(partition, key, value)


def _input_record(item: Input) -> dict[str, Any]:
    """A parked input as JSON: its coordinates and its bytes in base64."""
    return {
        "topic": item.topic,
        "partition": item.partition,
        "offset": item.offset,
        "timestamp_ms": item.timestamp_ms,
        "key": _b64(item.key),
        "value": _b64(item.value),
    }


def _input_from(data: dict[str, Any]) -> Input:
    return Input(
        key=_bytes(data["key"]),
        value=_bytes(data["value"]),
        topic=data["topic"],
        partition=data["partition"],
        offset=data["offset"],
        timestamp_ms=data["timestamp_ms"],
    )


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class InputOffsets:
    """The last applied offset of every source partition, kept in a table."""

    def __init__(self, table: TableT[bytes, Any]) -> None:
        self._table = table
        self._applied: dict[tuple[str, int], int] = {}
        self._dirty: set[tuple[str, int]] = set()

    def clear_cache(self) -> None:
        """Forget cached offsets (after a rebalance); the table holds them."""
        self._applied.clear()

    def applied(self, item: Input) -> bool:
        """Whether this input, or a later one of its partition, was applied."""
        last = self._last(item.topic, item.partition)
        return last is not None and item.offset <= last

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last applied one, if anything was applied."""
        last = self._last(topic, partition)
        return None if last is None else last + 1

    def mark(self, item: Input) -> None:
        """Record the input as applied; written by the next ``flush``."""
        source = (item.topic, item.partition)
        self._applied[source] = item.offset
        self._dirty.add(source)

    def flush(self) -> None:
        """Write the offsets marked since the last flush."""
        for topic, partition in self._dirty:
            offset = self._applied[topic, partition]
            _put(self._table, _offset_key(topic, partition), offset, partition)
        self._dirty.clear()

    def _last(self, topic: str, partition: int) -> int | None:
        source = (topic, partition)
        if source not in self._applied:
            stored = self._table.get(_offset_key(topic, partition))
            if stored is None:
                return None
            self._applied[source] = int(stored)
        return self._applied[source]


def _offset_key(topic: str, partition: int) -> bytes:
    return f"{topic}:{partition}".encode()
