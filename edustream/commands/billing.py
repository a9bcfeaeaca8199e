"""``edustream billing ...``: payment history and daily reconciliation.

Commands:

- ``history STUDENT_REF``: print a student's payment history from the read
  model in Redis (``consumers.billing_history``), oldest first;
- ``reconcile --channel C --date D FILE``: compare a channel's daily bill
  file with the callbacks we received for that business day and print the
  differences; ``--inject`` replays what the bill has and we lack as
  ``PaymentCallback`` records, ``--json`` prints the report as JSON.

Our side of reconciliation is the callbacks topic
(``topics.billing.CALLBACKS``), not the receipts: the question the bill file
answers is which callbacks never reached us, and the topic holds every
verified callback, including payments the billing flow refused (a second
payment, a wrong amount) and the refunds of those, which have no receipt.
It also holds earlier injections, so a second run after ``--inject`` is
clean at once, without waiting for the worker.

- A payment counts on the business day (Asia/Shanghai) of its payment time,
  a refund on that of its refund time, as the channels' files do; the
  notification time stands in when the channel sent none.
- Alipay reports refunds as a running total per order. The single refunds
  the bill lists are rebuilt as the steps between successive totals, which
  needs the order's earlier refunds: the topic is read from
  ``--lookback-days`` (default 7 for Alipay, 0 for the others) before the
  day. An Alipay refund whose previous partial refund is older than that
  shows as an amount mismatch; a wider lookback fixes it.
- Injected callbacks carry the channel that holds the money, source
  ``RECONCILIATION``, the bill line's time as payment and notification time,
  and a notify id derived from the line, so injecting twice is one
  notification to the billing flow. An injected refund carries this refund's
  amount (not cumulative) and our refund number.

Reconciliation needs the cluster that holds the callbacks, so it refuses to
run without ``KAFKA_BOOTSTRAP_SERVERS``: a fresh embedded broker would hold
nothing and report every line missing. The exit status is 0 when the two
sides agree and 1 when the report lists a difference (injected or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from avro_schemas import default_codec
from consumers.billing_history import read_history
from edustream import logs
from edustream.billing.orders import PaymentEvent, PaymentSource, PaymentStatus
from edustream.billing.receipts import SHANGHAI, business_day
from edustream.billing.reconcile import OurPayment, ReconciliationReport, reconcile
from edustream.channels.billfiles import BILL_CHANNELS, BillLine, parse_bill_file
from edustream.channels.money import fen_to_yuan
from edustream.channels.normalised import Channel
from edustream.errors import CodecError, ConfigError, RetriableError
from edustream.http.payments import CALLBACK_SCHEMA, callback_record
from edustream.settings import Settings, get_settings
from infra.redis import async_client
from topics import billing

app = typer.Typer(no_args_is_help=True, help="School fee payment commands.")

# Callbacks are published after the payment they report, so a day's
# callbacks start at the day's start; the margin covers clock skew between
# the channel and us.
_CLOCK_MARGIN = timedelta(hours=1)
_ALIPAY_LOOKBACK_DAYS = 7
_READ_BATCH = 5000

# What a bill line and a discrepancy built from it have in common.
_LineIdentity = tuple[str, str, str | None, str, int]


@app.command()
def history(
    student_ref: Annotated[str, typer.Argument(help="The student's pseudonym.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a student's payments, receipts and refunds, oldest first."""
    settings = _settings()
    entries = asyncio.run(_read_history(settings.redis_url, student_ref))

    if as_json:
        typer.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    if not entries:
        typer.echo("no payment history")
        return
    for entry in entries:
        typer.echo(history_line(entry))


@app.command(name="reconcile")
def reconcile_command(
    bill_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The bill file.")
    ],
    *,
    channel: Annotated[str, typer.Option(help="alipay, wechat or unionpay.")],
    day: Annotated[
        datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="Business day.")
    ],
    inject: Annotated[
        bool, typer.Option(help="Replay what we lack as callbacks.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    lookback_days: Annotated[
        int | None, typer.Option(help="Days of callbacks before the day to read.")
    ] = None,
) -> None:
    """Compare a channel's daily bill file with the callbacks we received."""
    settings = _settings()
    if channel not in BILL_CHANNELS:
        raise typer.BadParameter("channel is alipay, wechat or unionpay")
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        raise ConfigError(
            "reconcile reads the callbacks topic: set KAFKA_BOOTSTRAP_SERVERS"
        )

    lines = parse_bill_file(channel, bill_file.read_bytes(), bill_day=day.date())
    run = asyncio.run(
        reconcile_day(
            bootstrap,
            channel,
            day.date(),
            lines,
            inject=inject,
            lookback_days=lookback_days,
        )
    )

    typer.echo(run.render(as_json=as_json))
    raise typer.Exit(0 if run.report.is_clean else 1)


@dataclass(frozen=True)
class ReconciliationRun:
    """A report and what was injected because of it."""

    report: ReconciliationReport
    injected: list[PaymentEvent]

    def render(self, *, as_json: bool) -> str:
        """The report as a table, or as JSON with the injected count."""
        if as_json:
            body = {**self.report.to_dict(), "injected": len(self.injected)}
            return json.dumps(body, indent=2, ensure_ascii=False)

        text = self.report.render_table().rstrip("\n")
        if self.injected:
            text += f"\ninjected {len(self.injected)} callbacks"
        return text


async def reconcile_day(
    bootstrap: str,
    channel: str,
    day: date,
    lines: list[BillLine],
    *,
    inject: bool = False,
    lookback_days: int | None = None,
) -> ReconciliationRun:
    """Reconcile one channel's day and, if asked, inject what we lack."""
    since = window_start(channel, day, lookback_days)
    callbacks = await read_callbacks(bootstrap, since)
    report = reconcile(lines, our_payments(callbacks, channel, day))

    injected = injections(report, lines, callbacks) if inject else []
    if injected:
        await publish_callbacks(bootstrap, injected)
    return ReconciliationRun(report, injected)


def window_start(channel: str, day: date, lookback_days: int | None) -> datetime:
    """Where reading the callbacks topic starts for ``day``."""
    if lookback_days is None:
        lookback_days = _ALIPAY_LOOKBACK_DAYS if channel == Channel.ALIPAY else 0
    day_start = datetime.combine(day, time(0), tzinfo=SHANGHAI)
    return day_start - timedelta(days=lookback_days) - _CLOCK_MARGIN


def our_payments(
    callbacks: Iterable[dict[str, Any]], channel: str, day: date
) -> list[OurPayment]:
    """Our payments and refunds through ``channel`` on business day ``day``."""
    mine = [record for record in callbacks if record["channel"] == channel]
    dated = [*_payments(mine), *_refunds(mine)]
    return [payment for payment, moment in dated if business_day(moment) == day]


def injections(
    report: ReconciliationReport,
    lines: list[BillLine],
    callbacks: Iterable[dict[str, Any]],
) -> list[PaymentEvent]:
    """The callbacks to replay for what the bill has and we lack."""
    by_identity = {_line_identity(line): line for line in reversed(lines)}
    totals = _order_totals(lines, callbacks)

    events: list[PaymentEvent] = []
    for missing in report.missing_here:
        identity: _LineIdentity = (
            missing.order_id,
            missing.kind,
            missing.refund_id,
            missing.channel_txn_id,
            missing.channel_amount_fen or 0,
        )
        line = by_identity[identity]
        total = totals.get(line.order_id, line.amount_fen)
        events.append(reconciliation_event(line, total))
    return events


def reconciliation_event(line: BillLine, order_total_fen: int) -> PaymentEvent:
    """A callback rebuilt from a bill line; see the module docstring."""
    common: dict[str, Any] = {
        "channel": line.channel,
        "channel_txn_id": line.channel_txn_id,
        "order_id": line.order_id,
        "notified_at": line.occurred_at,
        "source": PaymentSource.RECONCILIATION,
    }
    if line.kind == "payment":
        return PaymentEvent(
            **common,
            notify_id=f"reconciliation:payment:{line.channel_txn_id}",
            status=PaymentStatus.PAID,
            amount_fen=line.amount_fen,
            paid_fen=line.amount_fen,
            paid_at=line.occurred_at,
        )

    return PaymentEvent(
        **common,
        notify_id=f"reconciliation:refund:{line.channel_txn_id}:{line.refund_id}",
        status=PaymentStatus.REFUNDED,
        amount_fen=order_total_fen,
        refund_fen=line.amount_fen,
        refund_id=line.refund_id,
        refund_is_cumulative=False,
        refunded_at=line.occurred_at,
    )


async def read_callbacks(bootstrap: str, since: datetime) -> list[dict[str, Any]]:
    """Every callback on the topic from about ``since`` to its current end.

    Reading starts at the first offset stamped at or after ``since`` in each
    partition (a broker that cannot search by time gives the beginning).
    Records that do not decode were never ours to reconcile and are skipped.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        parts = await _seek_from(consumer, since)
        return await _read_to_end(consumer, parts)
    except KafkaError as exc:
        raise RetriableError(f"reading callbacks failed: {type(exc).__name__}") from exc
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()


async def publish_callbacks(bootstrap: str, events: list[PaymentEvent]) -> None:
    """Send rebuilt callbacks to the callbacks topic, keyed by order id."""
    codec = default_codec()
    now = datetime.now(SHANGHAI)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        await producer.start()
        sends = [
            producer.send_and_wait(
                billing.CALLBACKS.name,
                value=codec.encode(CALLBACK_SCHEMA, callback_record(event, now)),
                key=event.order_id.encode(),
            )
            for event in events
        ]
        await asyncio.gather(*sends)
    except KafkaError as exc:
        raise RetriableError(
            f"injecting callbacks failed: {type(exc).__name__}"
        ) from exc
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()


def history_line(entry: dict[str, Any]) -> str:
    """One history entry as a line of text; refunds show as negative yuan."""
    kind = entry["kind"]
    refund = kind in ("refund", "red_letter_receipt")
    fen = entry.get("refund_fen") if refund else entry.get("amount_fen")
    amount = "-" if fen is None else ("-" if refund else "") + fen_to_yuan(fen)
    what = _history_detail(entry)
    return f"{entry['at']}  {kind:<18}  {amount:>12}  {entry['order_id']}  {what}"


def _history_detail(entry: dict[str, Any]) -> str:
    kind = entry["kind"]
    if kind in ("receipt", "red_letter_receipt"):
        return f"receipt {entry['receipt_code']}-{entry['receipt_number']}"
    if kind == "exception":
        return f"{entry['exception_kind']} via {entry['channel']}"
    return f"via {entry['channel']}"


async def _read_history(redis_url: str, student_ref: str) -> list[dict[str, Any]]:
    client = async_client(redis_url)
    try:
        return await read_history(client, student_ref)
    finally:
        await client.aclose()


def _payments(records: list[dict[str, Any]]) -> list[tuple[OurPayment, datetime]]:
    """Paid callbacks as our payments, each with its payment time."""
    found: list[tuple[OurPayment, datetime]] = []
    for record in records:
        if record["status"] != PaymentStatus.PAID or record["amount_fen"] <= 0:
            continue
        payment = OurPayment(
            record["order_id"],
            record["channel_txn_id"],
            "payment",
            record["amount_fen"],
        )
        found.append((payment, record.get("paid_at") or record["notified_at"]))
    return found


def _refunds(records: list[dict[str, Any]]) -> list[tuple[OurPayment, datetime]]:
    """Refund callbacks as single refunds, each with its refund time."""
    refunds = [
        r
        for r in records
        if r["status"] == PaymentStatus.REFUNDED and (r.get("refund_fen") or 0) > 0
    ]
    single = [r for r in refunds if not r["refund_is_cumulative"]]
    running = [r for r in refunds if r["refund_is_cumulative"]]

    found = [(_refund(r, r["refund_fen"]), _refund_time(r)) for r in single]
    return found + _steps_of_running_totals(running)


def _steps_of_running_totals(
    records: list[dict[str, Any]],
) -> list[tuple[OurPayment, datetime]]:
    """Single refunds rebuilt from running totals, per order and payment."""
    by_payment: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_payment[(record["order_id"], record["channel_txn_id"])].append(record)

    found: list[tuple[OurPayment, datetime]] = []
    for reports in by_payment.values():
        refunded = 0
        for record in sorted(reports, key=lambda r: (r["refund_fen"], _refund_time(r))):
            step = record["refund_fen"] - refunded
            if step <= 0:
                continue
            found.append((_refund(record, step), _refund_time(record)))
            refunded = record["refund_fen"]
    return found


def _refund(record: dict[str, Any], fen: int) -> OurPayment:
    return OurPayment(
        record["order_id"],
        record["channel_txn_id"],
        "refund",
        fen,
        record.get("refund_id") or record["notify_id"],
    )


def _refund_time(record: dict[str, Any]) -> datetime:
    moment: datetime = record.get("refunded_at") or record["notified_at"]
    return moment


def _order_totals(
    lines: list[BillLine], callbacks: Iterable[dict[str, Any]]
) -> dict[str, int]:
    """Order totals as known: from paid callbacks, else from payment lines."""
    totals = {
        line.order_id: line.amount_fen for line in lines if line.kind == "payment"
    }
    for record in callbacks:
        if record["status"] == PaymentStatus.PAID and record["amount_fen"] > 0:
            totals[record["order_id"]] = record["amount_fen"]
    return totals


def _line_identity(line: BillLine) -> _LineIdentity:
    return (
        line.order_id,
        line.kind,
        line.refund_id,
        line.channel_txn_id,
        line.amount_fen,
    )


async def _seek_from(
    consumer: AIOKafkaConsumer, since: datetime
) -> list[TopicPartition]:
    """Assign every callbacks partition, positioned at ``since``."""
    name = billing.CALLBACKS.name
    parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
    consumer.assign(parts)

    stamp = int(since.timestamp() * 1000)
    found = await consumer.offsets_for_times(dict.fromkeys(parts, stamp))
    for tp in parts:
        hit = found.get(tp)
        if hit is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, hit.offset)
    return parts


async def _read_to_end(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition]
) -> list[dict[str, Any]]:
    """Decode every record up to the end offsets taken now."""
    codec = default_codec()
    ends = await consumer.end_offsets(parts)
    records: list[dict[str, Any]] = []

    pending = {tp for tp in parts if await consumer.position(tp) < ends[tp]}
    while pending:
        batches = await consumer.getmany(
            *pending, timeout_ms=500, max_records=_READ_BATCH
        )
        for tp, messages in batches.items():
            for message in messages:
                if message.offset < ends[tp]:
                    records.extend(_decoded(codec, message.value))
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    return records


def _decoded(codec: Any, value: bytes | None) -> list[dict[str, Any]]:
    try:
        return [codec.decode_as(CALLBACK_SCHEMA, value)]
    except CodecError:
        return []


def _settings() -> Settings:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings
