"""The aid flow end to end: real broker, real Redis, the session's worker.

Each test builds its own household (student, guardian, school) with fresh ID
numbers, so tests sharing the worker never see each other's students; every
assertion filters the output topics by the test's own student reference.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from consumers.aid_figures import AidFigures, read_figures
from consumers.base import run_subscriber
from edustream.aid.vocabulary import Answer, Category, Change, Stage
from edustream.demo.outputs import json_default
from edustream.demo.scenario import Publication
from edustream.ids import find_ids, make_id
from edustream.pseudonym import STUDENT_PREFIX, mask_name, pseudonymise
from edustream.settings import get_settings
from infra.broker import EmbeddedBroker
from infra.provision import apply_topics
from infra.redis import async_client
from tests.conftest import start_worker, stop_worker
from tests.e2e.helpers import Outputs, produce
from topics import CATALOGUE, aid

pytestmark = pytest.mark.e2e

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_random = random.SystemRandom()


def now_millis() -> int:
    """The wall clock in epoch millis, as the worker's sweep reads it."""
    return time.time_ns() // 1_000_000


def fresh_id(area: str, year: int) -> str:
    """A valid resident ID number no other test uses."""
    birth = date(year, _random.randint(1, 12), _random.randint(1, 28))
    return make_id(area, birth, _random.randint(0, 999))


@dataclass
class Household:
    """One student, a guardian linked to them, and their school."""

    since: int = field(default_factory=lambda: now_millis() - 2 * HOUR)
    student_id: str = field(default_factory=lambda: fresh_id("310115", 2015))
    guardian_id: str = field(default_factory=lambda: fresh_id("310115", 1985))
    student_name: str = "王小明"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    school: str | None = None

    @property
    def ref(self) -> str:
        """The student's pseudonym, as intake makes it."""
        key = get_settings().pseudonym_key.encode()
        return pseudonymise(key, self.student_id, STUDENT_PREFIX)

    @property
    def account(self) -> str:
        """The guardian's portal account."""
        return f"portal-{self.tag}"

    @property
    def school_id(self) -> str:
        """The school given, or one only this household attends."""
        return self.school or f"SCH-{self.tag}"

    def registry(
        self,
        change: Change = Change.ENROL,
        *,
        at: int = 0,
        school_id: str | None = None,
        stage: Stage = Stage.PRIMARY,
    ) -> Publication:
        """A registry change for the student, ``at`` millis after ``since``."""
        school = school_id or self.school_id
        record = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": self.since + at,
            "change": change.value,
            "student_id": self.student_id,
            "student_name": self.student_name,
            "school_id": school,
            "school_name": f"{school} primary",
            "district_code": "310115",
            "stage": stage.value,
            "grade": 3,
            "boarding": True,
        }
        return Publication.record(aid.REGISTRY_CHANGES, "G" + self.student_id, record)

    def link(self, *, at: int = MINUTE) -> Publication:
        """The guardian linked to the student."""
        record = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": self.since + at,
            "guardian_id": self.guardian_id,
            "guardian_account": self.account,
            "student_id": self.student_id,
            "relation": "MOTHER",
            "linked": True,
        }
        return Publication.record(aid.FAMILY_LINKS, self.guardian_id, record)

    def status(self, *, granted: bool = True, at: int = 2 * MINUTE) -> Publication:
        """The guardian's minimum-living allowance, granted or revoked."""
        record = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": self.since + at,
            "person_id": self.guardian_id,
            "category": Category.MINIMUM_LIVING.value,
            "granted": granted,
            "valid_from": date(2026, 1, 1),
            "valid_to": None,
            "status_id": f"MZ-{self.tag}",
        }
        return Publication.record(aid.ASSISTANCE_STATUS, self.guardian_id, record)

    def answer(
        self,
        offer_id: str,
        choice: Answer = Answer.ACCEPT,
        *,
        account: str | None = None,
        event_id: str | None = None,
        at: int = HOUR,
    ) -> Publication:
        """The guardian's answer to ``offer_id``, ``at`` millis after ``since``."""
        record = {
            "event_id": event_id or str(uuid.uuid4()),
            "occurred_at": self.since + at,
            "offer_id": offer_id,
            "student_ref": self.ref,
            "guardian_account": account or self.account,
            "answer": choice.value,
            "signature_ref": "esign-e2e" if choice is Answer.ACCEPT else None,
        }
        return Publication.record(aid.GUARDIAN_ANSWERS, self.ref, record)

    def facts(self) -> list[Publication]:
        """Status, link and enrolment: everything an offer needs."""
        return [self.status(), self.link(), self.registry()]


@pytest.fixture
async def out(bootstrap: str, worker: Path) -> AsyncIterator[Outputs]:
    """Every output topic, read from the start, with the worker running."""
    async with Outputs(bootstrap) as outputs:
        yield outputs


async def offer_for(out: Outputs, home: Household) -> dict[str, Any]:
    """Wait for the household's single offer and return it."""
    (offer,) = await out.wait_for(aid.OFFERS.name, 1, student_ref=home.ref)
    return offer


async def dead_letters_for(
    out: Outputs, home: Household, count: int
) -> list[dict[str, Any]]:
    """Wait for ``count`` dead letters of answers keyed by the household."""
    deadline = time.monotonic() + 60
    while True:
        found = [
            record
            for record in out.records(aid.DEAD_LETTERS.name)
            if record["original_key"] == home.ref.encode()
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


def records_about(out: Outputs, home: Household) -> list[dict[str, Any]]:
    """Every output record that names the household's student."""
    return [
        record
        for spec in (aid.OFFERS, aid.WITHDRAWALS, aid.CLOSURES, aid.GRANTS)
        for record in out.records(spec.name, student_ref=home.ref)
    ]


async def test_offer_goes_to_the_guardian_with_no_id_or_name(
    bootstrap: str, out: Outputs
) -> None:
    """An eligible boarder's offer is addressed to the guardian's account,
    shows only the masked name and carries no ID number or full name."""
    home = Household()

    await produce(bootstrap, home.facts())
    offer = await offer_for(out, home)

    assert offer["guardian_account"] == home.account
    assert offer["child_name"] == mask_name(home.student_name) == "王*明"
    assert offer["aid_kind"] == "BOARDING_SUBSIDY"
    assert offer["amount_fen"] == 50_000
    assert offer["term"] == "2026-autumn"
    assert offer["basis_holder"] == "GUARDIAN"
    assert offer["school_id"] == home.school_id
    text = json.dumps(
        records_about(out, home), default=json_default, ensure_ascii=False
    )
    assert find_ids(text) == []
    assert home.student_name not in text
    assert home.student_id not in text
    assert home.guardian_id not in text


async def test_status_before_enrolment_still_matches(
    bootstrap: str, out: Outputs
) -> None:
    """A status and link that reach the student before the enrolment are kept,
    and the enrolment that follows makes the offer."""
    home = Household()

    await produce(bootstrap, [home.status(), home.link()])
    for _ in range(300):
        facts = out.records(aid.STUDENT_FACTS.name, student_ref=home.ref)
        if any(f["status"] is not None or f["guardian_statuses"] for f in facts):
            break
        await asyncio.sleep(0.2)
    await out.settle(1.0)
    assert out.records(aid.OFFERS.name, student_ref=home.ref) == []
    await produce(bootstrap, [home.registry(at=DAY)])
    offer = await offer_for(out, home)

    assert offer["guardian_account"] == home.account
    assert round(offer["occurred_at"].timestamp() * 1000) == home.since + DAY


async def test_revocation_withdraws_the_open_offer(
    bootstrap: str, out: Outputs
) -> None:
    """Revoking the status withdraws the unanswered offer; an answer after
    that is refused as offer_withdrawn."""
    home = Household()
    await produce(bootstrap, home.facts())
    offer = await offer_for(out, home)

    await produce(bootstrap, [home.status(granted=False, at=HOUR)])
    (withdrawal,) = await out.wait_for(aid.WITHDRAWALS.name, 1, student_ref=home.ref)
    await produce(bootstrap, [home.answer(str(offer["offer_id"]), at=2 * HOUR)])
    (refused,) = await dead_letters_for(out, home, 1)

    assert withdrawal["offer_id"] == offer["offer_id"]
    assert withdrawal["reason"] == "INELIGIBLE"
    assert withdrawal["guardian_account"] == home.account
    assert refused["reason"] == "offer_withdrawn"
    assert refused["source_topic"] == aid.GUARDIAN_ANSWERS.name
    assert out.records(aid.GRANTS.name, student_ref=home.ref) == []


async def test_acceptance_gives_one_grant_even_when_redelivered(
    bootstrap: str, out: Outputs
) -> None:
    """An accepted offer becomes one grant; the same answer delivered again
    changes nothing and is not refused."""
    home = Household()
    await produce(bootstrap, home.facts())
    offer = await offer_for(out, home)
    answer = home.answer(str(offer["offer_id"]), event_id=str(uuid.uuid4()))

    await produce(bootstrap, [answer, answer])
    grants = await out.wait_for(aid.GRANTS.name, 1, student_ref=home.ref)
    await out.settle(3.0)
    grants = out.records(aid.GRANTS.name, student_ref=home.ref)

    assert {str(g["grant_id"]) for g in grants} == {str(grants[0]["grant_id"])}
    assert grants[0]["offer_id"] == offer["offer_id"]
    assert grants[0]["amount_fen"] == 50_000
    assert grants[0]["signature_ref"] == "esign-e2e"
    assert grants[0]["school_id"] == home.school_id
    assert await dead_letters_for(out, home, 0) == []


@pytest.mark.parametrize(
    ("story", "outcome"), [("declined", "DECLINED"), ("expired", "EXPIRED")]
)
async def test_decline_or_expiry_closes_the_offer(
    bootstrap: str, out: Outputs, story: str, outcome: str
) -> None:
    """A decline closes the offer at once; an offer nobody answered closes
    at the sweep after its expiry, on the wall clock."""
    home = (
        Household(since=now_millis() - 60 * DAY) if story == "expired" else Household()
    )
    await produce(bootstrap, home.facts())
    offer = await offer_for(out, home)

    if story == "declined":
        await produce(bootstrap, [home.answer(str(offer["offer_id"]), Answer.DECLINE)])
    (closure,) = await out.wait_for(aid.CLOSURES.name, 1, student_ref=home.ref)

    assert closure["offer_id"] == offer["offer_id"]
    assert closure["outcome"] == outcome
    assert out.records(aid.GRANTS.name, student_ref=home.ref) == []
    if story == "expired":
        assert closure["occurred_at"] == offer["expires_at"]


async def test_refused_answers_go_to_dead_letters_with_the_reason(
    bootstrap: str, out: Outputs
) -> None:
    """Another family's account, a second answer and an unknown offer are each
    refused with their reason; the first answer still counts."""
    home = Household()
    await produce(bootstrap, home.facts())
    offer_id = str((await offer_for(out, home))["offer_id"])

    await produce(
        bootstrap,
        [
            home.answer(offer_id, account="portal-another-family", at=HOUR),
            home.answer(offer_id, Answer.DECLINE, at=HOUR + 1),
            home.answer(offer_id, Answer.ACCEPT, at=HOUR + 2),
            home.answer(str(uuid.uuid4()), at=HOUR + 3),
        ],
    )
    refused = await dead_letters_for(out, home, 3)

    assert sorted(r["reason"] for r in refused) == [
        "already_answered",
        "unknown_offer",
        "wrong_guardian",
    ]
    assert all(r["source_topic"] == aid.GUARDIAN_ANSWERS.name for r in refused)
    assert all(r["flow"] == "aid" for r in refused)
    (closure,) = await out.wait_for(aid.CLOSURES.name, 1, student_ref=home.ref)
    assert closure["outcome"] == "DECLINED"
    assert out.records(aid.GRANTS.name, student_ref=home.ref) == []


async def test_transfer_after_grant_makes_no_second_grant(
    bootstrap: str, out: Outputs
) -> None:
    """A student who transfers to another school after the grant keeps one
    grant, at the first school, and gets no new offer."""
    home = Household()
    await produce(bootstrap, home.facts())
    offer = await offer_for(out, home)
    await produce(bootstrap, [home.answer(str(offer["offer_id"]))])
    await out.wait_for(aid.GRANTS.name, 1, student_ref=home.ref)

    other_school = f"SCH-{uuid.uuid4().hex[:10]}"
    await produce(
        bootstrap, [home.registry(Change.TRANSFER, at=3 * HOUR, school_id=other_school)]
    )
    for _ in range(300):
        facts = out.records(aid.STUDENT_FACTS.name, student_ref=home.ref)
        if any((f["registry"] or {}).get("change") == "TRANSFER" for f in facts):
            break
        await asyncio.sleep(0.2)
    await out.settle(3.0)

    grants = out.records(aid.GRANTS.name, student_ref=home.ref)
    offers = out.records(aid.OFFERS.name, student_ref=home.ref)
    assert len(grants) == 1
    assert grants[0]["school_id"] == home.school_id
    assert {str(o["event_id"]) for o in offers} == {str(offer["event_id"])}


async def test_figures_count_offers_grants_and_students_per_school(
    bootstrap: str, redis_url: str, out: Outputs
) -> None:
    """The figures read model counts each outcome once per offer, per school,
    with the granted amount and the students aided."""
    school = f"SCH-{uuid.uuid4().hex[:10]}"
    homes = [Household(school=school) for _ in range(3)]
    granted, declined, withdrawn = homes
    await produce(bootstrap, [fact for home in homes for fact in home.facts()])
    offers = {home.ref: await offer_for(out, home) for home in homes}
    await produce(
        bootstrap,
        [
            granted.answer(str(offers[granted.ref]["offer_id"])),
            granted.answer(str(offers[granted.ref]["offer_id"])),
            declined.answer(str(offers[declined.ref]["offer_id"]), Answer.DECLINE),
            withdrawn.status(granted=False, at=HOUR),
        ],
    )
    await out.wait_for(aid.WITHDRAWALS.name, 1, student_ref=withdrawn.ref)
    await out.wait_for(aid.CLOSURES.name, 1, student_ref=declined.ref)

    # Wait for the read model to have taken every output, not just the grant.
    row = await _school_row(
        bootstrap,
        redis_url,
        school,
        lambda r: (r.accepted, r.declined, r.withdrawn) == (1, 1, 1),
    )

    assert (row.offers, row.accepted, row.declined, row.withdrawn) == (3, 1, 1, 1)
    assert (row.open, row.expired, row.students_aided) == (0, 0, 1)
    assert row.amount_fen == 50_000


async def _school_row(bootstrap: str, redis_url: str, school: str, ready: Any) -> Any:
    """Run a fresh figures subscriber until ``school``'s row is ``ready``."""
    prefix = f"test:aid:{uuid.uuid4().hex}"
    redis = async_client(redis_url)
    sub = AidFigures(redis, group=f"aid-figures-{uuid.uuid4().hex}", prefix=prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(run_subscriber(sub, bootstrap, stop))
    try:
        for _ in range(300):
            figures = await read_figures(redis, prefix)
            rows = [s.row for s in figures.schools if s.school_id == school]
            if rows and ready(rows[0]):
                return rows[0]
            await asyncio.sleep(0.2)
        raise AssertionError(f"no figures for the school: {rows}")
    finally:
        stop.set()
        await task
        keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


BAD_POLICIES = [
    (
        "offer_expiry_days = 30\n[[versions]\n",
        "line 2",
    ),
    (
        "offer_expiry_days = 30\n"
        "[[versions]]\n"
        'version = "2026.1"\n'
        "effective_from = 2026-01-01\n"
        "[[versions.rules]]\n"
        'id = "boarding"\n'
        'stage = "PRIMARY"\n'
        'categories = ["MINIMUM_LIVING"]\n'
        'aid_kind = "BOARDING_SUBSIDY"\n'
        "amount_fen = -5\n"
        'status_holder = "EITHER"\n',
        "versions[0].rules[0].amount_fen",
    ),
]


@pytest.mark.parametrize(("text", "named"), BAD_POLICIES, ids=["syntax", "value"])
def test_worker_refuses_to_start_with_a_bad_policy(
    bootstrap: str, tmp_path: Path, text: str, named: str
) -> None:
    """``edustream worker`` with an invalid policy file exits 2 at once and
    names the file and the line or field at fault."""
    policy = tmp_path / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "EDUSTREAM_AID_POLICY_PATH": str(policy),
        "EDUSTREAM_LOG_FORMAT": "json",
    }

    done = subprocess.run(
        [sys.executable, "-m", "edustream", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert f"edustream: {policy}:" in done.stderr
    assert named in done.stderr
    assert "worker_starting" not in done.stderr


def test_student_state_survives_a_worker_crash(redis_url: str, tmp_path: Path) -> None:
    """A worker killed after making an offer is replaced; the new one rebuilds
    the student from the changelog and grants the answer, exactly once."""
    home = Household()
    with EmbeddedBroker() as broker:
        offer, grants, refused = asyncio.run(
            _crash_then_answer(broker.bootstrap, redis_url, tmp_path / "w.log", home)
        )

    assert [str(g["offer_id"]) for g in grants] == [str(offer["offer_id"])]
    assert refused == []


async def _crash_then_answer(
    bootstrap: str, redis_url: str, log_path: Path, home: Household
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Make an offer, kill -9 the worker, start another, then answer."""
    provisioned = await apply_topics(
        bootstrap, CATALOGUE.values(), get_settings().partitions, 1
    )
    assert provisioned.ok
    first = start_worker(bootstrap, redis_url, log_path)
    second = None
    try:
        async with Outputs(bootstrap) as out:
            await produce(bootstrap, home.facts())
            offer = await offer_for(out, home)
            await out.settle(2.0)
            first.kill()
            first.wait()

            second = start_worker(bootstrap, redis_url, log_path)
            await produce(bootstrap, [home.answer(str(offer["offer_id"]))])
            grants = await out.wait_for(
                aid.GRANTS.name, 1, timeout_s=90, student_ref=home.ref
            )
            await out.settle(2.0)
            return offer, grants, await dead_letters_for(out, home, 0)
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)
