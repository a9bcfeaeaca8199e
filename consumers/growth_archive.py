"""The growth read model: archives, certificates, guardianships and counts.

Duties:

- ``GrowthArchive``: a subscriber over statements, certificates and the
  portal's guardianships that keeps, in Redis, each student's statements
  and certificates, each guardian's bound students, and counts per school
  and per district by term and category;
- reads for the HTTP view and ``edustream growth show``: ``load_archive``
  rebuilds a student's ``Archive`` (voids applied, counts rebuilt),
  ``archive_view`` turns it into the JSON a student or guardian sees,
  ``may_view`` answers whether a caller may see an account, and
  ``group_counts`` gives a school's or district's counts;
- ``subscribers(redis_url)``: the growth read models, for the process that
  runs the downstream consumers.

Authorisation list. A guardian may see exactly the students the citizen
portal bound to their portal account (``growth.guardianships``, one record
per bind or unbind, the latest per pair winning). A student may see their
own archive. Nothing else is ever authorised; an unbound guardian is told
no, not shown an empty archive.

Idempotent by record id, and independent of arrival order: a statement is
stored under its id once, and counted once in its school's and district's
counts unless a void for it is already known; a void stored the first time
takes its target's counts back once. A certificate is replaced only by a
higher revision; a guardianship only by a later change. Each statement is
applied in one MULTI/EXEC transaction, so a crash never leaves it stored
but uncounted.

Redis keys, under ``prefix`` (``growth`` by default):

- ``{prefix}:student:{account}:statements``: hash, statement id to JSON;
- ``{prefix}:student:{account}:certificates``: hash, certificate id to the
  JSON of its latest revision;
- ``{prefix}:student:{account}:counted``: hash, statement id to the JSON of
  its contribution to the group counts (the ledger a void undoes);
- ``{prefix}:student:{account}:voided``: hash, voided id to the void's id;
- ``{prefix}:guardian:{account}:students``: hash, student account to
  ``{"linked", "occurred_at"}``;
- ``{prefix}:{school|district}:{id}:{term}``: hash of counts, fields
  ``{CATEGORY}:seconds``, ``:visits`` and ``:awards``;
- ``{prefix}:{school|district}:{id}:{term}:{CATEGORY}:venues``: hash, venue
  id to visits, for distinct venues.

Group counts hold numbers and venue ids only, never an account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from consumers.base import Delivered, Subscriber
from edustream.growth.aggregates import Contribution, contribution_of
from edustream.growth.archive import Archive
from edustream.growth.certificates import Certificate, CertificateStatus
from edustream.growth.report import build_report
from edustream.growth.statements import Statement
from edustream.growth.terms import Term
from edustream.growth.vocabulary import CATEGORIES
from edustream.growth.wire import to_millis
from edustream.settings import get_settings
from infra.redis import async_client, wrap
from topics import growth
from topics.spec import TopicSpec

PREFIX = "growth"

STATEMENT_SCHEMA = "edustream.growth.Statement"
CERTIFICATE_SCHEMA = "edustream.growth.Certificate"
GUARDIANSHIP_SCHEMA = "edustream.portal.Guardianship"

LEVELS = ("school", "district")
_MEASURES = ("seconds", "visits", "awards")


@dataclass(frozen=True)
class GrowthKeys:
    """The Redis key layout of the growth read model under one prefix."""

    prefix: str = PREFIX

    def statements(self, account: str) -> str:
        """Hash of a student's statements by id."""
        return f"{self.prefix}:student:{account}:statements"

    def certificates(self, account: str) -> str:
        """Hash of a student's certificates by id, latest revision."""
        return f"{self.prefix}:student:{account}:certificates"

    def counted(self, account: str) -> str:
        """Hash of the contributions a student's statements made to counts."""
        return f"{self.prefix}:student:{account}:counted"

    def voided(self, account: str) -> str:
        """Hash of a student's voided statement ids."""
        return f"{self.prefix}:student:{account}:voided"

    def guardian(self, account: str) -> str:
        """Hash of the students bound to a guardian's portal account."""
        return f"{self.prefix}:guardian:{account}:students"

    def counts(self, level: str, group_id: str, term_id: str) -> str:
        """Hash of a school's or district's counts in a term."""
        return f"{self.prefix}:{level}:{group_id}:{term_id}"

    def venues(self, level: str, group_id: str, term_id: str, category: str) -> str:
        """Hash of visits per venue of one category, for distinct venues."""
        return f"{self.counts(level, group_id, term_id)}:{category}:venues"


class GrowthArchive:
    """Subscriber writing the growth read model into Redis."""

    topics: tuple[TopicSpec, ...] = (
        growth.STATEMENTS,
        growth.CERTIFICATES,
        growth.GUARDIANSHIPS,
    )

    def __init__(
        self, redis: Redis, *, group: str = "growth-archive", prefix: str = PREFIX
    ) -> None:
        self.group = group
        self._redis = redis
        self._keys = GrowthKeys(prefix)

    async def handle(self, item: Delivered) -> None:
        """Apply one record to the read model."""
        try:
            await self._apply(item.schema, item.record)
        except RedisError as exc:
            raise wrap(exc) from exc

    async def _apply(self, schema: str, record: dict[str, Any]) -> None:
        if schema == STATEMENT_SCHEMA:
            await self._statement(Statement.from_dict(record))
        elif schema == CERTIFICATE_SCHEMA:
            await self._certificate(Certificate.from_dict(record))
        elif schema == GUARDIANSHIP_SCHEMA:
            await self._guardianship(record)

    async def _statement(self, statement: Statement) -> None:
        # One writer per account (the topic is keyed by it), so the watch
        # never fires in practice; it keeps a second writer from counting
        # the same statement twice.
        while True:
            try:
                await self._store_statement(statement)
                return
            except WatchError:
                continue

    async def _store_statement(self, statement: Statement) -> None:
        keys, account = self._keys, statement.archive_account
        watched = (
            keys.statements(account),
            keys.counted(account),
            keys.voided(account),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(*watched)
            if await pipe.hexists(keys.statements(account), statement.id):
                return
            voided = await pipe.hexists(keys.voided(account), statement.object_id)
            undo = await self._undo_for(pipe, account, statement)
            counted = not await pipe.hexists(keys.voided(account), statement.id)

            # redis-py leaves ``multi`` unannotated.
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(
                keys.statements(account), statement.id, _json(statement.to_dict())
            )
            if statement.is_void and not voided:
                self._void(pipe, account, statement, undo)
            elif not statement.is_void and counted:
                self._count(pipe, account, statement)
            await pipe.execute()

    async def _undo_for(
        self, pipe: Pipeline, account: str, void: Statement
    ) -> Contribution | None:
        """What a void takes back from the counts, if it is a void at all."""
        if not void.is_void:
            return None
        raw = await pipe.hget(self._keys.counted(account), void.object_id)
        return None if raw is None else Contribution.from_dict(json.loads(raw))

    def _void(
        self, pipe: Pipeline, account: str, void: Statement, undo: Contribution | None
    ) -> None:
        pipe.hset(self._keys.voided(account), void.object_id, void.id)
        if undo is not None:
            pipe.hdel(self._keys.counted(account), void.object_id)
            self._shift(pipe, undo, -1)

    def _count(self, pipe: Pipeline, account: str, statement: Statement) -> None:
        contribution = contribution_of(statement)
        if contribution is None:
            return
        ledger = _json(contribution.to_dict())
        pipe.hset(self._keys.counted(account), statement.id, ledger)
        self._shift(pipe, contribution, 1)

    def _shift(self, pipe: Pipeline, contribution: Contribution, sign: int) -> None:
        category = contribution.category.value
        for level, group_id in _groups(contribution):
            counts = self._keys.counts(level, group_id, contribution.term_id)
            pipe.hincrby(counts, f"{category}:seconds", sign * contribution.seconds)
            pipe.hincrby(counts, f"{category}:visits", sign * contribution.visits)
            pipe.hincrby(counts, f"{category}:awards", sign * contribution.awards)
            if contribution.venue_id is not None and contribution.visits:
                venues = self._keys.venues(
                    level, group_id, contribution.term_id, category
                )
                pipe.hincrby(venues, contribution.venue_id, sign * contribution.visits)

    async def _certificate(self, certificate: Certificate) -> None:
        key = self._keys.certificates(certificate.student_account)
        raw = await self._redis.hget(key, certificate.certificate_id)
        if raw is not None and json.loads(raw)["revision"] >= certificate.revision:
            return
        await self._redis.hset(
            key, certificate.certificate_id, _json(certificate.to_dict())
        )

    async def _guardianship(self, record: dict[str, Any]) -> None:
        key = self._keys.guardian(str(record["guardian_account"]))
        student = str(record["student_account"])
        occurred_at = to_millis(record["occurred_at"])
        raw = await self._redis.hget(key, student)
        if raw is not None and json.loads(raw)["occurred_at"] > occurred_at:
            return
        binding = {"linked": bool(record["linked"]), "occurred_at": occurred_at}
        await self._redis.hset(key, student, _json(binding))


def _groups(contribution: Contribution) -> list[tuple[str, str]]:
    found = [
        ("school", contribution.school_id),
        ("district", contribution.district_code),
    ]
    return [(level, group) for level, group in found if group is not None]


async def load_archive(redis: Redis, account: str, prefix: str = PREFIX) -> Archive:
    """A student's archive as the read model holds it (empty if unknown).

    Raises ``RetriableError`` when Redis fails.
    """
    keys = GrowthKeys(prefix)
    try:
        statements = await redis.hgetall(keys.statements(account))
        certificates = await redis.hgetall(keys.certificates(account))
    except RedisError as exc:
        raise wrap(exc) from exc

    return Archive.from_dict(
        {
            "student_account": account,
            "statements": [json.loads(raw) for raw in statements.values()],
            "certificates": [json.loads(raw) for raw in certificates.values()],
        }
    )


def archive_view(
    archive: Archive, *, now: int, term: Term | None = None
) -> dict[str, Any]:
    """What a student or guardian sees: entries, certificates and the report.

    Entries are the live statements in xAPI form, newest first (voided ones
    and voids are left out). Certificates carry their status, so a withdrawn
    one shows as withdrawn rather than vanishing without a word.
    """
    statements = [s.to_xapi_json() for s in reversed(archive.statements())]
    certificates = sorted(
        archive.certificates.values(), key=lambda c: (c.term, c.rule_id)
    )
    return {
        "student_account": archive.student_account,
        "statements": statements,
        "certificates": [_certificate_view(c) for c in certificates],
        "report": build_report(archive, generated_at=now, term=term).to_dict(),
    }


def _certificate_view(certificate: Certificate) -> dict[str, Any]:
    view = certificate.to_dict()
    if certificate.status is CertificateStatus.ISSUED:
        view["open_badge"] = certificate.to_open_badge_json()
    return view


async def may_view(
    redis: Redis, caller: str, account: str, prefix: str = PREFIX
) -> bool:
    """Whether ``caller`` is the student or a guardian bound to them."""
    if caller == account:
        return True
    try:
        raw = await redis.hget(GrowthKeys(prefix).guardian(caller), account)
    except RedisError as exc:
        raise wrap(exc) from exc
    return raw is not None and bool(json.loads(raw)["linked"])


async def group_counts(
    redis: Redis, level: str, group_id: str, term_id: str, prefix: str = PREFIX
) -> dict[str, dict[str, int]]:
    """A school's or district's counts per category in one term."""
    keys = GrowthKeys(prefix)
    try:
        counts = await redis.hgetall(keys.counts(level, group_id, term_id))
        venues = [
            await redis.hgetall(keys.venues(level, group_id, term_id, c.value))
            for c in CATEGORIES
        ]
    except RedisError as exc:
        raise wrap(exc) from exc

    found = {_text(k): int(v) for k, v in counts.items()}
    return {
        category.value: {
            **{m: found.get(f"{category.value}:{m}", 0) for m in _MEASURES},
            "distinct_venues": sum(1 for v in per_venue.values() if int(v) > 0),
        }
        for category, per_venue in zip(CATEGORIES, venues, strict=True)
    }


def subscribers(redis_url: str | None = None) -> list[Subscriber]:
    """The growth read model, on Redis at ``redis_url`` or ``REDIS_URL``."""
    redis = async_client(redis_url or get_settings().redis_url)
    return [GrowthArchive(redis)]


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
