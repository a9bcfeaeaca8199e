"""The aid figures read model: where each offer stands, and the counters.

Pure tests fold records into offer documents in every order the four output
topics allow. Redis tests run the subscriber's handler against the real
Redis under a prefix of their own.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from consumers.aid_figures import (
    AidFigures,
    DistrictFigures,
    FigureRow,
    Figures,
    OfferDoc,
    SchoolFigures,
    fold,
    read_figures,
    read_guardian_offers,
    read_offer,
    standing,
    yuan,
)
from edustream.aid import identity
from edustream.aid.outputs import Offer
from edustream.aid.vocabulary import Outcome
from infra.redis import async_client
from tests.unit.consumers.aid_records import (
    V1,
    V2,
    Record,
    closure,
    delivered,
    grant,
    offer,
    withdrawal,
)


def folded(*records: Record) -> OfferDoc:
    """The document after ``records``, in this order."""
    doc = OfferDoc()
    for record in records:
        doc = fold(doc, record)
    return doc


STANDINGS: list[tuple[str, tuple[Record, ...], str | None]] = [
    ("offer alone is open", (V1,), "open"),
    ("withdrawn", (V1, withdrawal(V1)), "withdrawn"),
    ("withdrawal read before its offer", (withdrawal(V1), V1), "withdrawn"),
    ("withdrawn then made again", (V1, withdrawal(V1), V2), "open"),
    ("old withdrawal read after the new version", (V1, V2, withdrawal(V1)), "open"),
    ("declined", (V1, closure(V1, Outcome.DECLINED)), "declined"),
    ("expired", (V1, closure(V1, Outcome.EXPIRED)), "expired"),
    ("closure waits for its offer", (closure(V1, Outcome.DECLINED),), None),
    ("closure read first", (closure(V1, Outcome.EXPIRED), V1), "expired"),
    ("grant before its offer", (grant(V1),), "accepted"),
    ("granted", (V1, grant(V1)), "accepted"),
    ("re-sent offer after the grant", (V1, grant(V1), V1), "accepted"),
]


@pytest.mark.parametrize(
    ("records", "expected"),
    [(records, expected) for _, records, expected in STANDINGS],
    ids=[name for name, _, _ in STANDINGS],
)
def test_standing_follows_every_record_seen(
    records: tuple[Record, ...], expected: str | None
) -> None:
    """An offer's standing depends on what was seen, not on topic order."""
    counted = standing(folded(*records))

    assert (None if counted is None else counted.standing) == expected


def test_accepted_offers_count_the_grants_school_and_amount() -> None:
    """A grant places the offer at its own school and counts its amount."""
    counted = standing(folded(offer(1, school="SCH9"), grant(offer(1, school="SCH7"))))

    assert counted is not None
    assert (counted.school_id, counted.amount_fen) == ("SCH7", 50_000)


@given(st.permutations([V1, withdrawal(V1), V2, grant(V2)]))
def test_topics_read_in_any_order_agree(order: list[Record]) -> None:
    """Offer versions keep their order, the other topics may come any time:
    the offer ends accepted whatever the interleaving."""
    offers = iter([V1, V2])
    records = [next(offers) if isinstance(r, Offer) else r for r in order]

    counted = standing(folded(*records))

    assert counted is not None
    assert counted.standing == "accepted"


@pytest.mark.parametrize(
    "again", [withdrawal(V1), V2, closure(V2, Outcome.DECLINED)], ids=type
)
def test_a_record_seen_again_changes_nothing(again: Record) -> None:
    """Folding the latest records a second time leaves the document as it is."""
    once = folded(V1, withdrawal(V1), V2, closure(V2, Outcome.DECLINED))

    assert fold(once, again) == once


@pytest.mark.parametrize(
    ("fen", "plain", "grouped"),
    [
        (0, "0", "0"),
        (50_000, "500", "500"),
        (62_550, "625.50", "625.50"),
        (374_480_000, "3744800", "3,744,800"),
        (1, "0.01", "0.01"),
    ],
)
def test_yuan_is_whole_unless_fen_remain(fen: int, plain: str, grouped: str) -> None:
    """Amounts print in yuan, with fen only when there are some."""
    assert yuan(fen) == plain
    assert yuan(fen, grouped=True) == grouped


def test_city_line_reads_like_the_pilot_report() -> None:
    """The summary names districts and schools taking part, students, yuan."""
    taking_part = DistrictFigures("310104", FigureRow(offers=1))
    figures = Figures(
        districts=[taking_part] * 10,
        schools=[],
        city=FigureRow(offers=3000, students_aided=2086, amount_fen=374_480_000),
    )
    figures = replace(
        figures,
        schools=[_school(i) for i in range(420)] + [_school(999, offers=0)],
    )

    assert figures.summary() == (
        "10 districts, 420 schools, 2,086 students, 3,744,800 yuan"
    )
    assert figures.to_dict()["city"]["amount_yuan"] == "3744800"


def _school(index: int, offers: int = 1) -> SchoolFigures:
    return SchoolFigures(f"S{index}", "school", "310104", FigureRow(offers=offers))


# Against Redis.


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis."""
    client = async_client(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def figures(redis: Redis) -> AsyncIterator[AidFigures]:
    """The subscriber under a prefix of its own, cleaned up afterwards."""
    prefix = f"test:aid-figures:{uuid.uuid4().hex}"
    yield AidFigures(redis, prefix=prefix)
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def feed(figures: AidFigures, records: list[Record]) -> None:
    for offset, record in enumerate(records):
        await figures.handle(delivered(record, offset))


def prefix_of(figures: AidFigures) -> str:
    return figures.prefix


def school_rows(result: Figures) -> dict[str, FigureRow]:
    return {school.school_id: school.row for school in result.schools}


async def test_counters_per_school_district_and_city(
    redis: Redis, figures: AidFigures
) -> None:
    """Each outcome is counted once, with amounts and distinct students aided."""
    senior = offer(1, student="stu_b", kind="NATIONAL_GRANT", amount=115_000)
    waiver = offer(1, student="stu_b", kind="FEE_WAIVER", amount=90_000)
    other = offer(1, student="stu_c", school="SCH2", district="310115")
    declined = offer(1, student="stu_d", school="SCH2", district="310115")
    records: list[Record] = [
        V1,
        grant(V1),
        senior,
        waiver,
        grant(senior),
        grant(waiver),
        other,
        withdrawal(other),
        declined,
        closure(declined, Outcome.DECLINED),
    ]

    await feed(figures, records)
    result = await read_figures(redis, prefix_of(figures))

    rows = school_rows(result)
    assert rows["SCH1"] == FigureRow(
        offers=3, accepted=3, students_aided=2, amount_fen=255_000
    )
    assert rows["SCH2"] == FigureRow(offers=2, declined=1, withdrawn=1)
    assert [(d.district_code, d.row.offers) for d in result.districts] == [
        ("310104", 3),
        ("310115", 2),
    ]
    assert result.city == FigureRow(
        offers=5,
        accepted=3,
        declined=1,
        withdrawn=1,
        students_aided=2,
        amount_fen=255_000,
    )
    assert result.summary() == "2 districts, 2 schools, 2 students, 2,550 yuan"


async def test_replayed_records_change_no_counter(
    redis: Redis, figures: AidFigures
) -> None:
    """A subscriber replaying a batch after a crash counts nothing twice."""
    records: list[Record] = [V1, withdrawal(V1), V2, grant(V2)]

    await feed(figures, records)
    first = await read_figures(redis, prefix_of(figures))
    await feed(figures, records + records)
    again = await read_figures(redis, prefix_of(figures))

    assert again == first
    assert first.city == FigureRow(
        offers=1, accepted=1, students_aided=1, amount_fen=50_000
    )


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o))
)
async def test_any_topic_order_gives_the_same_figures(
    redis: Redis, figures: AidFigures, order: tuple[int, ...]
) -> None:
    """Offers, withdrawals and grants read in any interleaving agree."""
    stream: list[Record] = [V1, withdrawal(V1), V2, grant(V2)]
    offers = iter([V1, V2])
    records = [
        next(offers) if isinstance(stream[i], Offer) else stream[i] for i in order
    ]

    await feed(figures, records)
    result = await read_figures(redis, prefix_of(figures))

    assert result.city == FigureRow(
        offers=1, accepted=1, students_aided=1, amount_fen=50_000
    )


async def test_an_open_offer_moves_with_a_transfer(
    redis: Redis, figures: AidFigures
) -> None:
    """An open offer updated to a new school counts there, and only there."""
    moved = replace(offer(2, school="SCH5", district="310115"), offer_id=V1.offer_id)

    await feed(figures, [V1, moved])
    result = await read_figures(redis, prefix_of(figures))

    assert set(school_rows(result)) == {"SCH5"}
    assert school_rows(result)["SCH5"] == FigureRow(offers=1, open=1)
    assert [d.district_code for d in result.districts] == ["310115"]


async def test_guardian_view_follows_a_readdressed_offer(
    redis: Redis, figures: AidFigures
) -> None:
    """An offer re-addressed to another guardian leaves the first one's list."""
    readdressed = replace(offer(2, account="portal-2"), offer_id=V1.offer_id)

    await feed(figures, [V1, withdrawal(V1), readdressed, grant(readdressed)])
    first = await read_guardian_offers(redis, "portal-1", prefix_of(figures))
    second = await read_guardian_offers(redis, "portal-2", prefix_of(figures))
    one = await read_offer(redis, V1.offer_id, prefix_of(figures))

    assert first == []
    assert [entry["offer_id"] for entry in second] == [V1.offer_id]
    assert second[0]["standing"] == "accepted"
    assert second[0]["offer"]["child_name"] == "王*明"
    assert second[0]["grant"]["grant_id"] == identity.grant_id(V1.offer_id)
    assert one == second[0]
    assert await read_offer(redis, str(uuid.uuid4()), prefix_of(figures)) is None
