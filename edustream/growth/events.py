"""The records that flow into the growth archive.

Duties: one frozen dataclass per input event type, each with ``to_dict`` (a
dict fit for fastavro and JSON) and ``from_dict`` (accepting either form and
refusing malformed input as poison). Every record carries ``event_id`` and
``occurred_at``; times are epoch milliseconds (UTC).

- ``Venue`` and ``Activity``: the compacted catalogue, with a tombstone flag;
- ``Scan``: a check-in or check-out at a venue device;
- ``MentorConfirmation``: a mentor confirming minutes for a group;
- ``CertificateAward``: a certificate an organiser awarded;
- ``Void``: an organiser revoking an archive entry;
- ``EnrolmentFact``: whether a student account is enrolled, and where.

Students appear only as opaque accounts: no names, no ID numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from edustream.errors import PoisonError
from edustream.growth.terms import local_date, local_minute
from edustream.growth.vocabulary import ActivityKind, Category, Direction
from edustream.growth.wire import (
    Fields,
    reading,
    to_bool,
    to_int,
    to_millis,
    to_optional_int,
    to_optional_text,
    to_text,
)

MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class Venue:
    """A catalogued venue of one or more of the five educations.

    ``opens_at`` and ``closes_at`` are minutes after local midnight
    (Asia/Shanghai). Both ``None`` means open around the clock;
    ``closes_at <= opens_at`` means the venue closes after midnight.
    """

    event_id: str
    occurred_at: int
    venue_id: str
    name: str
    district_code: str
    categories: tuple[Category, ...]
    opens_at: int | None
    closes_at: int | None
    capacity: int
    deleted: bool = False

    @property
    def primary_category(self) -> Category:
        """The category a plain visit counts under: the first one listed."""
        return self.categories[0]

    def closing_after(self, millis: int) -> int | None:
        """The first closing instant after ``millis``, or ``None`` if never.

        A check-in after today's closing (a late event) closes at tomorrow's
        closing time, so a visit never ends before it starts.
        """
        if self.closes_at is None:
            return None

        day = local_date(millis)
        closing = local_minute(day, self.closes_at)
        if closing <= millis:
            closing = local_minute(day + timedelta(days=1), self.closes_at)
        return closing

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "venue_id": self.venue_id,
            "name": self.name,
            "district_code": self.district_code,
            "categories": [c.value for c in self.categories],
            "opens_at": self.opens_at,
            "closes_at": self.closes_at,
            "capacity": self.capacity,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Venue:
        """Read a venue; poison if malformed or its hours are impossible."""
        with reading("Venue"):
            venue = cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                venue_id=to_text(data["venue_id"]),
                name=to_text(data["name"]),
                district_code=to_text(data["district_code"]),
                categories=tuple(Category(c) for c in data["categories"]),
                opens_at=to_optional_int(data["opens_at"]),
                closes_at=to_optional_int(data["closes_at"]),
                capacity=to_int(data["capacity"]),
                deleted=to_bool(data.get("deleted", False)),
            )

        _check_venue(venue)
        return venue


def _check_venue(venue: Venue) -> None:
    if not venue.categories and not venue.deleted:
        raise PoisonError("invalid_record", "Venue has no category")
    if (venue.opens_at is None) != (venue.closes_at is None):
        raise PoisonError("invalid_record", "Venue has only one of its hours")
    for minute in (venue.opens_at, venue.closes_at):
        if minute is not None and not 0 <= minute <= MINUTES_PER_DAY:
            raise PoisonError("invalid_record", "Venue hours are outside a day")
    if venue.capacity < 0:
        raise PoisonError("invalid_record", "Venue capacity is negative")


@dataclass(frozen=True, slots=True)
class Activity:
    """A catalogued course, activity, project or study tour at a venue."""

    event_id: str
    occurred_at: int
    activity_id: str
    venue_id: str
    name: str
    category: Category
    planned_minutes: int
    mentor_account: str
    kind: ActivityKind
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "activity_id": self.activity_id,
            "venue_id": self.venue_id,
            "name": self.name,
            "category": self.category.value,
            "planned_minutes": self.planned_minutes,
            "mentor_account": self.mentor_account,
            "kind": self.kind.value,
            "deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Activity:
        """Read an activity; poison if malformed."""
        with reading("Activity"):
            activity = cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                activity_id=to_text(data["activity_id"]),
                venue_id=to_text(data["venue_id"]),
                name=to_text(data["name"]),
                category=Category(data["category"]),
                planned_minutes=to_int(data["planned_minutes"]),
                mentor_account=to_text(data["mentor_account"]),
                kind=ActivityKind(data["kind"]),
                deleted=to_bool(data.get("deleted", False)),
            )

        if activity.planned_minutes < 0:
            raise PoisonError("invalid_record", "Activity has negative minutes")
        return activity


@dataclass(frozen=True, slots=True)
class Scan:
    """A check-in or check-out scanned at a venue device."""

    event_id: str
    occurred_at: int
    device_id: str
    student_account: str
    venue_id: str
    activity_id: str | None
    direction: Direction
    scanned_at: int

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "device_id": self.device_id,
            "student_account": self.student_account,
            "venue_id": self.venue_id,
            "activity_id": self.activity_id,
            "direction": self.direction.value,
            "scanned_at": self.scanned_at,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Scan:
        """Read a scan; poison if malformed."""
        with reading("Scan"):
            return cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                device_id=to_text(data["device_id"]),
                student_account=to_text(data["student_account"]),
                venue_id=to_text(data["venue_id"]),
                activity_id=to_optional_text(data.get("activity_id")),
                direction=Direction(data["direction"]),
                scanned_at=to_millis(data["scanned_at"]),
            )


@dataclass(frozen=True, slots=True)
class MentorConfirmation:
    """A mentor confirming minutes of an activity for a group of students."""

    event_id: str
    occurred_at: int
    confirmation_id: str
    mentor_account: str
    activity_id: str
    group_id: str
    student_accounts: tuple[str, ...]
    minutes: int
    confirmed_at: int

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "confirmation_id": self.confirmation_id,
            "mentor_account": self.mentor_account,
            "activity_id": self.activity_id,
            "group_id": self.group_id,
            "student_accounts": list(self.student_accounts),
            "minutes": self.minutes,
            "confirmed_at": self.confirmed_at,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> MentorConfirmation:
        """Read a confirmation; poison if malformed or without minutes."""
        with reading("MentorConfirmation"):
            confirmation = cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                confirmation_id=to_text(data["confirmation_id"]),
                mentor_account=to_text(data["mentor_account"]),
                activity_id=to_text(data["activity_id"]),
                group_id=to_text(data["group_id"]),
                student_accounts=tuple(to_text(a) for a in data["student_accounts"]),
                minutes=to_int(data["minutes"]),
                confirmed_at=to_millis(data["confirmed_at"]),
            )

        if confirmation.minutes <= 0:
            raise PoisonError("invalid_record", "MentorConfirmation has no minutes")
        return confirmation


@dataclass(frozen=True, slots=True)
class CertificateAward:
    """A certificate an organiser awarded a student (a prize, a title)."""

    event_id: str
    occurred_at: int
    award_id: str
    student_account: str
    title: str
    category: Category
    issuer: str

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "award_id": self.award_id,
            "student_account": self.student_account,
            "title": self.title,
            "category": self.category.value,
            "issuer": self.issuer,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> CertificateAward:
        """Read an award; poison if malformed."""
        with reading("CertificateAward"):
            return cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                award_id=to_text(data["award_id"]),
                student_account=to_text(data["student_account"]),
                title=to_text(data["title"]),
                category=Category(data["category"]),
                issuer=to_text(data["issuer"]),
            )


@dataclass(frozen=True, slots=True)
class Void:
    """An organiser revoking one statement of a student's archive.

    ``student_account`` names the archive the statement lives in, so the
    void reaches the same partition as the statement it revokes.
    """

    event_id: str
    occurred_at: int
    statement_id: str
    student_account: str
    by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "statement_id": self.statement_id,
            "student_account": self.student_account,
            "by": self.by,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Void:
        """Read a void; poison if malformed."""
        with reading("Void"):
            return cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                statement_id=to_text(data["statement_id"]),
                student_account=to_text(data["student_account"]),
                by=to_text(data["by"]),
                reason=to_text(data["reason"]),
            )


@dataclass(frozen=True, slots=True)
class EnrolmentFact:
    """Whether a student account is enrolled, at which school and district."""

    event_id: str
    occurred_at: int
    student_account: str
    school_id: str
    district_code: str
    enrolled: bool

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "student_account": self.student_account,
            "school_id": self.school_id,
            "district_code": self.district_code,
            "enrolled": self.enrolled,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> EnrolmentFact:
        """Read an enrolment fact; poison if malformed."""
        with reading("EnrolmentFact"):
            return cls(
                event_id=to_text(data["event_id"]),
                occurred_at=to_millis(data["occurred_at"]),
                student_account=to_text(data["student_account"]),
                school_id=to_text(data["school_id"]),
                district_code=to_text(data["district_code"]),
                enrolled=to_bool(data["enrolled"]),
            )
