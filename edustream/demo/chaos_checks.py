"""The fault harness's verdict: every output checked by id after a run.

Duties:

- ``Injection``: what a fault did (how often it struck, which records and
  requests it added and what each must lead to), filled in while it runs;
- ``verdict``: one ``FaultRow`` from the output topics, the read models,
  the logs and the injection;
- ``read_models``: a snapshot of the Redis read models, taken while the
  subscribers still run and after every group has caught up.

How outputs are counted. Each scenario names its output kinds and says how
many of each must come out, computed while it built the inputs. A kind is
counted by distinct id on its topic, so a record the broker carries twice
with one id is one output, and a second id for one expected output is a
double. Records on a counted topic that no kind claims are unexpected.

Injected inputs are checked by where they were stored: a dead letter names
its source topic, partition and offset, so every poison record, every copy
of an input and every forged answer is matched to its own dead letter, and
kept out of the scenario's counts. A copy must be dead-lettered exactly
when its original was, except that a copy of a scan sent after the
student's later scans may be refused as stale (``_stale_copy``).

Receipts are checked for their numbers as well: one number per receipt id,
no number given twice within a receipt code, and every code's numbers
1..N with no gap.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from edustream.demo.outputs import OutputCounter, json_default
from edustream.demo.privacy import scan_for_secrets
from edustream.demo.scenario import Kind, Scenario
from edustream.growth.rejections import Reason
from topics import CATALOGUE, DEAD_LETTERS, FLOWS, aid, billing, growth

# Topic, partition, offset of one stored record.
Coord = tuple[str, int, int]


@dataclass
class Injection:
    """What one fault did to a run, and what its inputs must lead to."""

    count: int = 0
    inputs: int = 0
    notes: list[str] = field(default_factory=list)
    # Expectations the fault found unmet while it ran (a refused request
    # answered 200, a group that never caught up...).
    problems: list[str] = field(default_factory=list)
    # Record -> the flows that must dead-letter it.
    poison: dict[Coord, frozenset[str]] = field(default_factory=dict)
    # Copy -> the original it repeats.
    copies: dict[Coord, Coord] = field(default_factory=dict)
    # sha256 of callback bodies the ingress must refuse and record.
    refused_bodies: set[str] = field(default_factory=set)


@dataclass
class FaultRow:
    """One line of the harness's table."""

    fault: str
    injected: int = 0
    inputs: int = 0
    outputs: int = 0
    missing: int = 0
    doubled: int = 0
    unexpected: int = 0
    dead_letters: int = 0
    leaks: int = 0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing missing, doubled, unexpected or leaked; no unmet check."""
        return (
            not (self.missing or self.doubled or self.unexpected or self.leaks)
            and not self.problems
        )


@dataclass
class ReadModels:
    """The read models' view of the outputs, by id."""

    # Receipt ids (blue and red) -> every receipt number the history shows.
    history_receipts: dict[str, list[str]] = field(default_factory=dict)
    history_exceptions: int = 0
    # Statement id -> archives holding it.
    archived: dict[str, int] = field(default_factory=dict)
    # Certificate id -> status in the archive.
    certificates: dict[str, str] = field(default_factory=dict)
    students_aided: int = 0
    aid_amount_fen: int = 0


def dead_letter_kinds() -> list[Kind]:
    """Every flow's dead letters, by dead letter id."""
    return [
        Kind(f"{flow}.dead_letters", spec, lambda r: str(r["event_id"]))
        for flow, spec in DEAD_LETTERS.items()
    ]


def verdict(
    name: str,
    scenarios: list[Scenario],
    counter: OutputCounter,
    *,
    injection: Injection,
    models: ReadModels | None,
    texts: dict[str, str],
) -> FaultRow:
    """The row of one fault's run."""
    row = FaultRow(
        fault=name,
        injected=injection.count,
        notes=list(injection.notes),
        problems=list(injection.problems),
    )
    row.inputs = injection.inputs + sum(
        len(p.publications) + len(p.callbacks) for s in scenarios for p in s.phases
    )
    injected = _InjectedRecords(injection)
    _count_kinds(row, scenarios, counter, injected)
    _check_injected(row, counter, injection)
    _check_receipt_numbers(row, counter)
    if models is not None:
        _check_read_models(row, counter, models)
    row.leaks = _privacy_leaks(row, scenarios, counter, texts)
    row.notes.append(f"{_raw_repeats(counter)} records carried again with one id")
    return row


class _InjectedRecords:
    """Recognises output records that belong to the fault, not the city."""

    def __init__(self, injection: Injection) -> None:
        self._coords = set(injection.poison) | set(injection.copies)
        self._bodies = injection.refused_bodies

    def __call__(self, topic: str, record: dict[str, Any]) -> bool:
        if topic in _DEAD_LETTER_TOPICS:
            return _source(record) in self._coords
        if topic == billing.REJECTED_CALLBACKS.name:
            return record.get("body_sha256") in self._bodies
        return False


_DEAD_LETTER_TOPICS = {spec.name for spec in DEAD_LETTERS.values()}


def _source(record: dict[str, Any]) -> Coord:
    return (
        str(record["source_topic"]),
        int(record["source_partition"]),
        int(record["source_offset"]),
    )


def _count_kinds(
    row: FaultRow,
    scenarios: list[Scenario],
    counter: OutputCounter,
    injected: _InjectedRecords,
) -> None:
    """Distinct ids per kind against the scenarios' expectations."""
    expected: dict[str, int] = {}
    kinds: list[Kind] = dead_letter_kinds()
    for s in scenarios:
        expected.update(s.expected)
        kinds.extend(s.kinds)
    claimed: dict[str, set[int]] = defaultdict(set)
    distinct: set[tuple[str, str]] = set()
    for kind in kinds:
        ids: set[str] = set()
        records = counter.records.get(kind.topic.name, [])
        for index, record in enumerate(records):
            if injected(kind.topic.name, record) or not kind.where(record):
                continue
            ids.add(kind.id_of(record))
            claimed[kind.topic.name].add(index)
        want = expected.get(kind.name)
        if want is None:
            continue
        # Kinds overlap (an offer is also an "enrolled first" offer): the
        # outputs column counts each record id once.
        distinct.update((kind.topic.name, i) for i in ids)
        if kind.name.endswith(".dead_letters"):
            row.dead_letters += len(ids)
        row.missing += max(0, want - len(ids))
        row.doubled += max(0, len(ids) - want)
        if len(ids) != want:
            row.problems.append(f"{kind.name} {len(ids)} of {want}")
    row.outputs = len(distinct)
    for topic, indices in claimed.items():
        if topic in _INTERNAL_TOPICS:
            # A flow's own intermediate topic also carries facts of the other
            # scenarios (enrolments from the aid city's registry); its
            # doubles still show in the kind's count.
            continue
        records = counter.records.get(topic, [])
        stray = [
            r
            for i, r in enumerate(records)
            if i not in indices and not injected(topic, r)
        ]
        if stray:
            row.unexpected += len(stray)
            row.problems.append(f"{len(stray)} records on {topic} of no kind")


_INTERNAL_TOPICS = {
    spec.name
    for spec in CATALOGUE.values()
    if spec.writer in FLOWS and set(spec.readers) & set(FLOWS)
}


def _check_injected(row: FaultRow, counter: OutputCounter, inj: Injection) -> None:
    """Every injected input has its dead letter (or refusal), and no more."""
    lettered: dict[Coord, dict[str, str]] = defaultdict(dict)
    for flow, spec in DEAD_LETTERS.items():
        for record in counter.records.get(spec.name, []):
            lettered[_source(record)].setdefault(flow, str(record["reason"]))

    wants = dict(inj.poison)
    for copy, original in inj.copies.items():
        wants[copy] = frozenset(lettered.get(original, {}))
    reasons: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    parked = stale = 0
    for coord, flows in wants.items():
        got = lettered.get(coord, {})
        reasons.update(got.values())
        row.dead_letters += len(got)
        row.outputs += len(got)
        row.problems += [f"dead letter without reason at {coord}" for r in got if not r]
        for flow in flows - set(got):
            if _waits_for_enrolment(inj, lettered, coord):
                parked += 1
                continue
            row.missing += 1
            wrong[
                f"{coord[0]} not dead-lettered by {flow}{_was(inj, lettered, coord)}"
            ] += 1
        for flow in set(got) - flows:
            if _stale_copy(inj, coord, got[flow]):
                stale += 1
                continue
            row.unexpected += 1
            wrong[f"{coord[0]} dead-lettered by {flow} as {got[flow]}"] += 1
    row.problems += [f"{n} x {text}" for text, n in wrong.most_common(10)]
    if parked:
        row.notes.append(
            f"{parked} copies of scans refused as not enrolled are parked, "
            "waiting for their partition's event time to pass the enrolment wait"
        )

    if stale:
        row.notes.append(
            f"{stale} copies of scans came after the student's later scans and "
            "were refused as stale_scan: older than the lateness the flow accepts"
        )

    refused = {
        str(r.get("body_sha256"))
        for r in counter.records.get(billing.REJECTED_CALLBACKS.name, [])
        if r.get("body_sha256") in inj.refused_bodies and r.get("reason")
    }
    row.missing += len(inj.refused_bodies - refused)
    row.dead_letters += len(refused)
    row.outputs += len(refused)
    if reasons:
        row.notes.append(
            "injected dead letters by reason "
            + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        )


def _waits_for_enrolment(
    inj: Injection, lettered: dict[Coord, dict[str, str]], coord: Coord
) -> bool:
    """A copy of an input refused as not enrolled is parked, not refused at
    once: the growth flow waits ``ENROLMENT_WAIT_MS`` of its partition's
    event time for the enrolment, and copies sent after every other input
    move that time no further."""
    original = inj.copies.get(coord)
    if original is None:
        return False
    return "not_enrolled" in lettered.get(original, {}).values()


def _stale_copy(inj: Injection, coord: Coord, reason: str) -> bool:
    """A copy of a scan sent after the student's later scans may be refused
    as stale: the growth flow accepts a scan only within ``max_lateness_ms``
    of the student's newest one, the bound that keeps its state small, and
    cannot tell a copy that old from a new scan that late. Refused, it has no
    effect, so nothing is doubled."""
    return (
        coord in inj.copies
        and coord[0] == growth.SCANS.name
        and reason == str(Reason.STALE_SCAN)
    )


def _was(inj: Injection, lettered: dict[Coord, dict[str, str]], coord: Coord) -> str:
    """For a copy, why its original was dead-lettered."""
    original = inj.copies.get(coord)
    if original is None:
        return ""
    return f" (its original was: {sorted(lettered.get(original, {}).values())})"


def _check_receipt_numbers(row: FaultRow, counter: OutputCounter) -> None:
    """Receipts with two numbers, numbers given twice, gaps in a series."""
    numbers_of: dict[str, set[str]] = defaultdict(set)
    by_series: dict[str, dict[str, str]] = defaultdict(dict)
    for spec in (billing.RECEIPTS, billing.RED_RECEIPTS):
        for r in counter.records.get(spec.name, []):
            rid = str(r.get("receipt_id") or r.get("event_id"))
            code, number = str(r.get("receipt_code")), str(r.get("receipt_number"))
            numbers_of[rid].add(f"{code}/{number}")
            seen = by_series[code].setdefault(number, rid)
            if seen != rid:
                row.doubled += 1
                row.problems.append(f"receipt number {code}/{number} given twice")
    renumbered = sum(len(v) - 1 for v in numbers_of.values() if len(v) > 1)
    if renumbered:
        row.doubled += renumbered
        row.problems.append(f"{renumbered} receipts carry two numbers")
    gaps = 0
    for code, numbers in by_series.items():
        values = sorted(int(n) for n in numbers)
        if values != list(range(1, len(values) + 1)):
            gaps += 1
            row.problems.append(f"series {code} is not 1..{len(values)}")
    row.missing += gaps
    given = sum(len(v) for v in by_series.values())
    row.notes.append(
        f"{given} receipt numbers in {len(by_series)} series, {gaps} series with a gap"
    )


def _check_read_models(
    row: FaultRow, counter: OutputCounter, models: ReadModels
) -> None:
    """The read models hold every output once, as the topics say."""
    faults = [
        *_history_faults(counter, models),
        *_archive_faults(counter, models),
        *_aid_figure_faults(counter, models),
    ]
    row.doubled += sum(1 for doubled, _ in faults if doubled)
    row.missing += sum(1 for doubled, _ in faults if not doubled)
    row.problems += [text for _, text in faults[:10]]
    if len(faults) > 10:
        row.problems.append(f"... {len(faults) - 10} more read model faults")
    row.notes.append(
        f"read models: {len(models.history_receipts)} receipts, "
        f"{len(models.archived)} statements, {len(models.certificates)} "
        f"certificates, {models.students_aided} students aided"
    )


# (whether it is a double, what is wrong) of one read model entry.
_Fault = tuple[bool, str]


def _history_faults(counter: OutputCounter, models: ReadModels) -> list[_Fault]:
    """Each receipt once in the payment history, with its number."""
    numbers: dict[str, str] = {}
    for spec in (billing.RECEIPTS, billing.RED_RECEIPTS):
        for r in counter.records.get(spec.name, []):
            numbers[str(r["receipt_id"])] = str(r["receipt_number"])
    faults: list[_Fault] = []
    for rid, number in numbers.items():
        shown = models.history_receipts.get(rid, [])
        if shown != [number]:
            faults.append((len(shown) > 1, f"history shows receipt {rid} as {shown}"))
    extra = set(models.history_receipts) - set(numbers)
    faults += [(True, f"history has unknown receipt {rid}") for rid in sorted(extra)]
    exceptions = {
        str(r["event_id"]) for r in counter.records.get(billing.EXCEPTIONS.name, [])
    }
    if models.history_exceptions != len(exceptions):
        faults.append(
            (
                models.history_exceptions > len(exceptions),
                f"history has {models.history_exceptions} exceptions "
                f"of {len(exceptions)}",
            )
        )
    return faults


def _archive_faults(counter: OutputCounter, models: ReadModels) -> list[_Fault]:
    """Each statement in one archive; each certificate at its last status."""
    records = counter.records.get(growth.STATEMENTS.name, [])
    statements = {str(r["id"]) for r in records}
    faults: list[_Fault] = []
    for sid in statements:
        held = models.archived.get(sid, 0)
        if held != 1:
            faults.append((held > 1, f"statement {sid} in {held} archives"))
    faults += [
        (True, f"archive has unknown statement {sid}")
        for sid in sorted(set(models.archived) - statements)
    ]
    latest: dict[str, tuple[int, str]] = {}
    for r in counter.records.get(growth.CERTIFICATES.name, []):
        cid, revision = str(r["certificate_id"]), int(r["revision"])
        if cid not in latest or latest[cid][0] < revision:
            latest[cid] = (revision, str(r["status"]))
    for cid, (_, status) in latest.items():
        shown = models.certificates.get(cid)
        if shown != status:
            faults.append((False, f"certificate {cid} is {shown}, not {status}"))
    return faults


def _aid_figure_faults(counter: OutputCounter, models: ReadModels) -> list[_Fault]:
    """The city's aid figures add up the grants on the topic."""
    records = counter.records.get(aid.GRANTS.name, [])
    grants = {str(r["grant_id"]): r for r in records}
    aided = len({str(r["student_ref"]) for r in grants.values()})
    amount = sum(int(r["amount_fen"]) for r in grants.values())
    shown = (models.students_aided, models.aid_amount_fen)
    if shown == (aided, amount):
        return []
    text = f"aid figures show {shown} students and fen, grants {(aided, amount)}"
    return [(shown > (aided, amount), text)]


def _raw_repeats(counter: OutputCounter) -> int:
    """Records whose id was already on the topic: at-least-once copies."""
    repeats = 0
    for records in counter.records.values():
        seen: set[str] = set()
        for r in records:
            rid = str(r.get("event_id"))
            repeats += rid in seen
            seen.add(rid)
    return repeats


def _privacy_leaks(
    row: FaultRow,
    scenarios: list[Scenario],
    counter: OutputCounter,
    texts: dict[str, str],
) -> int:
    """ID numbers and names in clear on output topics and in the logs.

    Bytes (a dead letter's original input, a refused callback's body, every
    record's key) are scanned as they decode to text as well as in the
    base64 the dumps show, since Avro keeps strings in clear inside them.
    """
    secrets: set[str] = set().union(*(s.secrets for s in scenarios))
    personal = {s.name for s in CATALOGUE.values() if s.personal_data}
    scanned = dict(texts)
    for name, records in counter.records.items():
        if name in personal:
            continue
        scanned[f"topic {name}"] = "\n".join(
            json.dumps(r, default=json_default, ensure_ascii=False) for r in records
        )
        scanned[f"bytes on topic {name}"] = "\n".join(_bytes_text(records))
    for name, keys in counter.keys.items():
        if name not in personal:
            text = "\n".join(k.decode("utf-8", errors="replace") for k in keys)
            scanned[f"keys on topic {name}"] = text
    leaks = scan_for_secrets(scanned, secrets)
    row.problems += [
        f"{n} ID numbers or names in {where}" for where, n in leaks.items()
    ]
    return sum(leaks.values())


def _bytes_text(records: Iterable[dict[str, Any]]) -> Iterable[str]:
    for record in records:
        for value in record.values():
            if isinstance(value, bytes):
                yield value.decode("utf-8", errors="replace")


async def read_models(redis: Redis) -> ReadModels:
    """Snapshot the billing history, growth archive and aid figures."""
    from consumers.aid_figures import read_figures  # noqa: PLC0415

    models = ReadModels()
    receipts: dict[str, list[str]] = defaultdict(list)
    async for key in redis.scan_iter(match="billing:history:*", count=1000):
        name = _text(key)
        if not name.endswith((":entries", ":parked")):
            continue
        for entry_id, raw in (await redis.hgetall(name)).items():
            entry = json.loads(raw)
            kind = _text(entry_id).split(":", 1)[0]
            if kind in ("receipt", "red_letter_receipt"):
                receipts[str(entry["receipt_id"])].append(str(entry["receipt_number"]))
            elif kind == "exception":
                models.history_exceptions += 1
    models.history_receipts = dict(receipts)

    archived: Counter[str] = Counter()
    async for key in redis.scan_iter(match="growth:student:*:statements", count=1000):
        archived.update(_text(sid) for sid in await redis.hkeys(key))
    models.archived = dict(archived)
    async for key in redis.scan_iter(match="growth:student:*:certificates", count=1000):
        for cid, raw in (await redis.hgetall(key)).items():
            models.certificates[_text(cid)] = str(json.loads(raw)["status"])

    figures = await read_figures(redis)
    models.students_aided = figures.city.students_aided
    models.aid_amount_fen = figures.city.amount_fen
    return models


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
