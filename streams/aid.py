"""The aid flow: registry, links and statuses in; offers and grants out.

Agents:

- ``aid-intake`` reads the three upstream topics (registry changes, family
  links, assistance statuses). It is the only step that sees ID numbers and
  names: it checks them, replaces them with keyed pseudonyms
  (``edustream.aid.intake``) and re-keys the records, registry entries onto
  ``STUDENT_FACTS`` by student reference, links and statuses onto
  ``PERSON_FACTS`` by person reference. It keeps no state.
- ``aid-router`` reads ``PERSON_FACTS`` with each person's links and
  statuses in the ``aid-persons`` table (``edustream.aid.router``) and
  addresses what it learns to the students concerned on ``STUDENT_FACTS``.
- ``aid-decider`` reads ``STUDENT_FACTS``, ``GUARDIAN_ANSWERS`` and
  ``EXPIRY_TICKS`` together; all three are keyed by student reference (ticks
  are sent to a partition) and share a partition count, so one student's
  facts, answers and state meet on one partition. It keeps each student in
  the ``aid-students`` table and re-assesses exactly that student per
  message (``edustream.aid.decider``): offers, withdrawals, closures and
  grants go to their topics keyed by student reference, and every rejected
  guardian answer goes to the dead-letter topic with the rejection as its
  reason.
- the ``aid-expiry-clock`` timer sends a tick to every partition this worker
  holds. The decider closes the offers of that partition which expired
  before the tick, found through the ``aid-expiry`` index.

Expiry. How long an offer stays open comes from the policy file alone
(``offer_expiry_days``): the decider sets each offer's ``expires_at`` from
it, and an answer after ``expires_at`` closes the offer as expired. Offers
nobody answers are closed on the wall clock: a tick carries the time it was
sent, so a backfill of old facts makes offers that expire at the next tick,
and a quiet partition still expires its offers. The sweep runs inside the
decider's stream rather than in the timer itself because only a stream
event may write the tables, and because then an answer and a tick for one
student are applied in the partition's order: an offer is either granted or
expired, never both.

The expiry index. ``aid-expiry`` holds, per partition, the hours in which
some student's earliest open offer expires (``"{p}:hours"``) and, per hour,
the students concerned in shards (``"{p}:{hour}:{shard}"``), so a tick reads
only the buckets that are due and a bucket stays small even when a whole
refresh makes its offers in one hour. A student is added whenever the
decider leaves them with an open offer; students whose offers were answered
in the meantime are found to have nothing due and dropped at sweep time.

At-least-once. Table writes go to the changelog partition of the event being
handled, and Faust flushes outputs and changelogs before it commits the
input's offset. A crash can lose outputs whose state was kept; the input is
then read again, found to change nothing, and the decider re-sends the last
records of every offer (``decider.replay``) with their ids unchanged. So
the decider waits until the state that records its outputs is stored before
it sends them: a guardian can only answer an offer a restarted decider
already knows, even when the restart reads the answer before the input that
made the offer. A tick
waits for its closures to be acknowledged before it keeps the new state,
because a tick read again would find nothing left to close.

The policy is loaded when this module is imported, that is when the worker
starts: ``EDUSTREAM_AID_POLICY_PATH`` names a file, else the shipped one is
used. An invalid file raises ``ConfigError`` naming the line or field, and
the worker stops before it joins the group.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
import zlib
from collections.abc import Awaitable, Iterable
from typing import Any

import faust
from faust.types import TableT

from avro_schemas import default_codec
from edustream import metrics
from edustream.aid.decider import StudentDecider, StudentMessage, StudentState
from edustream.aid.facts import (
    person_fact_from_dict,
    person_fact_to_dict,
    student_fact_from_dict,
    student_fact_to_dict,
)
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.intake import Intake
from edustream.aid.outputs import (
    AidOutput,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.policy import Policy, load_default_policy, load_policy
from edustream.aid.router import PersonState, person_key, route
from edustream.errors import PoisonError
from edustream.logs import get_logger
from edustream.settings import Settings, get_settings
from streams.app import app, topic
from streams.runtime import Input, dead_letter, run
from topics.aid import (
    ASSISTANCE_STATUS,
    CLOSURES,
    EXPIRY_TICKS,
    FAMILY_LINKS,
    GRANTS,
    GUARDIAN_ANSWERS,
    OFFERS,
    PERSON_FACTS,
    REGISTRY_CHANGES,
    STUDENT_FACTS,
    WITHDRAWALS,
)
from topics.spec import TopicSpec

FLOW = "aid"

REGISTRY_SCHEMA = "edustream.aid.RegistryChange"
LINK_SCHEMA = "edustream.aid.FamilyLink"
STATUS_SCHEMA = "edustream.aid.AssistanceStatus"
ANSWER_SCHEMA = "edustream.aid.GuardianAnswer"
PERSON_FACT_SCHEMA = "edustream.aid.PersonFact"
STUDENT_FACT_SCHEMA = "edustream.aid.StudentFact"

# Where each kind of decider output goes, and under which schema.
OUTPUT_ROUTES: dict[type[AidOutput], tuple[TopicSpec, str]] = {
    Offer: (OFFERS, "edustream.aid.Offer"),
    OfferWithdrawal: (WITHDRAWALS, "edustream.aid.OfferWithdrawal"),
    OfferClosed: (CLOSURES, "edustream.aid.OfferClosed"),
    Grant: (GRANTS, "edustream.aid.Grant"),
}
CLOSED_SCHEMA = OUTPUT_ROUTES[OfferClosed][1]

# Expiry is counted in days, so a tick every few seconds is far finer than
# needed; it is short so that a closure follows the expiry promptly. A tick
# costs one small record per partition and a few dictionary reads.
SWEEP_INTERVAL_S = 2.0
HOUR_MS = 3_600_000
# Shards per expiry hour: a start-of-term refresh can date every offer of a
# partition within one hour, and one bucket of ten thousand students would
# be re-written on every addition.
INDEX_SHARDS = 64

log = get_logger(component="aid")


def load_aid_policy(settings: Settings) -> Policy:
    """Return the policy file named by the settings, or the shipped one.

    Raises ``ConfigError`` naming the file and the line or field at fault.
    """
    if settings.aid_policy_path is None:
        return load_default_policy()
    return load_policy(settings.aid_policy_path)


_settings = get_settings()
_codec = default_codec()
policy = load_aid_policy(_settings)
_intake = Intake(_settings.pseudonym_key.encode())
_decider = StudentDecider(policy)

log.info(
    "aid_policy_loaded",
    source=str(_settings.aid_policy_path or "shipped"),
    versions=[version.version for version in policy.versions],
    open_terms=[plan.term.id for plan in policy.open_terms()],
    offer_expiry_days=policy.offer_expiry_days,
)

# Keys (pseudonyms, index keys) and values (JSON the flow encodes itself)
# are bytes, so the changelog holds exactly what the flow wrote and a table
# rebuilt from it after a restart holds the same keys and values as before.
# Faust picks its serializers from the key and value types: bytes is "raw",
# anything else JSON, which would hand back parsed documents on recovery.
persons = app.Table(
    "aid-persons",
    default=None,
    partitions=_settings.partitions,
    key_type=bytes,
    value_type=bytes,
)
students = app.Table(
    "aid-students",
    default=None,
    partitions=_settings.partitions,
    key_type=bytes,
    value_type=bytes,
)
expiry_index = app.Table(
    "aid-expiry",
    default=None,
    partitions=_settings.partitions,
    key_type=bytes,
    value_type=bytes,
)


@app.agent(topic(REGISTRY_CHANGES, FAMILY_LINKS, ASSISTANCE_STATUS), name="aid-intake")
async def intake_agent(stream: faust.StreamT[bytes]) -> None:
    """Pseudonymise upstream records and re-key them for the next stage."""
    await run(FLOW, stream, intake_step)


@app.agent(topic(PERSON_FACTS), name="aid-router")
async def router_agent(stream: faust.StreamT[bytes]) -> None:
    """Address each person's links and statuses to their students."""
    await run(FLOW, stream, route_step)


@app.agent(topic(STUDENT_FACTS, GUARDIAN_ANSWERS, EXPIRY_TICKS), name="aid-decider")
async def decider_agent(stream: faust.StreamT[bytes]) -> None:
    """Decide offers, answers and expiry per student."""
    await run(FLOW, stream, decide_step)


async def expiry_clock() -> None:
    """Send the wall-clock time to every decider partition this worker holds."""
    if app.rebalancing:
        return

    now = now_millis()
    held = sorted(
        tp.partition
        for tp in app.assignor.assigned_actives()
        if tp.topic == EXPIRY_TICKS.name
    )
    for partition in held:
        await _send_raw(EXPIRY_TICKS, None, tick_value(now), partition=partition)


# Registered by call rather than as a decorator: Faust's timer decorator is
# untyped and would erase the function's type.
app.timer(interval=SWEEP_INTERVAL_S, name="aid-expiry-clock")(expiry_clock)


# Intake: upstream records to pseudonymous facts.


async def intake_step(item: Input) -> str:
    """Pseudonymise one upstream record and send it on, re-keyed."""
    if item.topic == REGISTRY_CHANGES.name:
        change = RegistryChange.from_dict(_codec.decode_as(REGISTRY_SCHEMA, item.value))
        registry = _intake.registry(change)
        record = student_fact_to_dict(registry)
        await _send(STUDENT_FACTS, registry.student_ref, STUDENT_FACT_SCHEMA, record)
        return "registry"

    if item.topic == FAMILY_LINKS.name:
        link = _intake.link(
            FamilyLink.from_dict(_codec.decode_as(LINK_SCHEMA, item.value))
        )
        record = person_fact_to_dict(link)
        await _send(PERSON_FACTS, link.guardian_ref, PERSON_FACT_SCHEMA, record)
        return "link"

    status = _intake.status(
        AssistanceStatus.from_dict(_codec.decode_as(STATUS_SCHEMA, item.value))
    )
    record = person_fact_to_dict(status)
    await _send(PERSON_FACTS, status.person_ref, PERSON_FACT_SCHEMA, record)
    return "status"


# Router: per person, facts addressed to students.


async def route_step(item: Input) -> str:
    """Fold one link or status into its person and address the results."""
    record = person_fact_from_dict(_codec.decode_as(PERSON_FACT_SCHEMA, item.value))
    key = person_key(record)
    _require_key(item, key)

    raw = _get(persons, key)
    state = PersonState() if raw is None else PersonState.from_dict(_loads(raw))
    facts = route(state, record)

    for fact in facts:
        record_out = student_fact_to_dict(fact)
        await _send(STUDENT_FACTS, fact.student_ref, STUDENT_FACT_SCHEMA, record_out)
    _put(persons, item.partition, key, _dumps(state.to_dict()))
    return f"routed:{len(facts)}"


# Decider: per student, offers, answers and expiry.


async def decide_step(item: Input) -> str:
    """Apply one fact, answer or tick to its student and publish the result."""
    if item.topic == EXPIRY_TICKS.name:
        return await _sweep_partition(item.partition, read_tick(item.value))

    message = _student_message(item)
    _require_key(item, message.student_ref)

    state = _load_student(message.student_ref)
    outputs = _decider.decide(state, message)

    if not _only_rejections(message, outputs):
        kept = _put(
            students, item.partition, state.student_ref, _dumps(state.to_dict())
        )
        _index(item.partition, state)
        if any(not isinstance(output, RejectedAnswer) for output in outputs):
            # The state that records an offer is stored before the guardian
            # can see the offer. Otherwise a crash could leave an offer
            # answered that a restarted decider does not know yet (its input
            # not read again so far), and the answer would be refused. A
            # crash after this point loses only outputs, which the input read
            # again re-sends (module docstring, At-least-once).
            await kept
    await _publish(item, outputs)
    return outcome(outputs)


def _student_message(item: Input) -> StudentMessage:
    """Decode a student fact or a guardian answer."""
    if item.topic == GUARDIAN_ANSWERS.name:
        return GuardianAnswer.from_dict(_codec.decode_as(ANSWER_SCHEMA, item.value))
    return student_fact_from_dict(_codec.decode_as(STUDENT_FACT_SCHEMA, item.value))


def _only_rejections(message: StudentMessage, outputs: list[AidOutput]) -> bool:
    """Return whether ``message`` was an answer that changed nothing.

    A rejected answer leaves the student as it was; not writing the state
    keeps answers naming unknown students from creating empty entries.
    """
    if not isinstance(message, GuardianAnswer):
        return False
    return all(isinstance(output, RejectedAnswer) for output in outputs)


async def _publish(item: Input, outputs: list[AidOutput]) -> None:
    """Send each output to its topic; rejected answers become dead letters."""
    for output in outputs:
        if isinstance(output, RejectedAnswer):
            reason = output.reason.value
            await dead_letter(FLOW, item, reason, f"guardian answer rejected: {reason}")
            continue

        spec, schema = OUTPUT_ROUTES[type(output)]
        await _send(spec, output.student_ref, schema, output.to_dict())


def outcome(outputs: list[AidOutput]) -> str:
    """Return a short code for the log line: what the message produced."""
    if not outputs:
        return "no_change"
    return "+".join(_output_code(output) for output in outputs)


def _output_code(output: AidOutput) -> str:
    if isinstance(output, RejectedAnswer):
        return f"rejected:{output.reason.value}"
    if isinstance(output, OfferClosed):
        return f"closed:{output.outcome.value.lower()}"
    return {
        Offer: "offer",
        OfferWithdrawal: "withdrawal",
        Grant: "grant",
    }[type(output)]


# Expiry: ticks, the index and the sweep.


def now_millis() -> int:
    """Return the wall-clock time in epoch millis: the sweep's clock."""
    return time.time_ns() // 1_000_000


def tick_value(now: int) -> bytes:
    """Return the value of a tick read as ``now``."""
    return json.dumps({"now": now}).encode()


def read_tick(value: bytes | None) -> int:
    """Return the time a tick carries; anything else is poison."""
    try:
        now = json.loads(value or b"")["now"]
    except (ValueError, TypeError, KeyError) as exc:
        raise PoisonError("invalid_record", "expiry tick is not {now: millis}") from exc
    if not isinstance(now, int) or isinstance(now, bool):
        raise PoisonError("invalid_record", "expiry tick time is not an integer")
    return now


async def _sweep_partition(partition: int, now: int) -> str:
    """Close every open offer of ``partition`` that expired before ``now``.

    Closures are acknowledged before states and index are kept, so a tick
    read again after a crash still finds the same students due.
    """
    due_hours = [hour for hour in index_hours(partition) if hour <= now // HOUR_MS]
    swept: list[StudentState] = []
    sent: list[Awaitable[Any]] = []

    for student_ref in _students_in(partition, due_hours):
        state = _load_student(student_ref)
        for closed in _decider.sweep(state, now):
            sent.append(
                await _send(CLOSURES, student_ref, CLOSED_SCHEMA, closed.to_dict())
            )
        swept.append(state)
    await _delivered(sent)

    for state in swept:
        _put(students, partition, state.student_ref, _dumps(state.to_dict()))
    _drop_hours(partition, due_hours)
    for state in swept:
        _index(partition, state)
    return f"swept:{len(sent)}"


def _index(partition: int, state: StudentState) -> None:
    """Make sure the student is found at the hour their next offer expires."""
    expires_at = state.next_expiry()
    if expires_at is None:
        return

    hour = expires_at // HOUR_MS
    key = _bucket_key(partition, hour, _shard(state.student_ref))
    bucket = _json_list(_get(expiry_index, key))
    if state.student_ref in bucket:
        return

    bisect.insort(bucket, state.student_ref)
    _put(expiry_index, partition, key, _dumps(bucket))

    hours = index_hours(partition)
    if hour not in hours:
        bisect.insort(hours, hour)
        _put(expiry_index, partition, _hours_key(partition), _dumps(hours))


def _students_in(partition: int, hours: Iterable[int]) -> list[str]:
    """Return every student indexed under ``hours``, sorted, once each."""
    found: set[str] = set()
    for hour in hours:
        for shard in range(INDEX_SHARDS):
            found.update(
                _json_list(_get(expiry_index, _bucket_key(partition, hour, shard)))
            )
    return sorted(found)


def _drop_hours(partition: int, hours: list[int]) -> None:
    """Remove swept hours and their buckets from the index."""
    if not hours:
        return
    for hour in hours:
        for shard in range(INDEX_SHARDS):
            key = _bucket_key(partition, hour, shard)
            if _get(expiry_index, key) is not None:
                _delete(expiry_index, partition, key)

    swept = set(hours)
    left = [hour for hour in index_hours(partition) if hour not in swept]
    _put(expiry_index, partition, _hours_key(partition), _dumps(left))


def index_hours(partition: int) -> list[int]:
    """Return the hours in which some open offer of ``partition`` expires."""
    return [int(hour) for hour in _json_list(_get(expiry_index, _hours_key(partition)))]


def _hours_key(partition: int) -> str:
    return f"{partition}:hours"


def _bucket_key(partition: int, hour: int, shard: int) -> str:
    return f"{partition}:{hour}:{shard}"


def _shard(student_ref: str) -> int:
    return zlib.crc32(student_ref.encode()) % INDEX_SHARDS


# Shared steps.


def _load_student(student_ref: str) -> StudentState:
    """Return the student's state, or a fresh one for a student not seen."""
    raw = _get(students, student_ref)
    if raw is None:
        return StudentState(student_ref=student_ref)
    return StudentState.from_dict(_loads(raw))


def _require_key(item: Input, expected: str) -> None:
    """Refuse a record whose key is not the reference it is kept under.

    State lives in the partition the key hashes to; a record under another
    key would read and write the state of the wrong partition.
    """
    if item.key is None or item.key != expected.encode():
        raise PoisonError("key_mismatch", "message key is not the record's reference")


def _get(table: TableT[bytes, bytes], key: str) -> bytes | None:
    """Return a table value, or ``None``."""
    value: bytes | None = table.data.get(key.encode())
    return value


def _put(
    table: TableT[bytes, bytes], partition: int, key: str, value: bytes
) -> Awaitable[Any]:
    """Write a table value to the changelog partition of the input handled.

    Faust's own ``table[key] = value`` takes the partition from the current
    stream event; naming it here keeps the write right wherever it is made.
    The result resolves once the broker has stored the changelog record.
    """
    raw_key = key.encode()
    table.data[raw_key] = value
    return table.send_changelog(partition, raw_key, value)


def _delete(table: TableT[bytes, bytes], partition: int, key: str) -> None:
    """Remove a table value, with a tombstone on the changelog partition."""
    raw_key = key.encode()
    table.data.pop(raw_key, None)
    table.send_changelog(partition, raw_key, None)


def _dumps(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(raw: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def _json_list(raw: bytes | None) -> list[Any]:
    if raw is None:
        return []
    loaded: list[Any] = json.loads(raw)
    return loaded


async def _send(
    spec: TopicSpec, key: str, schema: str, record: dict[str, Any]
) -> Awaitable[Any]:
    """Encode one output and send it; the result resolves once it is stored."""
    return await _send_raw(spec, key.encode(), _codec.encode(schema, record))


async def _send_raw(
    spec: TopicSpec, key: bytes | None, value: bytes, *, partition: int | None = None
) -> Awaitable[Any]:
    pending = await _topic(spec).send(key=key, value=value, partition=partition)
    metrics.OUTPUTS.labels(FLOW, spec.name).inc()
    return pending


async def _delivered(sent: list[Awaitable[Any]]) -> None:
    """Wait until the broker has acknowledged every output sent."""
    if sent:
        await asyncio.gather(*sent)


_topics: dict[str, faust.TopicT] = {}


def _topic(spec: TopicSpec) -> faust.TopicT:
    """One Faust topic object per output, made once."""
    if spec.name not in _topics:
        _topics[spec.name] = topic(spec)
    return _topics[spec.name]
