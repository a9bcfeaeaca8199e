"""Builders of growth records for tests, with readable defaults.

Times are given as Shanghai wall-clock strings; event ids are derived from
the arguments, so a test that builds the same record twice gets the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from edustream.growth.archive import Archive
from edustream.growth.events import (
    Activity,
    CertificateAward,
    EnrolmentFact,
    MentorConfirmation,
    Scan,
    Venue,
    Void,
)
from edustream.growth.statements import Statement, statement_for_visit
from edustream.growth.terms import SHANGHAI
from edustream.growth.visits import Visit, visit_id
from edustream.growth.vocabulary import ActivityKind, Category, Direction
from edustream.growth.wire import to_millis

_TEST_NAMESPACE = uuid.UUID("0b0e5d8c-52a4-4f0e-9a51-0d7c6b1f2e33")

STUDENT = "acct-7f3a9c"
SCHOOL = "school-042"
DISTRICT = "310104"
MENTOR = "mentor-5d1e"
ORGANISER = "organiser-91b2"
MINUTE = 60_000
HOUR = 60 * MINUTE


def at(text: str) -> int:
    """Epoch millis of a Shanghai wall-clock time such as '2024-09-02 10:00'."""
    layout = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    local = datetime.strptime(text, layout).replace(tzinfo=SHANGHAI)
    return to_millis(local)


def event_id(*parts: object) -> str:
    """A stable UUID for a test record built from ``parts``."""
    return str(uuid.uuid5(_TEST_NAMESPACE, repr(parts)))


def venue(
    venue_id: str = "v-museum",
    *,
    categories: tuple[Category, ...] = (Category.AESTHETIC,),
    opens_at: int | None = 9 * 60,
    closes_at: int | None = 17 * 60,
    deleted: bool = False,
    name: str = "城市美术馆",
) -> Venue:
    """A venue open 09:00-17:00 unless told otherwise."""
    return Venue(
        event_id=event_id("venue", venue_id, deleted),
        occurred_at=at("2024-08-01 09:00"),
        venue_id=venue_id,
        name=name,
        district_code=DISTRICT,
        categories=categories,
        opens_at=opens_at,
        closes_at=closes_at,
        capacity=200,
        deleted=deleted,
    )


def activity(
    activity_id: str = "a-pottery",
    *,
    venue_id: str = "v-museum",
    category: Category = Category.LABOUR,
    kind: ActivityKind = ActivityKind.COURSE,
    mentor: str = MENTOR,
    name: str = "陶艺课",
    deleted: bool = False,
) -> Activity:
    """A catalogued course at the default venue."""
    return Activity(
        event_id=event_id("activity", activity_id),
        occurred_at=at("2024-08-01 09:00"),
        activity_id=activity_id,
        venue_id=venue_id,
        name=name,
        category=category,
        planned_minutes=90,
        mentor_account=mentor,
        kind=kind,
        deleted=deleted,
    )


def enrolment(student: str = STUDENT, *, enrolled: bool = True) -> EnrolmentFact:
    """An enrolment fact for ``student`` at the default school."""
    return EnrolmentFact(
        event_id=event_id("enrolment", student, enrolled),
        occurred_at=at("2024-08-20 09:00"),
        student_account=student,
        school_id=SCHOOL,
        district_code=DISTRICT,
        enrolled=enrolled,
    )


def scan(
    direction: Direction,
    scanned_at: int,
    *,
    student: str = STUDENT,
    venue_id: str = "v-museum",
    activity_id: str | None = None,
) -> Scan:
    """A scan at the default venue."""
    return Scan(
        event_id=event_id("scan", direction, scanned_at, student, venue_id),
        occurred_at=scanned_at,
        device_id="dev-01",
        student_account=student,
        venue_id=venue_id,
        activity_id=activity_id,
        direction=direction,
        scanned_at=scanned_at,
    )


def confirmation(
    minutes: int,
    confirmed_at: int,
    *,
    students: tuple[str, ...] = (STUDENT,),
    activity_id: str = "a-pottery",
    mentor: str = MENTOR,
    confirmation_id: str | None = None,
) -> MentorConfirmation:
    """A mentor confirmation of ``minutes`` for ``students``."""
    cid = confirmation_id or f"c-{confirmed_at}-{minutes}"
    return MentorConfirmation(
        event_id=event_id("confirmation", cid),
        occurred_at=confirmed_at,
        confirmation_id=cid,
        mentor_account=mentor,
        activity_id=activity_id,
        group_id="g-1",
        student_accounts=students,
        minutes=minutes,
        confirmed_at=confirmed_at,
    )


def award(
    awarded_at: int,
    *,
    title: str = "青少年书画比赛一等奖",
    category: Category = Category.AESTHETIC,
    student: str = STUDENT,
) -> CertificateAward:
    """An organiser's award."""
    return CertificateAward(
        event_id=event_id("award", awarded_at, title),
        occurred_at=awarded_at,
        award_id=f"aw-{awarded_at}",
        student_account=student,
        title=title,
        category=category,
        issuer="市青少年宫",
    )


def void(statement_id: str, voided_at: int, *, student: str = STUDENT) -> Void:
    """An organiser voiding ``statement_id``."""
    return Void(
        event_id=event_id("void", statement_id, voided_at),
        occurred_at=voided_at,
        statement_id=statement_id,
        student_account=student,
        by=ORGANISER,
        reason="重复登记",
    )


def visit(
    started_at: int,
    minutes: int,
    *,
    venue_id: str = "v-museum",
    category: Category = Category.AESTHETIC,
    auto_closed: bool = False,
    student: str = STUDENT,
) -> Visit:
    """A closed visit to a venue without an activity."""
    return Visit(
        visit_id=visit_id(student, venue_id, started_at),
        student_account=student,
        venue_id=venue_id,
        activity_id=None,
        activity_kind=None,
        category=category,
        title="城市美术馆",
        started_at=started_at,
        ended_at=started_at + minutes * MINUTE,
        auto_closed=auto_closed,
        check_in_event_id=event_id("in", started_at),
        check_out_event_id=None if auto_closed else event_id("out", started_at),
        school_id=SCHOOL,
        district_code=DISTRICT,
    )


def visit_statement(
    started_at: int,
    minutes: int,
    *,
    venue_id: str = "v-museum",
    category: Category = Category.AESTHETIC,
    auto_closed: bool = False,
) -> Statement:
    """The statement of a ``visit`` built with the same arguments."""
    built = visit(
        started_at,
        minutes,
        venue_id=venue_id,
        category=category,
        auto_closed=auto_closed,
    )
    return statement_for_visit(built, now=built.ended_at)


def archive_of(*statements: Statement, student: str = STUDENT) -> Archive:
    """An archive holding ``statements``."""
    archive = Archive(student)
    for statement in statements:
        archive.apply(statement)
    return archive
