"""Pairing check-ins with check-outs into visits."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise

import pytest
from growth_factories import (
    DISTRICT,
    MINUTE,
    SCHOOL,
    STUDENT,
    activity,
    at,
    enrolment,
    scan,
    venue,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edustream.growth.events import Activity, EnrolmentFact, Venue
from edustream.growth.rejections import Reason, Rejection
from edustream.growth.visits import (
    DEFAULT_POLICY,
    Visit,
    VisitState,
    on_scan,
    sweep,
    visit_id,
)
from edustream.growth.vocabulary import ActivityKind, Category, Direction

IN, OUT = Direction.CHECK_IN, Direction.CHECK_OUT
DAY = "2024-09-02"
# Open 09:00-22:00, so the four-hour cap, not closing time, ends long stays.
LATE_VENUE = venue(opens_at=9 * 60, closes_at=22 * 60)


def _t(clock: str) -> int:
    return at(f"{DAY} {clock}")


def _run(
    scans: list[tuple[Direction, str]],
    *,
    place: Venue | None = LATE_VENUE,
    now: int | None = None,
) -> tuple[VisitState, list[Visit], list[Rejection]]:
    state = VisitState.empty(STUDENT)
    visits: list[Visit] = []
    rejections: list[Rejection] = []
    for direction, clock in scans:
        when = _t(clock)
        state, closed, refused = on_scan(
            state,
            scan(direction, when),
            place,
            now if now is not None else when,
            enrolment=enrolment(),
        )
        visits += closed
        rejections += refused
    return state, visits, rejections


def _spans(visits: list[Visit]) -> list[tuple[int, int, bool]]:
    return [(v.started_at, v.ended_at, v.auto_closed) for v in visits]


PAIRING = [
    pytest.param(
        [(IN, "10:00:00"), (OUT, "11:30:00")],
        [("10:00:00", "11:30:00", False)],
        [],
        id="check-in then check-out",
    ),
    pytest.param(
        [(IN, "10:00:00"), (IN, "10:01:30"), (OUT, "11:00:00")],
        [("10:00:00", "11:00:00", False)],
        [],
        id="double check-in within window counts once",
    ),
    pytest.param(
        [(IN, "10:00:00"), (IN, "10:02:00"), (OUT, "11:00:00")],
        [("10:00:00", "11:00:00", False)],
        [],
        id="double check-in exactly at the window edge counts once",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "11:00:00"), (OUT, "11:01:00")],
        [("10:00:00", "11:00:00", False)],
        [],
        id="double check-out within window counts once",
    ),
    pytest.param(
        [(IN, "10:00:00"), (IN, "10:30:00"), (OUT, "11:00:00")],
        [("10:00:00", "10:30:00", True), ("10:30:00", "11:00:00", False)],
        [],
        id="second check-in beyond window closes the first visit",
    ),
    pytest.param(
        [(OUT, "11:00:00")],
        [],
        [Reason.CHECKOUT_BEFORE_CHECKIN],
        id="check-out with no check-in",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "09:50:00"), (OUT, "10:30:00")],
        [("10:00:00", "10:30:00", False)],
        [Reason.CHECKOUT_BEFORE_CHECKIN],
        id="check-out timed before the check-in is refused",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "11:00:00"), (OUT, "11:05:00")],
        [("10:00:00", "11:00:00", False)],
        [Reason.CHECKOUT_BEFORE_CHECKIN],
        id="second check-out beyond window is refused",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "15:00:00")],
        [("10:00:00", "14:00:00", True)],
        [],
        id="check-out after the four-hour cap ends the visit at the cap",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "11:00:00"), (IN, "10:30:00")],
        [("10:00:00", "11:00:00", False)],
        [Reason.STALE_SCAN],
        id="check-in inside a recorded visit is stale",
    ),
    pytest.param(
        [(IN, "10:00:00"), (OUT, "10:00:30"), (IN, "10:01:00"), (OUT, "10:20:00")],
        [("10:00:00", "10:00:30", False), ("10:01:00", "10:20:00", False)],
        [],
        id="leave and return within the window are two visits",
    ),
]


@pytest.mark.parametrize(("scans", "expected", "reasons"), PAIRING)
def test_pairing_table(
    scans: list[tuple[Direction, str]],
    expected: list[tuple[str, str, bool]],
    reasons: list[Reason],
) -> None:
    """Scans pair into exactly the expected visits and refusals."""
    _, visits, rejections = _run(scans)

    assert _spans(visits) == [(_t(a), _t(b), auto) for a, b, auto in expected]
    assert [r.reason for r in rejections] == reasons


def test_visit_carries_ids_school_and_duration() -> None:
    """A visit names its scans, the student's school and its length."""
    _, visits, _ = _run([(IN, "10:00:00"), (OUT, "11:30:00")])

    (found,) = visits
    assert found.visit_id == visit_id(STUDENT, "v-museum", _t("10:00:00"))
    assert found.check_in_event_id == scan(IN, _t("10:00:00")).event_id
    assert found.check_out_event_id == scan(OUT, _t("11:30:00")).event_id
    assert (found.school_id, found.district_code) == (SCHOOL, DISTRICT)
    assert found.duration_ms == 90 * MINUTE
    assert (found.category, found.title) == (Category.AESTHETIC, "城市美术馆")


def test_visit_ids_repeat_on_replay_and_differ_by_check_in() -> None:
    """Replaying the same scans rebuilds the same visit ids."""
    scans = [(IN, "10:00:00"), (OUT, "11:00:00"), (IN, "12:00:00"), (OUT, "13:00:00")]

    first = [v.visit_id for v in _run(scans)[1]]
    second = [v.visit_id for v in _run(scans)[1]]

    assert first == second
    assert len(set(first)) == 2


CAPS = [
    pytest.param(9 * 60, 17 * 60, "15:00", f"{DAY} 17:00", id="closing before max"),
    pytest.param(9 * 60, 22 * 60, "10:00", f"{DAY} 14:00", id="max before closing"),
    pytest.param(None, None, "21:00", "2024-09-03 01:00", id="open around the clock"),
    pytest.param(
        18 * 60, 2 * 60, "23:00", "2024-09-03 02:00", id="closes after midnight"
    ),
    pytest.param(9 * 60, 17 * 60, "17:30", f"{DAY} 21:30", id="check-in after closing"),
    pytest.param(
        9 * 60, 17 * 60, "16:59", f"{DAY} 17:00", id="a minute before closing"
    ),
]


@pytest.mark.parametrize(("opens", "closes", "check_in", "cap"), CAPS)
def test_sweep_closes_at_closing_time_or_max(
    opens: int | None, closes: int | None, check_in: str, cap: str
) -> None:
    """A check-in with no check-out closes at the sooner of closing and max."""
    place = venue(opens_at=opens, closes_at=closes)
    state, _, _ = _run([(IN, f"{check_in}:00")], place=place)

    before, early = sweep(state, at(cap) + DEFAULT_POLICY.sweep_grace_ms - 1)
    after, closed = sweep(state, at(cap) + DEFAULT_POLICY.sweep_grace_ms)

    assert early == []
    assert before is state
    assert _spans(closed) == [(_t(f"{check_in}:00"), at(cap), True)]
    assert after.presences["v-museum"].open is None


def test_late_check_out_matches_sweep_either_way() -> None:
    """A check-out after the cap gives the same visit with or without a sweep."""
    state, _, _ = _run([(IN, "10:00:00")])
    late_out = scan(OUT, _t("15:00:00"))

    _, direct, direct_refused = on_scan(
        state, late_out, LATE_VENUE, _t("15:00:00"), enrolment=enrolment()
    )
    swept, by_sweep = sweep(state, _t("14:30:00"))
    _, after_sweep, after_refused = on_scan(
        swept, late_out, LATE_VENUE, _t("15:00:00"), enrolment=enrolment()
    )

    assert direct == by_sweep
    assert _spans(direct) == [(_t("10:00:00"), _t("14:00:00"), True)]
    assert after_sweep == []
    assert direct_refused == after_refused == []


def _screen(
    *,
    place: Venue | None = LATE_VENUE,
    course: Activity | None = None,
    activity_id: str | None = None,
    fact: EnrolmentFact | None = None,
    scanned_at: int | None = None,
) -> list[Reason]:
    when = scanned_at if scanned_at is not None else _t("10:00:00")
    _, _, refused = on_scan(
        VisitState.empty(STUDENT),
        scan(IN, when, activity_id=activity_id),
        place,
        _t("10:00:00"),
        enrolment=fact if fact is not None else enrolment(),
        activity=course,
    )
    return [r.reason for r in refused]


def test_screening_refuses_unknown_venue() -> None:
    """A scan at a venue missing from the catalogue or deleted is refused."""
    assert _screen(place=None) == [Reason.UNKNOWN_VENUE]
    assert _screen(place=venue(deleted=True)) == [Reason.UNKNOWN_VENUE]
    assert _screen(place=venue("v-other")) == [Reason.UNKNOWN_VENUE]


def test_screening_refuses_unknown_activity() -> None:
    """A scan naming an activity not catalogued at the venue is refused."""
    assert _screen(activity_id="a-pottery") == [Reason.UNKNOWN_ACTIVITY]
    elsewhere = activity(venue_id="v-gym")
    assert _screen(activity_id="a-pottery", course=elsewhere) == [
        Reason.UNKNOWN_ACTIVITY
    ]
    gone = activity(deleted=True)
    assert _screen(activity_id="a-pottery", course=gone) == [Reason.UNKNOWN_ACTIVITY]
    assert _screen(activity_id="a-pottery", course=activity()) == []


def test_screening_refuses_students_not_enrolled() -> None:
    """A student who left school cannot check in."""
    assert _screen(fact=enrolment(enrolled=False)) == [Reason.NOT_ENROLLED]
    _, _, refused = on_scan(
        VisitState.empty(STUDENT),
        scan(IN, _t("10:00:00")),
        LATE_VENUE,
        _t("10:00:00"),
        enrolment=None,
    )
    assert [r.reason for r in refused] == [Reason.NOT_ENROLLED]


def test_screening_refuses_future_times_beyond_tolerance() -> None:
    """A scan more than a minute ahead of the clock is refused."""
    tolerance = DEFAULT_POLICY.future_tolerance_ms
    assert _screen(scanned_at=_t("10:00:00") + tolerance) == []
    assert _screen(scanned_at=_t("10:00:00") + tolerance + 1) == [Reason.FUTURE_TIME]


def test_scans_later_than_max_lateness_are_stale() -> None:
    """A scan a day older than the student's newest scan is refused."""
    state, _, _ = _run([(IN, "10:00:00"), (OUT, "11:00:00")])
    old = _t("11:00:00") - DEFAULT_POLICY.max_lateness_ms - 1

    _, _, refused = on_scan(
        state,
        scan(IN, old, venue_id="v-museum"),
        LATE_VENUE,
        old,
        enrolment=enrolment(),
    )

    assert [r.reason for r in refused] == [Reason.STALE_SCAN]


def test_activity_check_in_fixes_category_and_title() -> None:
    """A check-in to an activity reports the activity, not the venue."""
    course = activity(category=Category.LABOUR, kind=ActivityKind.PROJECT)
    state, _, _ = on_scan(
        VisitState.empty(STUDENT),
        scan(IN, _t("10:00:00"), activity_id="a-pottery"),
        LATE_VENUE,
        _t("10:00:00"),
        enrolment=enrolment(),
        activity=course,
    )
    _, visits, _ = on_scan(
        state,
        scan(OUT, _t("11:00:00")),
        LATE_VENUE,
        _t("11:00:00"),
        enrolment=enrolment(),
    )

    (found,) = visits
    assert (found.activity_id, found.activity_kind) == (
        "a-pottery",
        ActivityKind.PROJECT,
    )
    assert (found.category, found.title) == (Category.LABOUR, "陶艺课")


def test_scan_for_another_student_is_a_programming_error() -> None:
    """Feeding one student's scan to another's state raises."""
    with pytest.raises(ValueError, match="another student"):
        on_scan(
            VisitState.empty("acct-other"),
            scan(IN, _t("10:00:00")),
            LATE_VENUE,
            _t("10:00:00"),
            enrolment=enrolment(),
        )


def test_state_survives_json_mid_visit() -> None:
    """State written to JSON and read back pairs the check-out the same way."""
    state, _, _ = _run([(IN, "10:00:00")])
    restored = VisitState.from_dict(json.loads(json.dumps(state.to_dict())))
    out = scan(OUT, _t("11:00:00"))

    expected = on_scan(state, out, LATE_VENUE, _t("11:00:00"), enrolment=enrolment())
    actual = on_scan(restored, out, LATE_VENUE, _t("11:00:00"), enrolment=enrolment())

    assert restored == state
    assert actual == expected
    assert (
        Visit.from_dict(json.loads(json.dumps(expected[1][0].to_dict())))
        == (expected[1][0])
    )


def test_next_close_at_names_the_earliest_cap() -> None:
    """The state says when a sweep can next close something."""
    state, _, _ = _run([(IN, "10:00:00")])

    assert VisitState.empty(STUDENT).next_close_at is None
    assert state.next_close_at == _t("14:00:00")


def test_sweep_forgets_venues_settled_beyond_lateness() -> None:
    """Presences with nothing recent are dropped, keeping state small."""
    state, _, _ = _run([(IN, "10:00:00"), (OUT, "11:00:00")])
    later = at("2024-09-04 10:00")
    state, _, _ = on_scan(
        state,
        scan(IN, later, venue_id="v-gym"),
        venue("v-gym", categories=(Category.PHYSICAL,)),
        later,
        enrolment=enrolment(),
    )

    swept, closed = sweep(state, later)

    assert closed == []
    assert set(swept.presences) == {"v-gym"}


# Two venues: one with hours, one around the clock; scans over two days.
_VENUES = {
    "v-museum": venue("v-museum", opens_at=9 * 60, closes_at=17 * 60),
    "v-park": venue("v-park", opens_at=None, closes_at=None),
}
_START = at("2024-09-02 06:00")
_scans = st.lists(
    st.tuples(
        st.sampled_from(sorted(_VENUES)),
        st.sampled_from([IN, OUT]),
        # Mostly within one morning, so scans pair and repeat; some spread
        # over two days, so caps, closing times and staleness all occur.
        st.one_of(
            st.integers(min_value=4 * 3600, max_value=7 * 3600),
            st.integers(min_value=0, max_value=48 * 3600),
        ),
        st.booleans(),
    ),
    max_size=40,
)


def _replay(
    scans: list[tuple[str, Direction, int, bool]],
) -> tuple[list[Visit], VisitState]:
    state = VisitState.empty(STUDENT)
    visits: list[Visit] = []
    now = _START
    for venue_id, direction, offset, sweep_after in scans:
        when = _START + offset * 1000
        now = max(now, when)
        state, closed, _ = on_scan(
            state,
            scan(direction, when, venue_id=venue_id),
            _VENUES[venue_id],
            now,
            enrolment=enrolment(),
        )
        visits += closed
        if sweep_after:
            state, swept = sweep(state, now)
            visits += swept
    state, swept = sweep(state, now + 2 * DEFAULT_POLICY.max_visit_ms)
    return visits + swept, state


@settings(max_examples=300, deadline=None)
@given(_scans)
def test_visits_never_overlap_and_never_run_backwards(
    scans: list[tuple[str, Direction, int, bool]],
) -> None:
    """Whatever order scans come in, visits per venue are disjoint and valid."""
    visits, state = _replay(scans)

    by_venue: dict[str, list[Visit]] = defaultdict(list)
    for found in visits:
        assert 0 <= found.duration_ms <= DEFAULT_POLICY.max_visit_ms
        by_venue[found.venue_id].append(found)
    for stays in by_venue.values():
        stays.sort(key=lambda v: v.started_at)
        for earlier, later in pairwise(stays):
            assert earlier.ended_at <= later.started_at
    assert len({v.visit_id for v in visits}) == len(visits)
    assert all(p.open is None for p in state.presences.values())


@settings(max_examples=200, deadline=None)
@given(_scans)
def test_sweep_timing_does_not_change_visits_of_ordered_scans(
    scans: list[tuple[str, Direction, int, bool]],
) -> None:
    """With scans in time order, sweeping often or only at the end agrees."""
    ordered = sorted(scans, key=lambda s: s[2])
    never = [(v, d, o, False) for v, d, o, _ in ordered]

    often, _ = _replay(ordered)
    rarely, _ = _replay(never)

    assert sorted(often, key=lambda v: v.visit_id) == sorted(
        rarely, key=lambda v: v.visit_id
    )


@settings(max_examples=100, deadline=None)
@given(_scans)
def test_state_json_round_trip_is_exact(
    scans: list[tuple[str, Direction, int, bool]],
) -> None:
    """Any reachable state survives a JSON round trip unchanged."""
    state = VisitState.empty(STUDENT)
    for venue_id, direction, offset, _ in scans:
        when = _START + offset * 1000
        state, _, _ = on_scan(
            state,
            scan(direction, when, venue_id=venue_id),
            _VENUES[venue_id],
            when,
            enrolment=enrolment(),
        )

    assert VisitState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
