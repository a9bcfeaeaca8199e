"""A small growth world for end-to-end tests: catalogue, students, inputs.

Each ``World`` has its own tag, so tests sharing the session worker never
see each other's venues or students. Students are enrolled the way
production enrols them: a registry change with an ID number on the aid
flow's upstream topic, which the growth flow turns into an enrolment fact
keyed by the student's growth account.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from consumers.base import run_subscriber
from consumers.growth_archive import GrowthArchive
from edustream.demo.scenario import Publication
from edustream.growth.terms import term_of
from edustream.http.growth import CALLER_HEADER, sign_caller
from edustream.ids import make_id
from edustream.pseudonym import pseudonymise
from edustream.settings import get_settings
from infra.redis import async_client
from tests.e2e.helpers import Outputs, produce
from topics import aid, growth

MINUTE = 60_000
HOUR = 60 * MINUTE
SCHOOL_DISTRICT = "310104"


def now_ms() -> int:
    """The clock, in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def _uuid() -> str:
    return str(uuid.uuid4())


class World:
    """Catalogue entries and students of one test, under a unique tag."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.school = f"SCH-{self.tag}"
        self.rng = random.Random(self.tag)
        # Every scan of the test happens in the two hours before now, inside
        # one term.
        now = now_ms()
        self.base = max(now - 2 * HOUR, term_of(now).starts_at)

    def venue_id(self, name: str) -> str:
        """The catalogue id of this world's venue ``name``."""
        return f"v-{self.tag}-{name}"

    def venue(
        self,
        name: str,
        category: str = "AESTHETIC",
        *,
        closes_at: int | None = None,
    ) -> Publication:
        """A venue open around the clock, or from 08:00 to ``closes_at``."""
        opens_at = None if closes_at is None else 8 * 60
        record = {
            "event_id": _uuid(),
            "occurred_at": now_ms(),
            "venue_id": self.venue_id(name),
            "name": f"Venue {name}",
            "district_code": SCHOOL_DISTRICT,
            "categories": [category],
            "opens_at": opens_at,
            "closes_at": closes_at,
            "capacity": 300,
            "deleted": False,
        }
        return Publication.record(growth.VENUES, record["venue_id"], record)

    def activity(self, name: str, venue: str, category: str = "LABOUR") -> Publication:
        """A course at one of this world's venues."""
        activity_id = f"a-{self.tag}-{name}"
        record = {
            "event_id": _uuid(),
            "occurred_at": now_ms(),
            "activity_id": activity_id,
            "venue_id": self.venue_id(venue),
            "name": f"Activity {name}",
            "category": category,
            "planned_minutes": 90,
            "mentor_account": f"mentor-{self.tag}",
            "kind": "COURSE",
            "deleted": False,
        }
        return Publication.record(growth.ACTIVITIES, activity_id, record)

    def student(self) -> tuple[str, Publication]:
        """A new student's account and the registry change enrolling them."""
        birth = date(2012, 1, 1 + self.rng.randrange(27))
        id_number = make_id(SCHOOL_DISTRICT, birth, self.rng.randrange(1000))
        account = pseudonymise(get_settings().pseudonym_key.encode(), id_number)
        record = {
            "event_id": _uuid(),
            "occurred_at": now_ms(),
            "change": "ENROL",
            "student_id": id_number,
            "student_name": "测试学生",
            "school_id": self.school,
            "school_name": "Test School",
            "district_code": SCHOOL_DISTRICT,
            "stage": "JUNIOR",
            "grade": 2,
            "boarding": False,
        }
        return account, Publication.record(
            aid.REGISTRY_CHANGES, "G" + id_number, record
        )


def scan(
    account: str,
    venue_id: str,
    direction: str,
    at: int,
    *,
    activity_id: str | None = None,
    received: int | None = None,
    event_id: str | None = None,
) -> Publication:
    """A scan at ``at`` that reached the platform a second later."""
    record = {
        "event_id": event_id or _uuid(),
        "occurred_at": received if received is not None else at + 1000,
        "device_id": f"dev-{venue_id}",
        "student_account": account,
        "venue_id": venue_id,
        "activity_id": activity_id,
        "direction": direction,
        "scanned_at": at,
    }
    return Publication.record(growth.SCANS, account, record)


def visit(account: str, venue_id: str, start: int, minutes: int) -> list[Publication]:
    """A check-in and its check-out ``minutes`` later."""
    return [
        scan(account, venue_id, "CHECK_IN", start),
        scan(account, venue_id, "CHECK_OUT", start + minutes * MINUTE),
    ]


def award(account: str, award_id: str, title: str, at: int) -> Publication:
    """An organiser's award."""
    record = {
        "event_id": _uuid(),
        "occurred_at": at,
        "award_id": award_id,
        "student_account": account,
        "title": title,
        "category": "MORAL",
        "issuer": "City Youth League",
    }
    return Publication.record(growth.AWARDS, account, record)


def void(account: str, statement_id: str, at: int) -> Publication:
    """An organiser voiding one statement."""
    record = {
        "event_id": _uuid(),
        "occurred_at": at,
        "statement_id": statement_id,
        "student_account": account,
        "by": "organiser-1",
        "reason": "entered in error",
    }
    return Publication.record(growth.VOIDS, account, record)


def guardianship(guardian: str, student: str, *, linked: bool = True) -> Publication:
    """The portal binding a guardian's account to a student's."""
    record = {
        "event_id": _uuid(),
        "occurred_at": now_ms(),
        "guardian_account": guardian,
        "student_account": student,
        "linked": linked,
    }
    return Publication.record(growth.GUARDIANSHIPS, guardian, record)


async def enrol(
    bootstrap: str, out: Outputs, world: World, catalogue: list[Publication]
) -> str:
    """Publish the catalogue and a new student's registry change."""
    account, registry = world.student()
    await produce(bootstrap, [*catalogue, registry])
    found = await out.wait_for(growth.ENROLMENTS.name, 1, student_account=account)
    assert len(found) == 1
    return account


def dead_letters(out: Outputs, account: str) -> list[dict[str, Any]]:
    """Dead letters of inputs keyed by ``account``."""
    return out.records(growth.DEAD_LETTERS.name, original_key=account.encode())


async def wait_dead(
    out: Outputs, account: str, count: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Wait until ``count`` dead letters keyed by ``account`` arrived."""
    return await out.wait_for(
        growth.DEAD_LETTERS.name, count, timeout_s, original_key=account.encode()
    )


@contextlib.asynccontextmanager
async def read_model(bootstrap: str, redis_url: str) -> AsyncIterator[None]:
    """The growth read model running as its own consumer group."""
    client = async_client(redis_url)
    sub = GrowthArchive(client, group=f"growth-archive-test-{uuid.uuid4().hex}")
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscriber(sub, bootstrap, stop))
    try:
        yield
    finally:
        stop.set()
        await task
        await client.aclose()


def caller(account: str) -> dict[str, str]:
    """The header the portal's gateway sends for a signed-in ``account``."""
    key = get_settings().growth_caller_key.encode()
    return {CALLER_HEADER: sign_caller(key, account, now_ms() + 10 * MINUTE)}
