"""Counts per student, school and district."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from growth_factories import (
    DISTRICT,
    MINUTE,
    SCHOOL,
    STUDENT,
    activity,
    archive_of,
    at,
    award,
    confirmation,
    enrolment,
    visit,
    visit_statement,
    void,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edustream.growth.aggregates import (
    CategorySummary,
    Contribution,
    GroupLevel,
    GroupTally,
    contribution_of,
    tally_statements,
)
from edustream.growth.statements import (
    Statement,
    statement_for_award,
    statement_for_confirmation,
    statement_for_visit,
    statement_for_void,
)
from edustream.growth.terms import term_of
from edustream.growth.visits import Visit
from edustream.growth.vocabulary import ActivityKind, Category

MORNING = at("2024-09-02 10:00")
NOW = at("2024-09-10 12:00")
AUTUMN = "2024-2025-autumn"


def _activity_visit() -> Visit:
    return replace(
        visit(MORNING, 60),
        activity_id="a-pottery",
        activity_kind=ActivityKind.COURSE,
        category=Category.LABOUR,
    )


def _confirmed(minutes: int, when: int = MORNING) -> Statement:
    built = statement_for_confirmation(
        confirmation(minutes, when), STUDENT, activity(), enrolment(), now=NOW
    )
    assert isinstance(built, Statement)
    return built


def _earned() -> Statement:
    built = statement_for_award(award(MORNING), enrolment(), now=NOW)
    assert isinstance(built, Statement)
    return built


@pytest.mark.parametrize(
    ("statement", "seconds", "visits", "awards", "venue_id"),
    [
        pytest.param(visit_statement(MORNING, 90), 5400, 1, 0, "v-museum", id="visit"),
        pytest.param(
            visit_statement(MORNING, 240, auto_closed=True),
            0,
            1,
            0,
            "v-museum",
            id="auto-closed visit has no trusted length",
        ),
        pytest.param(
            statement_for_visit(_activity_visit(), now=NOW),
            0,
            1,
            0,
            "v-museum",
            id="activity visit: the mentor confirms the minutes",
        ),
        pytest.param(_confirmed(45), 2700, 0, 0, None, id="confirmation"),
        pytest.param(_earned(), 0, 0, 1, None, id="award"),
    ],
)
def test_contribution_table(
    statement: Statement, seconds: int, visits: int, awards: int, venue_id: str | None
) -> None:
    """Each kind of statement adds what the counting rules say."""
    found = contribution_of(statement)

    assert found is not None
    assert (found.seconds, found.visits, found.awards, found.venue_id) == (
        seconds,
        visits,
        awards,
        venue_id,
    )
    assert (found.term_id, found.school_id, found.district_code) == (
        AUTUMN,
        SCHOOL,
        DISTRICT,
    )


def test_void_contributes_nothing() -> None:
    """A voiding statement is not itself counted."""
    voiding = statement_for_void(void("x", MORNING), now=NOW)

    assert contribution_of(voiding) is None


def test_student_summary_per_term_and_category() -> None:
    """Minutes, hours, visits and distinct venues per term and category."""
    archive = archive_of(
        visit_statement(MORNING, 90, venue_id="v-a"),
        visit_statement(MORNING + 120 * MINUTE, 30, venue_id="v-a"),
        visit_statement(MORNING + 240 * MINUTE, 15, venue_id="v-b"),
        _confirmed(600),
        visit_statement(at("2025-03-03 10:00"), 60, venue_id="v-c"),
    )

    autumn = archive.tally.summary(AUTUMN)
    lifelong = archive.tally.summary()

    assert autumn[Category.AESTHETIC] == CategorySummary(135, 2.2, 3, 2, 0)
    assert autumn[Category.LABOUR] == CategorySummary(600, 10.0, 0, 0, 0)
    assert autumn[Category.MORAL] == CategorySummary(0, 0.0, 0, 0, 0)
    assert lifelong[Category.AESTHETIC] == CategorySummary(195, 3.2, 4, 3, 0)
    assert list(lifelong) == list(Category)
    assert archive.tally.term_ids() == [AUTUMN, "2024-2025-spring"]


def test_voiding_one_of_two_visits_keeps_the_venue() -> None:
    """A venue stays counted while another visit to it is live."""
    first = visit_statement(MORNING, 30)
    second = visit_statement(MORNING + 60 * MINUTE, 30)
    archive = archive_of(first, second)

    archive.apply(statement_for_void(void(second.id, NOW), now=NOW))

    tally = archive.tally.tally(AUTUMN, Category.AESTHETIC)
    assert (tally.visits, tally.distinct_venues, tally.minutes) == (1, 1, 30)
    archive.apply(statement_for_void(void(first.id, NOW + 1), now=NOW + 1))
    assert archive.tally.tally(AUTUMN, Category.AESTHETIC).distinct_venues == 0


def test_group_tally_counts_without_accounts() -> None:
    """School and district counts hold numbers and venue ids, no accounts."""
    schools = GroupTally(GroupLevel.SCHOOL)
    districts = GroupTally(GroupLevel.DISTRICT)
    contributions = [
        contribution_of(visit_statement(MORNING, 90)),
        contribution_of(_confirmed(60)),
    ]
    for found in contributions:
        assert found is not None
        schools.add(found)
        districts.add(found)

    by_school = schools.summary(SCHOOL, AUTUMN)
    assert by_school[Category.AESTHETIC] == CategorySummary(90, 1.5, 1, 1, 0)
    assert by_school[Category.LABOUR] == CategorySummary(60, 1.0, 0, 0, 0)
    assert districts.summary(DISTRICT, AUTUMN) == by_school
    assert schools.group_ids() == [SCHOOL]
    rendered = json.dumps({c.value: s.to_dict() for c, s in by_school.items()})
    assert STUDENT not in rendered

    first = contributions[0]
    assert first is not None
    schools.remove(first)
    assert schools.summary(SCHOOL, AUTUMN)[Category.AESTHETIC].visits == 0


def test_contribution_survives_json() -> None:
    """A contribution kept in a ledger reads back equal."""
    found = contribution_of(visit_statement(MORNING, 90))
    assert found is not None

    assert Contribution.from_dict(json.loads(json.dumps(found.to_dict()))) == found


_events = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # venue
        st.integers(min_value=0, max_value=300),  # day offset
        st.integers(min_value=0, max_value=240),  # minutes
        st.booleans(),  # auto-closed
        st.one_of(st.none(), st.integers(min_value=0, max_value=30)),  # void which
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(_events)
def test_running_counts_equal_counting_from_scratch(
    events: list[tuple[int, int, int, bool, int | None]],
) -> None:
    """Counts kept through adds and voids equal a recount of live entries."""
    archive = archive_of()
    applied: list[Statement] = []
    for venue_no, day, minutes, auto, voids in events:
        started = MORNING + day * 86_400_000
        statement = visit_statement(
            started, minutes, venue_id=f"v-{venue_no}", auto_closed=auto
        )
        archive.apply(statement)
        applied.append(statement)
        if voids is not None and voids < len(applied):
            target = applied[voids].id
            archive.apply(statement_for_void(void(target, started), now=started))

    recount = tally_statements(archive.statements())
    for term_id in {term_of(s.timestamp).id for s in applied}:
        assert archive.tally.summary(term_id) == recount.summary(term_id)
    assert archive.tally.summary() == recount.summary()
