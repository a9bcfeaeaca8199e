"""Counts over archive entries: per student, per school and per district.

Duties:

- decide what one statement adds to the counts (its ``Contribution``): a
  visit adds a visit and its venue, a mentor's confirmation adds minutes, an
  organiser's award adds an award;
- keep per-student counts by term and category (``StudentTally``), able to
  take a contribution back when its statement is voided, and remembering
  which statements are the evidence for each count;
- keep per-school or per-district counts (``GroupTally``) that hold numbers
  and venue ids only, never an account;
- summarise counts as minutes, hours, visits and distinct venues.

Minutes come only from stays whose length can be trusted: a mentor's
confirmation, or a visit to a venue without an activity that the student
checked out of. A visit to an activity is confirmed by its mentor, so its
scanned length would count the same time twice; an auto-closed visit has a
length the student never showed, and counting it would reward forgetting to
check out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edustream.growth.statements import PLACE_TYPE, Statement, Verb, duration_seconds
from edustream.growth.terms import term_of
from edustream.growth.vocabulary import CATEGORIES, Category
from edustream.growth.wire import Fields, reading, to_int, to_optional_text, to_text


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one live statement adds to the counts of its term and category."""

    statement_id: str
    term_id: str
    category: Category
    seconds: int
    visits: int
    awards: int
    venue_id: str | None
    school_id: str | None
    district_code: str | None

    def to_dict(self) -> dict[str, Any]:
        """The contribution as a dict, for a ledger that must undo it later."""
        return {
            "statement_id": self.statement_id,
            "term_id": self.term_id,
            "category": self.category.value,
            "seconds": self.seconds,
            "visits": self.visits,
            "awards": self.awards,
            "venue_id": self.venue_id,
            "school_id": self.school_id,
            "district_code": self.district_code,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Contribution:
        """Read a contribution written by ``to_dict``."""
        with reading("Contribution"):
            return cls(
                statement_id=to_text(data["statement_id"]),
                term_id=to_text(data["term_id"]),
                category=Category(data["category"]),
                seconds=to_int(data["seconds"]),
                visits=to_int(data["visits"]),
                awards=to_int(data["awards"]),
                venue_id=to_optional_text(data["venue_id"]),
                school_id=to_optional_text(data["school_id"]),
                district_code=to_optional_text(data["district_code"]),
            )


def contribution_of(statement: Statement) -> Contribution | None:
    """What ``statement`` adds to the counts; ``None`` for a voiding one."""
    category = statement.context_category
    if statement.is_void or category is None:
        return None

    seconds, visits, awards, venue_id = _measures(statement)
    return Contribution(
        statement_id=statement.id,
        term_id=term_of(statement.timestamp).id,
        category=category,
        seconds=seconds,
        visits=visits,
        awards=awards,
        venue_id=venue_id,
        school_id=statement.context_school_id,
        district_code=statement.context_district_code,
    )


def _measures(statement: Statement) -> tuple[int, int, int, str | None]:
    """(seconds, visits, awards, venue) of one statement; see the module note."""
    verb = statement.verb_id
    if verb == Verb.ATTENDED.value:
        trusted = (
            statement.object_definition_type == PLACE_TYPE
            and not statement.context_flagged_auto_closed
        )
        seconds = _seconds(statement) if trusted else 0
        return seconds, 1, 0, statement.context_venue_id
    if verb == Verb.COMPLETED.value:
        return _seconds(statement), 0, 0, None
    if verb == Verb.EARNED.value:
        return 0, 0, 1, None
    return 0, 0, 0, None


def _seconds(statement: Statement) -> int:
    duration = statement.result_duration
    return 0 if duration is None else duration_seconds(duration)


@dataclass(frozen=True, slots=True)
class CategorySummary:
    """The counts of one category, as reports show them."""

    minutes: int
    hours: float
    visits: int
    distinct_venues: int
    awards: int

    def to_dict(self) -> dict[str, Any]:
        """The summary as a dict for JSON."""
        return {
            "minutes": self.minutes,
            "hours": self.hours,
            "visits": self.visits,
            "distinct_venues": self.distinct_venues,
            "awards": self.awards,
        }


@dataclass(slots=True)
class Tally:
    """Running counts of one category.

    Venues are kept with their visit counts, so taking a visit back drops a
    venue only when no other visit to it is left.
    """

    seconds: int = 0
    visits: int = 0
    awards: int = 0
    venue_visits: dict[str, int] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        """Whole minutes counted."""
        return self.seconds // 60

    @property
    def hours(self) -> float:
        """Hours counted, to one decimal place."""
        return round(self.seconds / 3600, 1)

    @property
    def distinct_venues(self) -> int:
        """How many different venues the counted visits went to."""
        return len(self.venue_visits)

    def add(self, contribution: Contribution) -> None:
        """Count ``contribution``."""
        self._shift(contribution, 1)

    def remove(self, contribution: Contribution) -> None:
        """Take back a contribution counted earlier."""
        self._shift(contribution, -1)

    def merge(self, other: Tally) -> None:
        """Add every count of ``other`` into this tally."""
        self.seconds += other.seconds
        self.visits += other.visits
        self.awards += other.awards
        for venue_id, count in other.venue_visits.items():
            self.venue_visits[venue_id] = self.venue_visits.get(venue_id, 0) + count

    def summary(self) -> CategorySummary:
        """The counts as minutes, hours, visits and distinct venues."""
        return CategorySummary(
            self.minutes, self.hours, self.visits, self.distinct_venues, self.awards
        )

    def _shift(self, contribution: Contribution, sign: int) -> None:
        self.seconds += sign * contribution.seconds
        self.visits += sign * contribution.visits
        self.awards += sign * contribution.awards

        venue_id = contribution.venue_id
        if venue_id is None or not contribution.visits:
            return
        count = self.venue_visits.get(venue_id, 0) + sign
        if count > 0:
            self.venue_visits[venue_id] = count
        else:
            self.venue_visits.pop(venue_id, None)


_Key = tuple[str, Category]


class StudentTally:
    """One student's counts by term and category, with their evidence."""

    __slots__ = ("_by_id", "_evidence", "_tallies")

    def __init__(self) -> None:
        self._tallies: dict[_Key, Tally] = {}
        self._evidence: dict[_Key, set[str]] = {}
        self._by_id: dict[str, Contribution] = {}

    def add(self, contribution: Contribution) -> bool:
        """Count ``contribution``; False if its statement is already counted."""
        if contribution.statement_id in self._by_id:
            return False

        key = (contribution.term_id, contribution.category)
        self._by_id[contribution.statement_id] = contribution
        self._tallies.setdefault(key, Tally()).add(contribution)
        self._evidence.setdefault(key, set()).add(contribution.statement_id)
        return True

    def remove(self, statement_id: str) -> Contribution | None:
        """Take back a statement's contribution; the one removed, if any."""
        contribution = self._by_id.pop(statement_id, None)
        if contribution is None:
            return None

        key = (contribution.term_id, contribution.category)
        self._tallies[key].remove(contribution)
        self._evidence[key].discard(statement_id)
        return contribution

    def contribution(self, statement_id: str) -> Contribution | None:
        """The counted contribution of a statement, if it is counted."""
        return self._by_id.get(statement_id)

    def tally(self, term_id: str, category: Category) -> Tally:
        """The counts of one term and category (empty if nothing counted)."""
        return self._tallies.get((term_id, category)) or Tally()

    def evidence(self, term_id: str, category: Category) -> list[Contribution]:
        """The counted contributions of one term and category, by id."""
        ids = sorted(self._evidence.get((term_id, category), ()))
        return [self._by_id[i] for i in ids]

    def term_ids(self) -> list[str]:
        """Every term with something counted, in order."""
        return sorted({term_id for term_id, _ in self._tallies})

    def summary(self, term_id: str | None = None) -> dict[Category, CategorySummary]:
        """Counts per category for one term, or over all terms if ``None``."""
        totals = {category: Tally() for category in CATEGORIES}
        for (tally_term, category), tally in self._tallies.items():
            if term_id is None or tally_term == term_id:
                totals[category].merge(tally)
        return {category: tally.summary() for category, tally in totals.items()}


class GroupLevel(StrEnum):
    """Which group a ``GroupTally`` counts by."""

    SCHOOL = "SCHOOL"
    DISTRICT = "DISTRICT"


class GroupTally:
    """Counts per school or district, term and category; no accounts.

    The caller counts each statement once and takes it back once: add the
    contribution of a statement the archive found NEW, and remove it when a
    NEW voiding statement revokes it (keeping a ledger of statement id to
    ``Contribution.to_dict()`` for that).
    """

    __slots__ = ("_tallies", "level")

    def __init__(self, level: GroupLevel) -> None:
        self.level = level
        self._tallies: dict[tuple[str, str, Category], Tally] = {}

    def add(self, contribution: Contribution) -> None:
        """Count ``contribution`` under its school or district."""
        key = self._key(contribution)
        if key is not None:
            self._tallies.setdefault(key, Tally()).add(contribution)

    def remove(self, contribution: Contribution) -> None:
        """Take back a contribution counted earlier."""
        key = self._key(contribution)
        if key is not None and key in self._tallies:
            self._tallies[key].remove(contribution)

    def group_ids(self) -> list[str]:
        """Every school or district with something counted."""
        return sorted({group for group, _, _ in self._tallies})

    def summary(self, group_id: str, term_id: str) -> dict[Category, CategorySummary]:
        """Counts per category for one group and term."""
        empty = Tally()
        return {
            category: self._tallies.get((group_id, term_id, category), empty).summary()
            for category in CATEGORIES
        }

    def _key(self, contribution: Contribution) -> tuple[str, str, Category] | None:
        if self.level is GroupLevel.SCHOOL:
            group = contribution.school_id
        else:
            group = contribution.district_code
        if group is None:
            return None
        return group, contribution.term_id, contribution.category


def tally_statements(statements: Iterable[Statement]) -> StudentTally:
    """Count live statements from scratch (all voided ones already left out)."""
    tally = StudentTally()
    for statement in statements:
        contribution = contribution_of(statement)
        if contribution is not None:
            tally.add(contribution)
    return tally
