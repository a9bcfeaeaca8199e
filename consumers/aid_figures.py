"""Aid figures per district and school, and each offer as its guardian sees it.

Duties:

- ``AidFigures``: a subscriber over offers, withdrawals, closures and grants
  that keeps, per offer id, what is known of the offer (``OfferDoc``) and
  counters per school, per district and for the city: offers, open,
  accepted, declined, withdrawn, expired, amount granted and the students
  aided;
- ``read_figures``: the figures, for ``edustream aid report`` and
  ``GET /aid/figures``;
- ``read_offer`` and ``read_guardian_offers``: the offers (with their grant
  or closure) addressed to one portal account, for the guardian
  notification view;
- ``subscribers()``: the aid read models, for the process that runs them.

Where an offer stands (``standing``) is derived from everything seen for its
id, whatever order the four topics were read in:

- a grant makes it accepted, at the grant's school and amount;
- a closure makes it declined or expired;
- otherwise it is withdrawn when the latest offer version was withdrawn (a
  withdrawal's id names the offer version it took back), and open if not.
  A withdrawn offer made again comes back as a new version with another
  event id, so it counts as open again; a version that arrives after its
  own withdrawal (the two topics are read independently) stays withdrawn.

Known shortcoming: an offer made again with exactly the content of its
withdrawn version repeats that version's event id, and reads as withdrawn
until its next version. It takes a status granted again with a time before
the student's latest registry entry or link, so that the offer's time does
not move either; a copy of the withdrawn version read late (the common case
the rule exists for) cannot be told from it without a version number on the
offer.

Idempotent by record id. Each offer's document remembers the contribution
it last added to the counters (``counted``); a record is folded into the
document, the new contribution computed, and both the document and the
counter differences are written in one Redis transaction that watches the
document. A replayed record leaves the document unchanged and writes
nothing; two members handling records of one offer at once retry.

Redis keys, under ``prefix`` (``aid:figures`` by default):

- ``{prefix}:offer:{offer_id}``: the offer's document (JSON);
- ``{prefix}:scope:{scope}``: hash of counters, ``scope`` being ``city``,
  ``district:{code}`` or ``school:{id}``;
- ``{prefix}:scope:{scope}:aided``: hash of student reference to the number
  of grants the student holds there; its length is the students aided;
- ``{prefix}:schools``: hash of school id to its name and district;
- ``{prefix}:guardian:{account}``: set of offer ids addressed to a portal
  account.

Only aggregates leave through ``read_figures``; the per-offer documents hold
student pseudonyms, portal accounts and masked names, never an ID number or
a full name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from consumers.base import Delivered, Subscriber
from edustream.aid import identity
from edustream.aid.outputs import Grant, Offer, OfferClosed, OfferWithdrawal
from edustream.aid.vocabulary import Outcome
from edustream.errors import PoisonError
from edustream.logs import get_logger
from edustream.settings import get_settings
from infra.redis import async_client, wrap
from topics import aid
from topics.spec import TopicSpec

log = get_logger(component="aid_figures")

PREFIX = "aid:figures"
OFFER_SCHEMA = "edustream.aid.Offer"
WITHDRAWAL_SCHEMA = "edustream.aid.OfferWithdrawal"
CLOSED_SCHEMA = "edustream.aid.OfferClosed"
GRANT_SCHEMA = "edustream.aid.Grant"

Standing = Literal["open", "accepted", "declined", "withdrawn", "expired"]
STANDINGS: tuple[Standing, ...] = (
    "open",
    "accepted",
    "declined",
    "withdrawn",
    "expired",
)
COUNTERS = ("offers", *STANDINGS, "amount_fen")

# HINCRBY, then drop the field once it reaches zero, so the hash length is
# the number of students holding at least one grant in the scope.
_ADJUST_AIDED = """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if left <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return left
"""


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one offer adds to the counters of its school, district and city."""

    standing: Standing
    school_id: str
    district_code: str
    amount_fen: int
    student_ref: str

    def to_list(self) -> list[str | int]:
        """Return the contribution in its stored form."""
        return [
            self.standing,
            self.school_id,
            self.district_code,
            self.amount_fen,
            self.student_ref,
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> Contribution:
        """Rebuild a contribution from ``to_list`` output."""
        standing, school_id, district_code, amount_fen, student_ref = data
        return cls(
            standing=cast("Standing", standing),
            school_id=str(school_id),
            district_code=str(district_code),
            amount_fen=int(amount_fen),
            student_ref=str(student_ref),
        )


@dataclass(frozen=True, slots=True)
class OfferDoc:
    """Everything the read model knows about one offer id."""

    offer: dict[str, Any] | None = None
    withdrawn: tuple[str, ...] = ()
    closure: dict[str, Any] | None = None
    grant: dict[str, Any] | None = None
    counted: Contribution | None = None

    def to_json(self) -> str:
        """Return the document as stored in Redis."""
        return json.dumps(
            {
                "offer": self.offer,
                "withdrawn": list(self.withdrawn),
                "closure": self.closure,
                "grant": self.grant,
                "counted": None if self.counted is None else self.counted.to_list(),
            },
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> OfferDoc:
        """Rebuild a stored document; nothing stored gives an empty one."""
        if raw is None:
            return cls()
        data = json.loads(raw)
        counted = data.get("counted")
        return cls(
            offer=data.get("offer"),
            withdrawn=tuple(data.get("withdrawn") or ()),
            closure=data.get("closure"),
            grant=data.get("grant"),
            counted=None if counted is None else Contribution.from_list(counted),
        )


AidRecord = Offer | OfferWithdrawal | OfferClosed | Grant


def parse(schema: str, record: dict[str, Any]) -> AidRecord | None:
    """Return the aid output a delivered record holds, or ``None`` if none."""
    if schema == OFFER_SCHEMA:
        return Offer.from_dict(record)
    if schema == WITHDRAWAL_SCHEMA:
        return OfferWithdrawal.from_dict(record)
    if schema == CLOSED_SCHEMA:
        return OfferClosed.from_dict(record)
    if schema == GRANT_SCHEMA:
        return Grant.from_dict(record)
    return None


def fold(doc: OfferDoc, record: AidRecord) -> OfferDoc:
    """Return ``doc`` with ``record`` taken in; a record seen before changes nothing.

    The latest offer version read replaces the one held: versions of one
    offer share a partition of the offers topic, so they are read in the
    order they were made.
    """
    if isinstance(record, Offer):
        return replace(doc, offer=record.to_dict())
    if isinstance(record, OfferWithdrawal):
        if record.event_id in doc.withdrawn:
            return doc
        return replace(doc, withdrawn=(*doc.withdrawn, record.event_id))
    if isinstance(record, OfferClosed):
        return replace(doc, closure=record.to_dict())
    return replace(doc, grant=record.to_dict())


def standing(doc: OfferDoc) -> Contribution | None:
    """Return what the offer counts for now, or ``None`` while it cannot be placed.

    A closure or withdrawal read before its offer cannot be placed in a
    school yet; it counts once the offer arrives.
    """
    if doc.grant is not None:
        grant = doc.grant
        return Contribution(
            "accepted",
            grant["school_id"],
            grant["district_code"],
            int(grant["amount_fen"]),
            grant["student_ref"],
        )
    offer = doc.offer
    if offer is None:
        return None

    state: Standing = "open"
    if doc.closure is not None:
        declined = doc.closure["outcome"] == Outcome.DECLINED.value
        state = "declined" if declined else "expired"
    elif identity.event_id("withdrawal", offer["event_id"]) in doc.withdrawn:
        state = "withdrawn"
    return Contribution(
        state, offer["school_id"], offer["district_code"], 0, offer["student_ref"]
    )


@dataclass(frozen=True)
class FigureKeys:
    """The Redis key layout of the read model under one prefix."""

    prefix: str = PREFIX

    def offer(self, offer_id: str) -> str:
        """The document of one offer."""
        return f"{self.prefix}:offer:{offer_id}"

    def scope(self, scope: str) -> str:
        """Counters of one scope: ``city``, ``district:{code}``, ``school:{id}``."""
        return f"{self.prefix}:scope:{scope}"

    def aided(self, scope: str) -> str:
        """Students holding a grant in one scope, with their grant count."""
        return f"{self.prefix}:scope:{scope}:aided"

    def schools(self) -> str:
        """School id to name and district."""
        return f"{self.prefix}:schools"

    def guardian(self, account: str) -> str:
        """Offer ids addressed to one portal account."""
        return f"{self.prefix}:guardian:{account}"


class AidFigures:
    """Subscriber keeping the aid figures and offer documents in Redis."""

    topics: tuple[TopicSpec, ...] = (
        aid.OFFERS,
        aid.WITHDRAWALS,
        aid.CLOSURES,
        aid.GRANTS,
    )

    def __init__(
        self, redis: Redis, *, group: str = "aid-figures", prefix: str = PREFIX
    ) -> None:
        self.group = group
        self.prefix = prefix
        self._redis = redis
        self._keys = FigureKeys(prefix)

    async def handle(self, item: Delivered) -> None:
        """Fold one output record into the read model."""
        try:
            record = parse(item.schema, item.record)
        except PoisonError as exc:
            # Written by our own flow, so a bug: skip it loudly rather than
            # stall every figure behind it.
            log.error(
                "aid_record_unreadable",
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                reason=exc.reason,
            )
            return
        if record is None:
            return

        try:
            await self._apply(record)
        except RedisError as exc:
            raise wrap(exc) from exc

    async def _apply(self, record: AidRecord) -> None:
        """Fold ``record`` into its offer's document and the counters, atomically."""
        key = self._keys.offer(record.offer_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await self._apply_once(pipe, key, record)
                    return
                except WatchError:
                    # Another member changed this offer first; read again.
                    continue

    async def _apply_once(self, pipe: Pipeline, key: str, record: AidRecord) -> None:
        await pipe.watch(key)
        before = OfferDoc.from_json(await pipe.get(key))
        folded = fold(before, record)
        after = replace(folded, counted=standing(folded))
        if after == before:
            # Seen before: nothing to write. Leaving the pipeline resets it.
            return

        # The redis stubs leave ``multi`` untyped.
        cast("Any", pipe).multi()
        pipe.set(key, after.to_json())
        self._count(pipe, before.counted, -1)
        self._count(pipe, after.counted, +1)
        self._note_school(pipe, record)
        self._address(pipe, before, after, record.offer_id)
        await pipe.execute()

    def _count(self, pipe: Pipeline, counted: Contribution | None, sign: int) -> None:
        """Add (``sign`` 1) or take back (-1) one offer's contribution."""
        if counted is None:
            return
        for scope in _scopes(counted):
            counters = self._keys.scope(scope)
            pipe.hincrby(counters, "offers", sign)
            pipe.hincrby(counters, counted.standing, sign)
            if counted.standing != "accepted":
                continue
            pipe.hincrby(counters, "amount_fen", sign * counted.amount_fen)
            pipe.eval(
                _ADJUST_AIDED, 1, self._keys.aided(scope), counted.student_ref, sign
            )

    def _note_school(self, pipe: Pipeline, record: AidRecord) -> None:
        """Remember a school's name and district for the report."""
        if isinstance(record, Offer):
            meta = {"name": record.school_name, "district_code": record.district_code}
            pipe.hset(self._keys.schools(), record.school_id, _compact(meta))
        elif isinstance(record, Grant):
            # A grant names no school; the offer, read later, fills it in.
            meta = {"name": record.school_id, "district_code": record.district_code}
            pipe.hsetnx(self._keys.schools(), record.school_id, _compact(meta))

    def _address(
        self, pipe: Pipeline, before: OfferDoc, after: OfferDoc, offer_id: str
    ) -> None:
        """Keep the offer listed under the account it is addressed to now."""
        old = None if before.offer is None else before.offer["guardian_account"]
        new = None if after.offer is None else after.offer["guardian_account"]
        if old == new:
            return
        if old is not None:
            pipe.srem(self._keys.guardian(old), offer_id)
        if new is not None:
            pipe.sadd(self._keys.guardian(new), offer_id)


def _scopes(counted: Contribution) -> tuple[str, ...]:
    return (
        "city",
        f"district:{counted.district_code}",
        f"school:{counted.school_id}",
    )


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


# Reading the figures.


@dataclass(frozen=True, slots=True)
class FigureRow:
    """Counts for one school, one district or the city."""

    offers: int = 0
    open: int = 0
    accepted: int = 0
    declined: int = 0
    withdrawn: int = 0
    expired: int = 0
    students_aided: int = 0
    amount_fen: int = 0

    def to_dict(self) -> dict[str, int | str]:
        """Return the row as JSON-ready fields, yuan included."""
        return {
            "offers": self.offers,
            "open": self.open,
            "accepted": self.accepted,
            "declined": self.declined,
            "withdrawn": self.withdrawn,
            "expired": self.expired,
            "students_aided": self.students_aided,
            "amount_fen": self.amount_fen,
            "amount_yuan": yuan(self.amount_fen),
        }


@dataclass(frozen=True, slots=True)
class SchoolFigures:
    """One school's figures."""

    school_id: str
    name: str
    district_code: str
    row: FigureRow


@dataclass(frozen=True, slots=True)
class DistrictFigures:
    """One district's figures."""

    district_code: str
    row: FigureRow


@dataclass(frozen=True, slots=True)
class Figures:
    """The whole report: districts, schools and the city totals."""

    districts: list[DistrictFigures] = field(default_factory=list)
    schools: list[SchoolFigures] = field(default_factory=list)
    city: FigureRow = FigureRow()

    @property
    def districts_taking_part(self) -> int:
        """Districts with at least one offer."""
        return sum(1 for district in self.districts if district.row.offers > 0)

    @property
    def schools_taking_part(self) -> int:
        """Schools with at least one offer."""
        return sum(1 for school in self.schools if school.row.offers > 0)

    def summary(self) -> str:
        """Return the city line, such as ``10 districts, 420 schools, ...``."""
        return (
            f"{self.districts_taking_part:,} districts, "
            f"{self.schools_taking_part:,} schools, "
            f"{self.city.students_aided:,} students, "
            f"{yuan(self.city.amount_fen, grouped=True)} yuan"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready document."""
        return {
            "city": {
                "districts": self.districts_taking_part,
                "schools": self.schools_taking_part,
                **self.city.to_dict(),
                "summary": self.summary(),
            },
            "districts": [
                {"district_code": d.district_code, **d.row.to_dict()}
                for d in self.districts
            ],
            "schools": [
                {
                    "school_id": s.school_id,
                    "name": s.name,
                    "district_code": s.district_code,
                    **s.row.to_dict(),
                }
                for s in self.schools
            ],
        }


def yuan(amount_fen: int, *, grouped: bool = False) -> str:
    """Return fen as yuan: whole yuan plain, otherwise with two decimals."""
    whole, fen = divmod(amount_fen, 100)
    text = f"{whole:,}" if grouped else str(whole)
    return text if fen == 0 else f"{text}.{fen:02d}"


async def read_figures(redis: Redis, prefix: str = PREFIX) -> Figures:
    """Return the figures per school, per district and for the city.

    Rows with no offer left (an open offer moved with a transfer) are left
    out. Raises ``RetriableError`` when Redis fails.
    """
    keys = FigureKeys(prefix)
    try:
        schools = _school_meta(await redis.hgetall(keys.schools()))
        districts = sorted({meta[1] for meta in schools.values()})
        scopes = [
            "city",
            *(f"district:{code}" for code in districts),
            *(f"school:{school_id}" for school_id in sorted(schools)),
        ]
        rows = await _read_rows(redis, keys, scopes)
    except RedisError as exc:
        raise wrap(exc) from exc

    return Figures(
        districts=[
            DistrictFigures(code, rows[f"district:{code}"])
            for code in districts
            if rows[f"district:{code}"].offers > 0
        ],
        schools=[
            SchoolFigures(school_id, name, district, rows[f"school:{school_id}"])
            for school_id, (name, district) in sorted(schools.items())
            if rows[f"school:{school_id}"].offers > 0
        ],
        city=rows["city"],
    )


async def _read_rows(
    redis: Redis, keys: FigureKeys, scopes: list[str]
) -> dict[str, FigureRow]:
    async with redis.pipeline(transaction=False) as pipe:
        for scope in scopes:
            pipe.hgetall(keys.scope(scope))
            pipe.hlen(keys.aided(scope))
        replies = await pipe.execute()

    rows: dict[str, FigureRow] = {}
    for index, scope in enumerate(scopes):
        counters = replies[2 * index]
        values = {_text(k): int(v) for k, v in counters.items()}
        rows[scope] = FigureRow(
            **{name: values.get(name, 0) for name in COUNTERS},
            students_aided=int(replies[2 * index + 1]),
        )
    return rows


def _school_meta(raw: dict[Any, Any]) -> dict[str, tuple[str, str]]:
    meta: dict[str, tuple[str, str]] = {}
    for school_id, value in raw.items():
        data = json.loads(value)
        meta[_text(school_id)] = (str(data["name"]), str(data["district_code"]))
    return meta


# Reading offers for the guardian notification view.


async def read_offer(
    redis: Redis, offer_id: str, prefix: str = PREFIX
) -> dict[str, Any] | None:
    """Return one offer as its guardian sees it, or ``None`` if unknown.

    The answer holds the latest offer version, where it stands, and the
    grant or closure that settled it. Raises ``RetriableError`` on failure.
    """
    try:
        raw = await redis.get(FigureKeys(prefix).offer(offer_id))
    except RedisError as exc:
        raise wrap(exc) from exc
    if raw is None:
        return None
    return _guardian_view(offer_id, OfferDoc.from_json(raw))


async def read_guardian_offers(
    redis: Redis, account: str, prefix: str = PREFIX
) -> list[dict[str, Any]]:
    """Return every offer addressed to ``account``, ordered by offer id."""
    keys = FigureKeys(prefix)
    try:
        members = await redis.smembers(keys.guardian(account))
        offer_ids = sorted(_text(member) for member in members)
        raws = await redis.mget([keys.offer(offer_id) for offer_id in offer_ids])
    except RedisError as exc:
        raise wrap(exc) from exc
    return [
        _guardian_view(offer_id, OfferDoc.from_json(raw))
        for offer_id, raw in zip(offer_ids, raws, strict=True)
        if raw is not None
    ]


def _guardian_view(offer_id: str, doc: OfferDoc) -> dict[str, Any]:
    counted = doc.counted
    return {
        "offer_id": offer_id,
        "standing": None if counted is None else counted.standing,
        "offer": doc.offer,
        "grant": doc.grant,
        "closure": doc.closure,
    }


def subscribers(redis_url: str | None = None) -> list[Subscriber]:
    """The aid read models: the figures and the offers kept for guardians."""
    redis = async_client(redis_url or get_settings().redis_url)
    return [AidFigures(redis)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "AidFigures",
    "Contribution",
    "Figures",
    "OfferDoc",
    "fold",
    "parse",
    "read_figures",
    "read_guardian_offers",
    "read_offer",
    "standing",
    "subscribers",
    "yuan",
]
