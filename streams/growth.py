"""The growth flow: check-ins, confirmations, awards and voids into archives.

Agents:

- ``growth-enrolments``: registry changes (the aid flow's upstream topic) to
  ``EnrolmentFact`` records keyed by the student's growth account, the keyed
  pseudonym of the ID number. The registry topic belongs to the aid flow,
  whose intake dead-letters a malformed record; this agent skips it with a
  warning, so one bad record is not reported twice;
- ``growth-catalogue-check``: dead-letters malformed venue and activity
  records. Every worker reads the whole catalogue itself
  (``streams.growth_catalogue``); this agent, in the worker group, makes sure
  each bad record is reported once;
- ``growth-archive``: scans, mentor confirmations, organisers' awards, voids
  and enrolment facts, all keyed by student account, to statements and
  certificate changes. Refused inputs go to the dead-letter topic with the
  core's reason (not enrolled, unknown venue or activity, future time,
  check-out before check-in, stale scan, not the mentor, statement conflict).

One student's state is three things: the latest enrolment fact, the visit
state (open check-ins per venue) and the archive (statements, certificates).
Faust tables hold them and are the source of truth (``growth-students`` for
enrolment and visits, ``growth-archives`` for the archive); live objects sit
in a bounded cache in front, so an event costs no JSON decoding. The cache is
dropped whenever the consumer generation changes (a rebalance) and refilled
from the tables. Table writes are coalesced: each student touched in a batch
is written once, after the batch and before its offsets are acknowledged.

Time. A scan is screened against the time it reached the platform (its
``occurred_at``), never against this process's clock, so a replay judges
it the same. Check-ins nobody checked out of are closed by an event-time
watermark: per partition, the newest ``occurred_at`` of its scans. A student's
own scans sweep their state first; after each batch the students whose
earliest cap (venue closing or maximum stay, plus grace) the watermark has
passed are swept too. An auto-closed visit ends at its cap whatever time the
sweep runs, so its statement has the same content on every replay. The cost:
a partition that receives no scan closes nothing until its next scan arrives.

Outputs go straight to the app's producer (no per-record ``Topic`` object),
and the producer is flushed before every offset commit, so processing stays
at-least-once. Statement ids derive from their sources and certificate event
ids from (certificate, revision): a replay re-sends the same records.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.types import TableT
from mode import Service

from avro_schemas import default_codec
from edustream import metrics
from edustream.aid.inputs import RegistryChange
from edustream.aid.vocabulary import LEAVING_CHANGES
from edustream.errors import PoisonError
from edustream.growth.archive import ApplyOutcome, refuse_conflict
from edustream.growth.certificates import RuleBook, evaluate, load_rules
from edustream.growth.events import (
    Activity,
    CertificateAward,
    EnrolmentFact,
    MentorConfirmation,
    Scan,
    Venue,
    Void,
)
from edustream.growth.identity import derive_id
from edustream.growth.rejections import Rejection
from edustream.growth.statements import (
    Statement,
    statement_for_award,
    statement_for_confirmation,
    statement_for_visit,
    statement_for_void,
)
from edustream.growth.visits import (
    DEFAULT_POLICY,
    Visit,
    VisitPolicy,
    VisitState,
    on_scan,
    sweep,
)
from edustream.logs import get_logger
from edustream.pseudonym import pseudonymise
from edustream.settings import get_settings
from streams import runtime
from streams.app import app, topic
from streams.growth_catalogue import Catalogue
from streams.growth_state import InputOffsets, Student, StudentStore
from topics import aid as aid_topics
from topics import growth
from topics.spec import TopicSpec

log = get_logger(flow="growth")

FLOW = "growth"

SCAN_SCHEMA = "edustream.growth.Scan"
CONFIRMATION_SCHEMA = "edustream.growth.MentorConfirmation"
AWARD_SCHEMA = "edustream.growth.CertificateAward"
VOID_SCHEMA = "edustream.growth.Void"
ENROLMENT_SCHEMA = "edustream.growth.EnrolmentFact"
STATEMENT_SCHEMA = "edustream.growth.Statement"
CERTIFICATE_SCHEMA = "edustream.growth.Certificate"
REGISTRY_SCHEMA = "edustream.aid.RegistryChange"
VENUE_SCHEMA = "edustream.growth.Venue"
ACTIVITY_SCHEMA = "edustream.growth.Activity"

# Events per batch and the longest a batch waits to fill. A morning peak
# fills 1,000 events in well under the wait; a trickle waits at most 50 ms.
BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.05
# An input of a student with no enrolment fact yet waits this long (event
# time, by its partition's watermark) for one, since a registry feed may run
# minutes behind the venue devices; then it is refused as not enrolled.
ENROLMENT_WAIT_MS = 15 * 60_000
# Inputs one unknown account may park; later ones are refused at once, so a
# device sending an account nobody enrolled cannot grow the state.
MAX_PARKED = 100

_settings = get_settings()


def _table(name: str, help_text: str) -> TableT[bytes, Any]:
    return app.Table(
        name,
        default=None,
        partitions=_settings.partitions,
        # Keys are the raw account bytes of the source message; values are
        # JSON objects (the ``to_dict`` forms of the core's records).
        key_type=bytes,
        help=help_text,
    )


students_table = _table("growth-students", "Enrolment and visit state per student.")
archives_table = _table("growth-archives", "Statements and certificates per student.")
inputs_table = _table(
    "growth-inputs", "Offset of the last applied input per partition."
)

CATALOGUE = Catalogue()


@app.service
class CatalogueReader(Service):
    """Starts and stops the catalogue reader with the worker."""

    async def on_start(self) -> None:
        """Begin reading the catalogue topics."""
        bootstrap = _settings.kafka_bootstrap_servers or "127.0.0.1:9092"
        await CATALOGUE.start(bootstrap)

    async def on_stop(self) -> None:
        """Stop reading."""
        await CATALOGUE.stop()


class Emitter:
    """Encodes output records and hands them to the app's producer."""

    def __init__(self, faust_app: faust.App) -> None:
        self._app = faust_app
        self._codec = default_codec()
        self._sent: list[Awaitable[Any]] = []

    async def send(self, spec: TopicSpec, key: str, record: dict[str, Any]) -> None:
        """Queue one record; ``delivered`` waits until it is stored."""
        assert spec.schema is not None
        value = self._codec.encode(spec.schema, record)
        sent = await self._app.producer.send(
            spec.name, key.encode(), value, None, None, None
        )
        self._sent.append(sent)
        metrics.OUTPUTS.labels(FLOW, spec.name).inc()

    async def delivered(self) -> None:
        """Wait until the broker has stored the outputs and dead letters sent
        so far; raise if any output failed.

        Dead letters go straight to the producer, whose flush waits for
        them; outputs are awaited one by one, so a failure stops the batch
        before its state records are written.
        """
        sent, self._sent = self._sent, []
        await self._app.producer.flush()
        await self.stored(sent)

    async def stored(self, writes: Sequence[Awaitable[Any]]) -> None:
        """Wait until the broker has stored ``writes``; raise if one failed."""
        if writes:
            await asyncio.gather(*writes)


DeadLetter = Callable[[runtime.Input, Rejection], Awaitable[None]]
_Handler = Callable[[runtime.Input, dict[str, Any]], Awaitable[str]]


async def _dead_letter(item: runtime.Input, rejection: Rejection) -> None:
    await runtime.dead_letter(FLOW, item, rejection.reason.value, rejection.message)


class ArchiveFlow:
    """The growth-archive agent's decisions, one input at a time."""

    def __init__(
        self,
        store: StudentStore,
        offsets: InputOffsets,
        catalogue: Catalogue,
        emitter: Emitter,
        *,
        rules: RuleBook,
        policy: VisitPolicy = DEFAULT_POLICY,
        dead_letter: DeadLetter = _dead_letter,
    ) -> None:
        self.store = store
        self.offsets = offsets
        self.catalogue = catalogue
        self.emitter = emitter
        self.rules = rules
        self.policy = policy
        self._dead_letter = dead_letter
        self._codec = default_codec()
        # Per partition: the newest time a scan reached the platform.
        self.watermarks: dict[int, int] = {}
        # Per partition: (when something of the student may be due, key).
        self._due: dict[int, list[tuple[int, bytes]]] = {}
        self._batch_started = 0.0
        self._generation: int | None = None
        self._releasing = False
        self._handlers: dict[str, _Handler] = {
            SCAN_SCHEMA: self.on_scan_record,
            CONFIRMATION_SCHEMA: self.on_confirmation,
            AWARD_SCHEMA: self.on_award,
            VOID_SCHEMA: self.on_void,
            ENROLMENT_SCHEMA: self.on_enrolment,
        }

    async def process(
        self, events: Sequence[faust.EventT[Any]], generation: int
    ) -> None:
        """Handle one batch of the agent's stream."""
        self.on_generation(generation)
        await self.process_items([runtime.as_input(event) for event in events])

    async def process_items(self, items: Sequence[runtime.Input]) -> None:
        """Handle inputs in order, then due sweeps, then write the tables."""
        self._batch_started = time.monotonic()

        last: dict[int, runtime.Input] = {}
        for item in items:
            if self.offsets.applied(item) or self.store.applied(item):
                continue
            self._note_gap(item)
            await runtime.handle(FLOW, item, self.step)
            self.offsets.mark(item)
            self.store.mark_applied(item)
            last[item.partition] = item

        for partition, item in last.items():
            await self.sweep_due(partition, item)
        # Each write waits for the one before it to be stored. A state record
        # marks its inputs applied, and an input marked applied is never
        # handled again, so what it produced must already be safe: its
        # outputs and dead letters, then the archive entries. A crash between
        # the steps leaves the inputs unmarked; handled again, they re-send
        # the same ids and find their statements already in the archive.
        await self.emitter.delivered()
        await self.emitter.stored(self.store.flush_archives())
        self.store.flush_states()
        self.offsets.flush()

    def _note_gap(self, item: runtime.Input) -> None:
        """Say so when inputs of a partition resume after a hole.

        ``streams.faust_compat`` keeps Faust from dropping fetched records
        at a rebalance; this is how a hole would show if one ever opened.
        """
        expected = self.offsets.next_offset(item.topic, item.partition)
        if expected is not None and item.offset > expected:
            log.error(
                "input_gap",
                topic=item.topic,
                partition=item.partition,
                expected=expected,
                offset=item.offset,
            )

    def on_generation(self, generation: int) -> None:
        """After a rebalance, drop the cache and watch the stored deadlines."""
        if generation == self._generation:
            return
        self._generation = generation
        self.store.clear_cache()
        self.offsets.clear_cache()
        self._due.clear()

        partitions = _assigned_partitions()
        grace = self.policy.sweep_grace_ms
        for partition, deadline, key in self.store.due_times(partitions, grace):
            self._schedule(partition, deadline, key)
        log.info(
            "growth_state_reset", generation=generation, partitions=len(partitions)
        )

    async def step(self, item: runtime.Input) -> str:
        """Decide one input; returns the outcome for the log line."""
        schema, record = self._codec.decode(item.value)
        handler = self._handlers.get(schema)
        if handler is None:
            raise PoisonError("wrong_schema", f"growth does not read {schema}")
        return await handler(item, record)

    async def on_scan_record(self, item: runtime.Input, record: dict[str, Any]) -> str:
        """Pair a check-in or check-out into visits, after screening it."""
        scan = Scan.from_dict(record)
        student = self._student(item, scan.student_account)
        watermark = self._advance(item.partition, scan.occurred_at)
        if self._parks(student, item, scan.occurred_at):
            return "parked"

        venue, activity = await self._catalogue_entries(scan)
        state, closed = sweep(student.visits, watermark, self.policy)
        state, visits, rejections = on_scan(
            state,
            scan,
            venue,
            scan.occurred_at,
            enrolment=student.enrolment,
            activity=activity,
            policy=self.policy,
        )
        self._keep_visits(student, state)

        for visit in (*closed, *visits):
            await self._record_visit(item, student, visit, scan.occurred_at)
        return await self._refuse(item, rejections) or _scan_outcome(visits)

    async def on_confirmation(self, item: runtime.Input, record: dict[str, Any]) -> str:
        """The ``completed`` statement of the student this record is keyed by."""
        confirmation = MentorConfirmation.from_dict(record)
        account = _account(item)
        if account not in confirmation.student_accounts:
            message = "confirmation does not name the student it is keyed by"
            raise PoisonError("wrong_key", message)
        student = self._student(item, account)
        if self._parks(student, item, confirmation.occurred_at):
            return "parked"

        activity = await self._activity(confirmation.activity_id)
        built = statement_for_confirmation(
            confirmation,
            account,
            activity,
            student.enrolment,
            now=confirmation.occurred_at,
        )
        if isinstance(built, Rejection):
            return await self._refuse(item, [built])
        return await self._record(item, student, built)

    async def on_award(self, item: runtime.Input, record: dict[str, Any]) -> str:
        """The ``earned`` statement of an organiser's award.

        An award's ``occurred_at`` is when it was awarded, so its future check
        is against the record's broker timestamp: when it reached the platform.
        """
        award = CertificateAward.from_dict(record)
        student = self._student(item, award.student_account)
        if self._parks(student, item, award.occurred_at):
            return "parked"

        built = statement_for_award(award, student.enrolment, now=item.timestamp_ms)
        if isinstance(built, Rejection):
            return await self._refuse(item, [built])
        return await self._record(item, student, built)

    async def on_void(self, item: runtime.Input, record: dict[str, Any]) -> str:
        """The voiding statement; counts and certificates follow it."""
        void = Void.from_dict(record)
        student = self._student(item, void.student_account)
        built = statement_for_void(void, now=void.occurred_at)
        return await self._record(item, student, built)

    async def on_enrolment(self, item: runtime.Input, record: dict[str, Any]) -> str:
        """Keep the student's latest enrolment fact; release parked inputs."""
        fact = EnrolmentFact.from_dict(record)
        student = self._student(item, fact.student_account)
        current = student.enrolment
        if current is not None and current.occurred_at > fact.occurred_at:
            return "enrolment_outdated"

        student.enrolment = fact
        self.store.touch(student, state=True)
        await self._release(student)
        return "enrolled" if fact.enrolled else "left_school"

    async def sweep_due(self, partition: int, item: runtime.Input) -> int:
        """Settle students of ``partition`` whose deadline the watermark passed.

        Closes check-ins past their cap and refuses inputs that waited for an
        enrolment fact in vain. ``item`` is the batch's last input of the
        partition, the coordinates a statement conflict found here is
        reported under. Returns how many students were settled.
        """
        watermark = self.watermarks.get(partition)
        due = self._due.get(partition)
        settled = 0
        while due and watermark is not None and due[0][0] <= watermark:
            _, key = heapq.heappop(due)
            student = self.store.student(key, partition)
            if student.parked_until is not None and student.parked_until <= watermark:
                await self._expire(student)
            await self._sweep(student, watermark, item)
            settled += 1
        return settled

    async def _sweep(
        self, student: Student, watermark: int, item: runtime.Input
    ) -> None:
        state, visits = sweep(student.visits, watermark, self.policy)
        self._keep_visits(student, state)
        for visit in visits:
            await self._record_visit(item, student, visit, watermark)

    def _keep_visits(self, student: Student, state: VisitState) -> None:
        if state is student.visits:
            return
        student.visits = state
        self.store.touch(student, state=True)
        cap = state.next_close_at
        if cap is not None:
            deadline = cap + self.policy.sweep_grace_ms
            self._schedule(student.partition, deadline, student.key)

    def _parks(self, student: Student, item: runtime.Input, at: int) -> bool:
        """Park an input of a student with no enrolment fact yet."""
        if student.enrolment is not None or self._releasing:
            return False
        if len(student.parked) >= MAX_PARKED:
            return False

        student.parked.append(item)
        if student.parked_until is None:
            base = max(self.watermarks.get(item.partition, at), at)
            student.parked_until = base + ENROLMENT_WAIT_MS
            self._schedule(item.partition, student.parked_until, student.key)
        self.store.touch(student, state=True)
        return True

    async def _release(self, student: Student) -> None:
        """Run the parked inputs again, now that the wait is over."""
        parked, student.parked = student.parked, []
        student.parked_until = None
        if parked:
            self.store.touch(student, state=True)
        for item in parked:
            await runtime.handle(FLOW, item, self.step)

    async def _expire(self, student: Student) -> None:
        """Refuse (as not enrolled) the inputs that waited in vain."""
        self._releasing = True
        try:
            await self._release(student)
        finally:
            self._releasing = False

    def _student(self, item: runtime.Input, account: str) -> Student:
        if item.key != account.encode():
            message = "record's student account differs from its key"
            raise PoisonError("wrong_key", message)
        return self.store.student(item.key, item.partition)

    def _advance(self, partition: int, occurred_at: int) -> int:
        current = self.watermarks.get(partition)
        if current is None or occurred_at > current:
            self.watermarks[partition] = current = occurred_at
        return current

    def _schedule(self, partition: int, deadline: int, key: bytes) -> None:
        heapq.heappush(self._due.setdefault(partition, []), (deadline, key))

    async def _catalogue_entries(
        self, scan: Scan
    ) -> tuple[Venue | None, Activity | None]:
        venue = self.catalogue.venue(scan.venue_id)
        activity_id = scan.activity_id
        activity = None if activity_id is None else self.catalogue.activity(activity_id)
        if venue is None or (activity_id is not None and activity is None):
            await self.catalogue.catch_up(self._batch_started)
            venue = self.catalogue.venue(scan.venue_id)
            if activity_id is not None:
                activity = self.catalogue.activity(activity_id)
        return venue, activity

    async def _activity(self, activity_id: str) -> Activity | None:
        activity = self.catalogue.activity(activity_id)
        if activity is None:
            await self.catalogue.catch_up(self._batch_started)
            activity = self.catalogue.activity(activity_id)
        return activity

    async def _record_visit(
        self, item: runtime.Input, student: Student, visit: Visit, now: int
    ) -> None:
        statement = statement_for_visit(visit, now=now)
        await self._record(item, student, statement)

    async def _record(
        self, item: runtime.Input, student: Student, statement: Statement
    ) -> str:
        """Apply a statement to the archive; emit it and its certificates."""
        archive = student.archive
        outcome = archive.apply(statement)
        if outcome is ApplyOutcome.DUPLICATE:
            return "duplicate_statement"
        if outcome is ApplyOutcome.CONFLICT:
            return await self._refuse(item, [refuse_conflict(statement)])

        self.store.touch(student, archive=True)
        await self.emitter.send(growth.STATEMENTS, student.account, statement.to_dict())
        term = archive.affected_term(statement)
        if term is not None:
            changes = evaluate(archive, term, self.rules, at=statement.timestamp)
            for certificate in changes:
                await self.emitter.send(
                    growth.CERTIFICATES, student.account, certificate.to_dict()
                )
        return "voided" if statement.is_void else "statement"

    async def _refuse(
        self, item: runtime.Input, rejections: Sequence[Rejection]
    ) -> str:
        for rejection in rejections:
            await self._dead_letter(item, rejection)
        return "rejected" if rejections else ""


def _scan_outcome(visits: Sequence[Visit]) -> str:
    return "visit_closed" if visits else "scanned"


def _account(item: runtime.Input) -> str:
    if item.key is None:
        raise PoisonError("wrong_key", "record has no student account key")
    return item.key.decode(errors="replace")


def _assigned_partitions() -> set[int]:
    assigned = app.assignor.assigned_actives()
    return {tp.partition for tp in assigned if tp.topic == growth.SCANS.name}


def enrolment_fact(change: RegistryChange, key: bytes) -> EnrolmentFact:
    """The enrolment fact of a registry change, under the student's account."""
    return EnrolmentFact(
        event_id=derive_id("enrolment", change.event_id),
        occurred_at=change.occurred_at,
        student_account=pseudonymise(key, change.student_id),
        school_id=change.school_id,
        district_code=change.district_code,
        enrolled=change.change not in LEAVING_CHANGES,
    )


class EnrolmentFlow:
    """Registry changes re-keyed by growth account as enrolment facts."""

    def __init__(self, emitter: Emitter, pseudonym_key: bytes) -> None:
        self.emitter = emitter
        self._key = pseudonym_key
        self._codec = default_codec()

    async def step(self, item: runtime.Input) -> str:
        """Emit the fact of one registry change; skip one that is malformed."""
        try:
            record = self._codec.decode_as(REGISTRY_SCHEMA, item.value)
            change = RegistryChange.from_dict(record)
        except PoisonError as exc:
            log.warning(
                "registry_record_skipped",
                topic=item.topic,
                partition=item.partition,
                offset=item.offset,
                reason=exc.reason,
            )
            return "skipped"

        fact = enrolment_fact(change, self._key)
        await self.emitter.send(growth.ENROLMENTS, fact.student_account, fact.to_dict())
        return "enrolment_fact"


async def check_catalogue_entry(item: runtime.Input) -> str:
    """Decode one catalogue record, so a malformed one is dead-lettered."""
    if item.value is None:
        return "tombstone"
    codec = default_codec()
    if item.topic == growth.VENUES.name:
        Venue.from_dict(codec.decode_as(VENUE_SCHEMA, item.value))
    else:
        Activity.from_dict(codec.decode_as(ACTIVITY_SCHEMA, item.value))
    return "catalogued"


_emitter = Emitter(app)
_offsets = InputOffsets(inputs_table)
archive_flow = ArchiveFlow(
    StudentStore(students_table, archives_table),
    _offsets,
    CATALOGUE,
    _emitter,
    rules=load_rules(),
)
enrolment_flow = EnrolmentFlow(_emitter, _settings.pseudonym_key.encode())


async def _run_batches(
    stream: faust.StreamT[Any],
    process: Callable[[Sequence[faust.EventT[Any]]], Awaitable[None]],
) -> None:
    batches = cast(faust.Stream[Any], stream).take_events(
        BATCH_SIZE, within=BATCH_WITHIN_S
    )
    async for events in batches:
        await process(events)


async def _each(step: runtime.Step, events: Sequence[faust.EventT[Any]]) -> None:
    for event in events:
        await runtime.handle(FLOW, runtime.as_input(event), step)


@app.agent(
    topic(
        growth.SCANS,
        growth.CONFIRMATIONS,
        growth.AWARDS,
        growth.VOIDS,
        growth.ENROLMENTS,
    ),
    name="growth-archive",
)
async def archive_agent(stream: faust.StreamT[Any]) -> None:
    """Every student-keyed growth input, in batches, into archives."""

    async def process(events: Sequence[faust.EventT[Any]]) -> None:
        # Waited for here, not before the loop: an agent that starts reading
        # its stream late registers its channel after the subscription, and
        # Faust then delivers it nothing until a rebalance.
        await CATALOGUE.wait_ready()
        await archive_flow.process(events, app.consumer_generation_id)

    await _run_batches(stream, process)


@app.agent(topic(aid_topics.REGISTRY_CHANGES), name="growth-enrolments")
async def enrolment_agent(stream: faust.StreamT[Any]) -> None:
    """Registry changes into enrolment facts keyed by growth account."""

    async def process(events: Sequence[faust.EventT[Any]]) -> None:
        await _each(enrolment_flow.step, events)

    await _run_batches(stream, process)


@app.agent(topic(growth.VENUES, growth.ACTIVITIES), name="growth-catalogue-check")
async def catalogue_check_agent(stream: faust.StreamT[Any]) -> None:
    """Malformed catalogue records to the dead-letter topic."""
    await runtime.run(FLOW, stream, check_catalogue_entry)
