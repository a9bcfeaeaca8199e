"""Visits: check-ins paired with check-outs, per student and venue.

Duties:

- screen each scan: the venue and activity must be catalogued, the student
  enrolled, the time not in the future and not staler than the flow accepts;
- pair a check-in with the next check-out at the same venue into a ``Visit``;
- count repeated scans in one direction within a short window as one scan;
- close a check-in that never gets its check-out at the venue's next closing
  time or after a maximum stay, whichever comes first, flagged auto-closed;
- derive visit ids from (student, venue, check-in time), so a replay rebuilds
  the same visits and therefore the same statement ids.

``on_scan`` and ``sweep`` are pure: they return a new ``VisitState`` and never
touch their input. One state holds one student's presences at every venue,
matching a scan topic keyed by student account. State round-trips through
``to_dict``/``from_dict`` as plain JSON for a Faust table.

When ``sweep`` runs does not change the visits of scans that arrive in time
order: a scan after a visit's cap closes that visit at the cap, exactly as
the sweep would have. Only a scan uploaded more than ``sweep_grace_ms`` after
the cap of a visit it belongs to can find the visit already closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edustream.growth.events import Activity, EnrolmentFact, Scan, Venue
from edustream.growth.identity import derive_id
from edustream.growth.rejections import Reason, Rejection
from edustream.growth.vocabulary import ActivityKind, Category, Direction
from edustream.growth.wire import (
    Fields,
    reading,
    to_bool,
    to_int,
    to_optional_int,
    to_optional_text,
    to_text,
)


@dataclass(frozen=True, slots=True)
class VisitPolicy:
    """The timing rules of pairing; the defaults are the production values."""

    # Students tap twice when a device is slow to beep; two minutes covers
    # that without merging a real leave-and-return.
    double_scan_window_ms: int = 120_000
    # A forgotten check-out must not earn a whole day; four hours covers the
    # longest catalogued session.
    max_visit_ms: int = 4 * 3_600_000
    # Device clocks drift; a minute ahead is drift, more is a broken clock.
    future_tolerance_ms: int = 60_000
    # Devices upload offline scans late; a day behind the student's newest
    # scan is the most the flow waits for, and bounds the state kept.
    max_lateness_ms: int = 24 * 3_600_000
    # Late uploads of a check-out still pair if they arrive before the sweep
    # closes the visit; the grace gives them a quarter of an hour.
    sweep_grace_ms: int = 15 * 60_000


DEFAULT_POLICY = VisitPolicy()


@dataclass(frozen=True, slots=True)
class Visit:
    """A stay of one student at one venue, from check-in to check-out."""

    visit_id: str
    student_account: str
    venue_id: str
    activity_id: str | None
    activity_kind: ActivityKind | None
    category: Category
    title: str
    started_at: int
    ended_at: int
    auto_closed: bool
    check_in_event_id: str
    check_out_event_id: str | None
    school_id: str
    district_code: str

    @property
    def duration_ms(self) -> int:
        """Length of the stay in milliseconds; never negative."""
        return self.ended_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """The visit as a dict for JSON."""
        return {
            "visit_id": self.visit_id,
            "student_account": self.student_account,
            "venue_id": self.venue_id,
            "activity_id": self.activity_id,
            "activity_kind": _kind_value(self.activity_kind),
            "category": self.category.value,
            "title": self.title,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "auto_closed": self.auto_closed,
            "check_in_event_id": self.check_in_event_id,
            "check_out_event_id": self.check_out_event_id,
            "school_id": self.school_id,
            "district_code": self.district_code,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Visit:
        """Read a visit written by ``to_dict``."""
        with reading("Visit"):
            kind = data["activity_kind"]
            return cls(
                visit_id=to_text(data["visit_id"]),
                student_account=to_text(data["student_account"]),
                venue_id=to_text(data["venue_id"]),
                activity_id=to_optional_text(data["activity_id"]),
                activity_kind=None if kind is None else ActivityKind(kind),
                category=Category(data["category"]),
                title=to_text(data["title"]),
                started_at=to_int(data["started_at"]),
                ended_at=to_int(data["ended_at"]),
                auto_closed=to_bool(data["auto_closed"]),
                check_in_event_id=to_text(data["check_in_event_id"]),
                check_out_event_id=to_optional_text(data["check_out_event_id"]),
                school_id=to_text(data["school_id"]),
                district_code=to_text(data["district_code"]),
            )


@dataclass(frozen=True, slots=True)
class OpenCheckIn:
    """A check-in waiting for its check-out, with what its visit will need.

    What the visit reports (category, title, school) is fixed at check-in, so
    a catalogue or registry change during the stay does not alter the visit.
    """

    event_id: str
    scanned_at: int
    closes_at: int
    activity_id: str | None
    activity_kind: ActivityKind | None
    category: Category
    title: str
    school_id: str
    district_code: str

    def to_dict(self) -> dict[str, Any]:
        """The check-in as a dict for JSON."""
        return {
            "event_id": self.event_id,
            "scanned_at": self.scanned_at,
            "closes_at": self.closes_at,
            "activity_id": self.activity_id,
            "activity_kind": _kind_value(self.activity_kind),
            "category": self.category.value,
            "title": self.title,
            "school_id": self.school_id,
            "district_code": self.district_code,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> OpenCheckIn:
        """Read a check-in written by ``to_dict``."""
        kind = data["activity_kind"]
        return cls(
            event_id=to_text(data["event_id"]),
            scanned_at=to_int(data["scanned_at"]),
            closes_at=to_int(data["closes_at"]),
            activity_id=to_optional_text(data["activity_id"]),
            activity_kind=None if kind is None else ActivityKind(kind),
            category=Category(data["category"]),
            title=to_text(data["title"]),
            school_id=to_text(data["school_id"]),
            district_code=to_text(data["district_code"]),
        )


@dataclass(frozen=True, slots=True)
class Presence:
    """Where one student stands at one venue."""

    open: OpenCheckIn | None = None
    # Time of the latest accepted check-out, to spot a repeated tap.
    last_out: int | None = None
    # End of the latest visit here; no new check-in may start before it.
    last_end: int | None = None
    # The latest visit was auto-closed and no check-out has come since: a
    # late check-out for it is expected and changes nothing.
    awaiting_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The presence as a dict for JSON."""
        return {
            "open": None if self.open is None else self.open.to_dict(),
            "last_out": self.last_out,
            "last_end": self.last_end,
            "awaiting_out": self.awaiting_out,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Presence:
        """Read a presence written by ``to_dict``."""
        current = data["open"]
        return cls(
            open=None if current is None else OpenCheckIn.from_dict(current),
            last_out=to_optional_int(data["last_out"]),
            last_end=to_optional_int(data["last_end"]),
            awaiting_out=to_bool(data["awaiting_out"]),
        )


_ABSENT = Presence()


def _kind_value(kind: ActivityKind | None) -> str | None:
    return None if kind is None else kind.value


@dataclass(frozen=True, slots=True)
class VisitState:
    """One student's presences at venues, keyed by venue id."""

    student_account: str
    newest_scan: int | None = None
    presences: Mapping[str, Presence] = field(default_factory=dict)

    @classmethod
    def empty(cls, student_account: str) -> VisitState:
        """The state of a student never seen before."""
        return cls(student_account)

    @property
    def next_close_at(self) -> int | None:
        """The earliest cap among open check-ins; ``None`` when none is open.

        A caller can skip ``sweep`` for this state until this time plus the
        sweep grace has passed.
        """
        caps = [p.open.closes_at for p in self.presences.values() if p.open]
        return min(caps, default=None)

    def to_dict(self) -> dict[str, Any]:
        """The state as a dict for JSON (a Faust table value)."""
        return {
            "student_account": self.student_account,
            "newest_scan": self.newest_scan,
            "presences": {v: p.to_dict() for v, p in self.presences.items()},
        }

    @classmethod
    def from_dict(cls, data: Fields) -> VisitState:
        """Read a state written by ``to_dict``."""
        with reading("VisitState"):
            presences = data["presences"]
            return cls(
                student_account=to_text(data["student_account"]),
                newest_scan=to_optional_int(data["newest_scan"]),
                presences={v: Presence.from_dict(p) for v, p in presences.items()},
            )


@dataclass(frozen=True, slots=True)
class _Step:
    """What pairing one scan did at its venue."""

    presence: Presence
    visits: tuple[Visit, ...] = ()
    rejections: tuple[Rejection, ...] = ()


def on_scan(
    state: VisitState,
    scan: Scan,
    venue: Venue | None,
    now: int,
    *,
    enrolment: EnrolmentFact | None,
    activity: Activity | None = None,
    policy: VisitPolicy = DEFAULT_POLICY,
) -> tuple[VisitState, list[Visit], list[Rejection]]:
    """Apply one scan to a student's state.

    ``venue`` and ``activity`` are the catalogue entries for the scan's
    venue and activity (``None`` when not catalogued); ``enrolment`` is the
    student's latest enrolment fact; ``now`` is the processing time in epoch
    millis. Returns the new state, the visits the scan closed and the
    refusals to dead-letter.
    """
    if scan.student_account != state.student_account:
        raise ValueError("the scan belongs to another student's state")

    admitted = _screen(
        state,
        scan,
        venue=venue,
        activity=activity,
        enrolment=enrolment,
        now=now,
        policy=policy,
    )
    if isinstance(admitted, Rejection):
        return state, [], [admitted]

    presence = state.presences.get(scan.venue_id, _ABSENT)
    if scan.direction is Direction.CHECK_IN:
        opened = _open(scan, admitted, activity, policy)
        step = _check_in(state.student_account, scan.venue_id, presence, opened, policy)
    else:
        step = _check_out(state.student_account, presence, scan, policy)

    return _settle(state, scan, step), list(step.visits), list(step.rejections)


def sweep(
    state: VisitState, now: int, policy: VisitPolicy = DEFAULT_POLICY
) -> tuple[VisitState, list[Visit]]:
    """Close check-ins whose cap has passed, and forget settled venues.

    A check-in closes, flagged auto-closed, at its cap (the venue's closing
    time or the maximum stay, fixed at check-in) once ``now`` is past the cap
    plus the sweep grace. ``now`` is the caller's clock: wall-clock time
    closes visits overnight; an event-time watermark makes replays exact.
    Returns the same state object when nothing changed.
    """
    floor = _lateness_floor(state, policy)
    visits: list[Visit] = []
    presences: dict[str, Presence] = {}

    student = state.student_account
    for venue_id, presence in state.presences.items():
        swept, visit = _sweep_one(student, venue_id, presence, now, policy)
        if visit is not None:
            visits.append(visit)
        if not _settled_before(swept, floor):
            presences[venue_id] = swept

    if not visits and len(presences) == len(state.presences):
        return state, []
    return replace(state, presences=presences), visits


def _sweep_one(
    student: str, venue_id: str, presence: Presence, now: int, policy: VisitPolicy
) -> tuple[Presence, Visit | None]:
    current = presence.open
    if current is None or current.closes_at + policy.sweep_grace_ms > now:
        return presence, None

    visit = _close(student, venue_id, current, None)
    return Presence(None, presence.last_out, current.closes_at, True), visit


def visit_id(student_account: str, venue_id: str, checked_in_at: int) -> str:
    """The deterministic id of the visit that starts with this check-in."""
    return derive_id("visit", student_account, venue_id, checked_in_at)


@dataclass(frozen=True, slots=True)
class _Admitted:
    """The catalogue and registry facts a scan passed screening with."""

    venue: Venue
    enrolment: EnrolmentFact


def _screen(
    state: VisitState,
    scan: Scan,
    *,
    venue: Venue | None,
    activity: Activity | None,
    enrolment: EnrolmentFact | None,
    now: int,
    policy: VisitPolicy,
) -> _Admitted | Rejection:
    if venue is None or venue.deleted or venue.venue_id != scan.venue_id:
        return _refuse(scan, Reason.UNKNOWN_VENUE, "venue is not in the catalogue")
    if scan.activity_id is not None and not _activity_matches(scan, activity):
        return _refuse(scan, Reason.UNKNOWN_ACTIVITY, "activity is not at the venue")
    if enrolment is None or not enrolment.enrolled:
        return _refuse(scan, Reason.NOT_ENROLLED, "scanning student is not enrolled")

    if scan.scanned_at > now + policy.future_tolerance_ms:
        return _refuse(scan, Reason.FUTURE_TIME, "scan time is ahead of the clock")
    floor = _lateness_floor(state, policy)
    if floor is not None and scan.scanned_at < floor:
        return _refuse(scan, Reason.STALE_SCAN, "scan is older than accepted")

    return _Admitted(venue, enrolment)


def _refuse(scan: Scan, reason: Reason, message: str) -> Rejection:
    return Rejection(reason, scan.event_id, message)


def _activity_matches(scan: Scan, activity: Activity | None) -> bool:
    return (
        activity is not None
        and not activity.deleted
        and activity.activity_id == scan.activity_id
        and activity.venue_id == scan.venue_id
    )


def _open(
    scan: Scan, admitted: _Admitted, activity: Activity | None, policy: VisitPolicy
) -> OpenCheckIn:
    venue, enrolment = admitted.venue, admitted.enrolment
    cap = scan.scanned_at + policy.max_visit_ms
    closing = venue.closing_after(scan.scanned_at)
    if closing is not None:
        cap = min(cap, closing)

    return OpenCheckIn(
        event_id=scan.event_id,
        scanned_at=scan.scanned_at,
        closes_at=cap,
        activity_id=None if activity is None else activity.activity_id,
        activity_kind=None if activity is None else activity.kind,
        category=venue.primary_category if activity is None else activity.category,
        title=venue.name if activity is None else activity.name,
        school_id=enrolment.school_id,
        district_code=enrolment.district_code,
    )


def _check_in(
    student: str,
    venue_id: str,
    presence: Presence,
    opened: OpenCheckIn,
    policy: VisitPolicy,
) -> _Step:
    at = opened.scanned_at
    current = presence.open

    if current is None:
        if presence.last_end is not None and at <= presence.last_end:
            return _stale(presence, opened.event_id)
        return _Step(Presence(opened, presence.last_out, presence.last_end))

    if abs(at - current.scanned_at) <= policy.double_scan_window_ms:
        return _Step(presence)
    if at < current.scanned_at:
        return _stale(presence, opened.event_id)

    # A second check-in means the student left without checking out: the
    # first visit ends at its cap, or at the new check-in if that is sooner.
    ended = _close(student, venue_id, current, None, at)
    return _Step(Presence(opened, presence.last_out, ended.ended_at), (ended,))


def _check_out(
    student: str, presence: Presence, scan: Scan, policy: VisitPolicy
) -> _Step:
    at = scan.scanned_at
    current = presence.open

    if current is None:
        return _check_out_alone(presence, scan, policy)
    if at < current.scanned_at:
        return _refuse_checkout(presence, scan)

    if at <= current.closes_at:
        ended = _close(student, scan.venue_id, current, scan.event_id, at)
        return _Step(Presence(None, at, at), (ended,))

    # The stay outlived its cap: the visit ends at the cap, exactly as if the
    # sweep had closed it first, and this check-out is the expected late one.
    ended = _close(student, scan.venue_id, current, None)
    return _Step(Presence(None, at, ended.ended_at), (ended,))


def _check_out_alone(presence: Presence, scan: Scan, policy: VisitPolicy) -> _Step:
    at = scan.scanned_at
    last_end, last_out = presence.last_end, presence.last_out
    if presence.awaiting_out and last_end is not None and at >= last_end:
        return _Step(Presence(None, at, last_end))
    if last_out is not None and abs(at - last_out) <= policy.double_scan_window_ms:
        return _Step(presence)
    return _refuse_checkout(presence, scan)


def _refuse_checkout(presence: Presence, scan: Scan) -> _Step:
    message = "check-out has no earlier open check-in at the venue"
    rejection = Rejection(Reason.CHECKOUT_BEFORE_CHECKIN, scan.event_id, message)
    return _Step(presence, rejections=(rejection,))


def _stale(presence: Presence, event_id: str) -> _Step:
    message = "check-in falls inside or before a recorded visit at the venue"
    rejection = Rejection(Reason.STALE_SCAN, event_id, message)
    return _Step(presence, rejections=(rejection,))


def _close(
    student: str,
    venue_id: str,
    current: OpenCheckIn,
    check_out_event_id: str | None,
    at: int | None = None,
) -> Visit:
    """The visit from ``current`` to ``at`` (or to the cap, if sooner).

    Without a check-out event the visit is flagged auto-closed.
    """
    ended_at = current.closes_at if at is None else min(at, current.closes_at)
    return Visit(
        visit_id=visit_id(student, venue_id, current.scanned_at),
        student_account=student,
        venue_id=venue_id,
        activity_id=current.activity_id,
        activity_kind=current.activity_kind,
        category=current.category,
        title=current.title,
        started_at=current.scanned_at,
        ended_at=ended_at,
        auto_closed=check_out_event_id is None,
        check_in_event_id=current.event_id,
        check_out_event_id=check_out_event_id,
        school_id=current.school_id,
        district_code=current.district_code,
    )


def _settle(state: VisitState, scan: Scan, step: _Step) -> VisitState:
    newest = scan.scanned_at
    if state.newest_scan is not None:
        newest = max(newest, state.newest_scan)
    unchanged = step.presence is state.presences.get(scan.venue_id)
    if unchanged and newest == state.newest_scan:
        return state

    presences = {**state.presences, scan.venue_id: step.presence}
    return VisitState(state.student_account, newest, presences)


def _lateness_floor(state: VisitState, policy: VisitPolicy) -> int | None:
    if state.newest_scan is None:
        return None
    return state.newest_scan - policy.max_lateness_ms


def _settled_before(presence: Presence, floor: int | None) -> bool:
    """Whether nothing at this venue can matter any more.

    True when no check-in is open and every recorded time is older than the
    lateness floor, before which every scan is refused anyway.
    """
    if floor is None or presence.open is not None:
        return False
    times = (presence.last_end, presence.last_out)
    return all(t is None or t < floor for t in times)
