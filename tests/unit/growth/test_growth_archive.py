"""A student's archive: identity, conflicts and voiding."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from growth_factories import (
    MINUTE,
    STUDENT,
    archive_of,
    at,
    visit_statement,
    void,
)

from edustream.growth.archive import ApplyOutcome, Archive, refuse_conflict
from edustream.growth.rejections import Reason
from edustream.growth.statements import Statement, statement_for_void
from edustream.growth.terms import Term, term_of
from edustream.growth.vocabulary import Category

MORNING = at("2024-09-02 10:00")
NOW = at("2024-09-10 12:00")


def _void_of(target: Statement, when: str = "2024-09-08 09:00") -> Statement:
    return statement_for_void(void(target.id, at(when)), now=at(when))


@pytest.mark.parametrize(
    ("second", "outcome"),
    [
        pytest.param(lambda s: s, ApplyOutcome.DUPLICATE, id="same statement"),
        pytest.param(
            lambda s: replace(s, stored=s.stored + MINUTE),
            ApplyOutcome.DUPLICATE,
            id="stored later",
        ),
        pytest.param(
            lambda s: replace(s, result_duration="PT2H"),
            ApplyOutcome.CONFLICT,
            id="other duration",
        ),
        pytest.param(
            lambda s: replace(s, context_category=Category.LABOUR),
            ApplyOutcome.CONFLICT,
            id="other category",
        ),
    ],
)
def test_statement_identity(
    second: Callable[[Statement], Statement], outcome: ApplyOutcome
) -> None:
    """A known id is a duplicate with equal content, else a conflict."""
    first = visit_statement(MORNING, 90)
    archive = archive_of()

    assert archive.apply(first) is ApplyOutcome.NEW
    assert archive.apply(second(first)) is outcome
    assert len(archive) == 1
    assert archive.get(first.id) == first


def test_conflict_keeps_the_first_content() -> None:
    """A conflicting statement changes neither entries nor counts."""
    first = visit_statement(MORNING, 90)
    archive = archive_of(first)

    archive.apply(replace(first, result_duration="PT3H"))

    assert archive.statements() == [first]
    assert archive.tally.tally(term_of(MORNING).id, Category.AESTHETIC).minutes == 90


def test_conflict_refusal_names_the_statement() -> None:
    """The dead-letter reason for a conflict is statement_conflict."""
    statement = visit_statement(MORNING, 90)

    refusal = refuse_conflict(statement)

    assert (refusal.reason, refusal.source_event_id) == (
        Reason.STATEMENT_CONFLICT,
        statement.id,
    )


def test_void_drops_statement_from_queries_but_keeps_it() -> None:
    """A voided statement is kept, marked, and left out of queries and counts."""
    kept = visit_statement(MORNING, 30, venue_id="v-a")
    gone = visit_statement(MORNING + 60 * MINUTE, 45, venue_id="v-b")
    archive = archive_of(kept, gone)
    term = term_of(MORNING).id

    assert archive.apply(_void_of(gone)) is ApplyOutcome.NEW

    assert archive.statements() == [kept]
    assert archive.get(gone.id) == gone
    assert archive.is_voided(gone.id)
    tally = archive.tally.tally(term, Category.AESTHETIC)
    assert (tally.minutes, tally.visits, tally.distinct_venues) == (30, 1, 1)


def test_void_before_its_target_still_voids_it() -> None:
    """A void that overtakes its target applies when the target arrives."""
    target = visit_statement(MORNING, 30)
    archive = archive_of(_void_of(target))

    assert archive.apply(target) is ApplyOutcome.NEW

    assert archive.statements() == []
    assert archive.tally.tally(term_of(MORNING).id, Category.AESTHETIC).visits == 0


def test_voiding_a_void_does_nothing() -> None:
    """A void aimed at a voiding statement leaves its target voided."""
    target = visit_statement(MORNING, 30)
    first_void = _void_of(target)
    archive = archive_of(target, first_void)

    archive.apply(_void_of(first_void, "2024-09-09 09:00"))

    assert archive.is_voided(target.id)
    assert not archive.is_voided(first_void.id)
    assert archive.statements() == []


def test_second_void_of_one_statement_counts_once() -> None:
    """Voiding twice takes the contribution back once."""
    kept = visit_statement(MORNING, 30)
    gone = visit_statement(MORNING + 60 * MINUTE, 45)
    archive = archive_of(kept, gone, _void_of(gone))

    archive.apply(_void_of(gone, "2024-09-09 09:00"))

    tally = archive.tally.tally(term_of(MORNING).id, Category.AESTHETIC)
    assert (tally.minutes, tally.visits) == (30, 1)


def test_affected_term_of_a_void_is_its_targets() -> None:
    """A spring void of an autumn entry re-evaluates the autumn term."""
    target = visit_statement(MORNING, 30)
    late_void = _void_of(target, "2025-03-01 09:00")
    archive = archive_of(target)

    assert archive.affected_term(target) == Term.parse("2024-2025-autumn")
    assert archive.affected_term(late_void) == Term.parse("2024-2025-autumn")
    assert archive_of().affected_term(late_void) is None


def test_statement_for_another_student_is_refused() -> None:
    """An archive holds one student's statements only."""
    with pytest.raises(ValueError, match="another student"):
        Archive("acct-other").apply(visit_statement(MORNING, 30))


def test_archive_survives_json() -> None:
    """Statements, voids and counts come back the same from JSON."""
    kept = visit_statement(MORNING, 30, venue_id="v-a")
    gone = visit_statement(MORNING + 60 * MINUTE, 45, venue_id="v-b")
    archive = archive_of(kept, gone, _void_of(gone))

    restored = Archive.from_dict(json.loads(json.dumps(archive.to_dict())))

    assert restored.student_account == STUDENT
    assert restored.all_statements() == archive.all_statements()
    assert restored.statements() == [kept]
    assert restored.is_voided(gone.id)
    assert restored.tally.summary() == archive.tally.summary()
