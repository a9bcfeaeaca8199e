"""The growth flow through the real broker, worker, Redis and HTTP views.

Each test builds its own small world (``tests.e2e.growth_world``) under a
fresh tag, so tests share the session worker without seeing each other's
state.

Times are taken from the clock: scans carry the time they reached the
platform (``occurred_at``) a second after the device time, so nothing is in
the future, and the partitions' watermarks stay near the present.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from edustream.demo.scenario import Publication
from edustream.growth.identity import derive_id
from edustream.growth.terms import local_date, local_minute, term_of
from edustream.growth.visits import visit_id
from edustream.http.growth import CALLER_HEADER, sign_caller
from edustream.http.server import start_ingress
from edustream.settings import get_settings
from tests.e2e.growth_world import (
    HOUR,
    MINUTE,
    World,
    award,
    caller,
    dead_letters,
    enrol,
    guardianship,
    now_ms,
    read_model,
    scan,
    visit,
    void,
    wait_dead,
)
from tests.e2e.helpers import Outputs, produce
from topics import growth

pytestmark = pytest.mark.e2e


async def test_visit_becomes_one_statement_despite_double_scans(
    bootstrap: str, worker: object
) -> None:
    """A check-in and check-out make one attended statement with the stay's
    duration; a second tap within two minutes and a re-sent check-out change
    nothing and refuse nothing."""
    world = World()
    museum = world.venue_id("museum")
    async with Outputs(bootstrap) as out:
        account = await enrol(bootstrap, out, world, [world.venue("museum")])
        start = world.base
        check_out = scan(account, museum, "CHECK_OUT", start + 45 * MINUTE)
        await produce(
            bootstrap,
            [
                scan(account, museum, "CHECK_IN", start),
                scan(account, museum, "CHECK_IN", start + 40_000),
                check_out,
                check_out,
            ],
        )
        found = await out.wait_for(growth.STATEMENTS.name, 1, archive_account=account)
        await out.settle(2.0)
        found = out.records(growth.STATEMENTS.name, archive_account=account)

    assert len({s["id"] for s in found}) == 1
    statement = found[0]
    assert str(statement["id"]) == visit_id(account, museum, start)
    assert statement["result_duration"] == "PT45M"
    assert statement["context_category"] == "AESTHETIC"
    assert statement["context_school_id"] == world.school
    assert statement["context_flagged_auto_closed"] is False
    assert dead_letters(out, account) == []


async def test_forgotten_check_out_closes_at_the_venue_closing_time(
    bootstrap: str, worker: object
) -> None:
    """A check-in never checked out of is closed, flagged, at the venue's
    closing time, once the student's next scan shows that time has passed."""
    world = World()
    gym = world.venue_id("gym")
    async with Outputs(bootstrap) as out:
        account = await enrol(
            bootstrap, out, world, [world.venue("gym", "PHYSICAL", closes_at=17 * 60)]
        )
        # An hour before the venue's last closing, by Shanghai time.
        closing = _closing_before(world.base - 2 * HOUR, 17 * 60)
        check_in = closing - HOUR
        await produce(
            bootstrap,
            [
                scan(account, gym, "CHECK_IN", check_in),
                scan(account, gym, "CHECK_IN", world.base),
            ],
        )
        found = await out.wait_for(growth.STATEMENTS.name, 1, archive_account=account)

    statement = next(
        s for s in found if str(s["id"]) == visit_id(account, gym, check_in)
    )
    assert statement["context_flagged_auto_closed"] is True
    assert statement["result_completion"] is False
    assert statement["result_duration"] == "PT1H"


def _closing_before(instant: int, closes_at_minute: int) -> int:
    """The last Shanghai closing time at or before ``instant``."""
    closing = local_minute(local_date(instant), closes_at_minute)
    while closing > instant:
        closing -= 24 * HOUR
    return closing


REJECTIONS = [
    "unknown_venue",
    "unknown_activity",
    "future_time",
    "checkout_before_checkin",
]


@pytest.mark.parametrize("reason", REJECTIONS)
async def test_each_refused_scan_is_dead_lettered_with_its_reason(
    bootstrap: str, worker: object, reason: str
) -> None:
    """Each screening failure dead-letters the scan itself, with the reason,
    its original bytes and where it was read, and emits no statement."""
    world = World()
    museum = world.venue_id("museum")
    catalogue = [world.venue("museum"), world.activity("pottery", "museum")]
    async with Outputs(bootstrap) as out:
        account = await enrol(bootstrap, out, world, catalogue)
        bad = _refused_scan(world, account, reason)
        await produce(bootstrap, [bad])
        found = await wait_dead(out, account, 1)
        await out.settle(1.0)

    assert [d["reason"] for d in found] == [reason]
    assert found[0]["original_value"] == bad.value
    assert found[0]["source_topic"] == growth.SCANS.name
    assert found[0]["flow"] == "growth"
    assert out.records(growth.STATEMENTS.name, archive_account=account) == []
    assert museum.startswith("v-")


def _refused_scan(world: World, account: str, reason: str) -> Publication:
    museum, start = world.venue_id("museum"), world.base
    if reason == "unknown_venue":
        return scan(account, world.venue_id("nowhere"), "CHECK_IN", start)
    if reason == "unknown_activity":
        return scan(account, museum, "CHECK_IN", start, activity_id="a-none")
    if reason == "future_time":
        return scan(account, museum, "CHECK_IN", start + 24 * HOUR, received=start)
    return scan(account, museum, "CHECK_OUT", start)


async def test_scan_of_a_student_never_enrolled_is_refused_after_the_wait(
    bootstrap: str, worker: object
) -> None:
    """Scans of an account with no enrolment fact wait (a registry feed may
    lag), and are all refused as not enrolled once a scan a quarter of an
    hour newer than the first reaches their partition."""
    world = World()
    museum = world.venue_id("museum")
    account = f"stu_{uuid.uuid4().hex}"
    async with Outputs(bootstrap) as out:
        await produce(bootstrap, [world.venue("museum")])
        first = scan(account, museum, "CHECK_IN", world.base)
        at = now_ms() + 20 * MINUTE
        later = scan(account, museum, "CHECK_IN", at, received=at)
        await produce(bootstrap, [first, later])
        await wait_dead(out, account, 2)
        await out.settle(1.0)
        found = dead_letters(out, account)

    assert [d["reason"] for d in found] == ["not_enrolled", "not_enrolled"]
    assert {d["original_value"] for d in found} == {first.value, later.value}


async def test_parked_scans_count_once_the_enrolment_arrives(
    bootstrap: str, worker: object
) -> None:
    """Scans that arrive before the student's registry change wait for it
    (a quarter of an hour of scan time), and become the visit as soon as the
    enrolment fact arrives."""
    world = World()
    museum = world.venue_id("museum")
    account, registry = world.student()
    async with Outputs(bootstrap) as out:
        await produce(bootstrap, [world.venue("museum")])
        await produce(bootstrap, visit(account, museum, world.base, 10))
        await asyncio.sleep(1.0)
        await produce(bootstrap, [registry])
        found = await out.wait_for(growth.STATEMENTS.name, 1, archive_account=account)

    assert [s["result_duration"] for s in found] == ["PT10M"]
    assert dead_letters(out, account) == []


async def test_statement_conflict_is_dead_lettered_and_duplicate_ignored(
    bootstrap: str, worker: object
) -> None:
    """An award re-sent with the same content changes nothing; an award id
    reused for different content is a statement conflict: dead-lettered,
    and the archive keeps the first."""
    world = World()
    award_id = f"award-{world.tag}"
    async with Outputs(bootstrap) as out:
        account = await enrol(bootstrap, out, world, [])
        first = award(account, award_id, "Volunteer of the month", world.base)
        await produce(bootstrap, [first])
        await out.wait_for(growth.STATEMENTS.name, 1, archive_account=account)
        again = award(account, award_id, "Volunteer of the month", world.base)
        other = award(account, award_id, "Volunteer of the year", world.base)
        await produce(bootstrap, [again, other])
        found = await wait_dead(out, account, 1)
        await out.settle(1.5)
        statements = out.records(growth.STATEMENTS.name, archive_account=account)

    assert [d["reason"] for d in dead_letters(out, account)] == ["statement_conflict"]
    assert found[0]["original_value"] == other.value
    assert [s["object_name"] for s in statements] == ["Volunteer of the month"]
    assert str(statements[0]["id"]) == derive_id("award-statement", award_id)


async def test_void_removes_entry_and_withdraws_certificate(
    bootstrap: str, redis_url: str, worker: object
) -> None:
    """Five aesthetic venues in a term issue a certificate; voiding one
    visit withdraws it, drops the visit from the archive served over HTTP
    and takes it out of the school's counts."""
    world = World()
    names = [f"gallery{i}" for i in range(5)]
    ingress_settings = get_settings()
    async with AsyncExitStack() as stack:
        out = await stack.enter_async_context(Outputs(bootstrap))
        await stack.enter_async_context(read_model(bootstrap, redis_url))
        base = await start_ingress(stack, ingress_settings, bootstrap, redis_url)
        account = await enrol(bootstrap, out, world, [world.venue(n) for n in names])

        scans = [
            p
            for i, n in enumerate(names)
            for p in visit(account, world.venue_id(n), world.base + i * 20 * MINUTE, 15)
        ]
        await produce(bootstrap, scans)
        issued = await out.wait_for(
            growth.CERTIFICATES.name, 1, student_account=account
        )
        assert [c["status"] for c in issued] == ["ISSUED"]
        assert issued[0]["rule_id"] == "aesthetic-5-venues"

        voided_id = visit_id(
            account, world.venue_id(names[2]), world.base + 40 * MINUTE
        )
        await produce(bootstrap, [void(account, voided_id, world.base + 2 * HOUR)])
        certs = await out.wait_for(growth.CERTIFICATES.name, 2, student_account=account)
        archive = await _eventually_json(
            base, account, lambda body: len(body["statements"]) == 4
        )
        counts = await _get_json(
            f"{base}/growth/aggregates/school/{world.school}"
            f"?term={term_of(world.base).id}",
            caller(account),
        )

    assert [c["status"] for c in certs] == ["ISSUED", "WITHDRAWN"]
    assert certs[1]["certificate_id"] == certs[0]["certificate_id"]
    assert voided_id in certs[0]["evidence"]
    assert voided_id not in {s["id"] for s in archive["statements"]}
    assert [c["status"] for c in archive["certificates"]] == ["WITHDRAWN"]
    aesthetic = next(
        c for c in archive["report"]["categories"] if c["category"] == "AESTHETIC"
    )
    assert (aesthetic["visits"], aesthetic["distinct_venues"]) == (4, 4)
    assert counts["counts"]["AESTHETIC"]["visits"] == 4
    assert counts["counts"]["AESTHETIC"]["distinct_venues"] == 4


async def test_archive_is_served_to_the_student_and_bound_guardian_only(
    bootstrap: str, redis_url: str, worker: object
) -> None:
    """The student and a guardian the portal bound see the archive and the
    report page; an unbound guardian, another student and an unsigned or
    forged caller are refused."""
    world = World()
    museum = world.venue_id("museum")
    guardian, stranger = f"gdn-{world.tag}", f"gdn-other-{world.tag}"
    async with AsyncExitStack() as stack:
        out = await stack.enter_async_context(Outputs(bootstrap))
        await stack.enter_async_context(read_model(bootstrap, redis_url))
        base = await start_ingress(stack, get_settings(), bootstrap, redis_url)
        account = await enrol(bootstrap, out, world, [world.venue("museum")])
        other = await enrol(bootstrap, out, world, [])
        await produce(
            bootstrap,
            [*visit(account, museum, world.base, 50), guardianship(guardian, account)],
        )
        await out.wait_for(growth.STATEMENTS.name, 1, archive_account=account)
        mine = await _eventually_json(
            base, account, lambda body: len(body["statements"]) == 1
        )

        async with aiohttp.ClientSession() as http:
            url = f"{base}/growth/{account}"
            statuses = {
                "guardian": await _status(http, url, caller(guardian)),
                "stranger": await _status(http, url, caller(stranger)),
                "other_student": await _status(http, url, caller(other)),
                "unsigned": await _status(http, url, {}),
                "forged": await _status(http, url, _forged(guardian)),
            }
            async with http.get(f"{url}/report.html", headers=caller(guardian)) as page:
                html = await page.text()
                page_type = page.content_type

    assert statuses == {
        "guardian": 200,
        "stranger": 403,
        "other_student": 403,
        "unsigned": 401,
        "forged": 401,
    }
    assert mine["statements"][0]["result"]["duration"] == "PT50M"
    assert mine["statements"][0]["actor"]["account"]["name"] == account
    assert page_type == "text/html"
    assert 'data-category="AESTHETIC" data-value="50"' in html


def _forged(account: str) -> dict[str, str]:
    header = sign_caller(b"not-the-gateway-key-at-all", account, now_ms() + MINUTE)
    return {CALLER_HEADER: header}


async def _status(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> int:
    async with http.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def _get_json(url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def _eventually_json(
    base: str, account: str, done: Any, timeout_s: float = 30.0
) -> dict[str, Any]:
    """GET the archive until ``done(body)`` holds (the read model catches up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = await _get_json(f"{base}/growth/{account}", caller(account))
        if done(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.2)
