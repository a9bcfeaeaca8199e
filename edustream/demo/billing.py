"""The school fee demo: bills, real channel callbacks, receipts and remittance.

Duties:

- make fresh channel test keys and save them where the ingress loads its
  verifier (``settings.channel_keys_dir``);
- publish one bill per student of a synthetic city, with tuition,
  accommodation and agency-service items as the school charges them;
- play each order's payment story as real Alipay, WeChat Pay and UnionPay
  notifications, signed with the test keys: clean payments, resends, two
  notifications of one payment 0.2 s apart, a second payment from another
  channel, a wrong amount, partial and full refunds, a refund before its
  payment, ``TRADE_FINISHED`` after a refund and a late "paid" after one;
- post forged and stale callbacks, and publish malformed records straight
  to the callback topic;
- close every collecting unit's business day;
- count, from each story's own rules, what must come out.

Phases. Callbacks inside one phase are posted concurrently, so their order
is not known; a story whose outputs depend on order spreads its steps over
phases (payments, then first refunds, then the rest). The ingress answers
only once a callback is on the topic, so a later phase's callbacks always
come after an earlier one's. Every callback of one order inside one phase
carries the same notification second, so whichever of them wins a race,
receipts land on the same business day.

The WeChat Pay ingress refuses timestamps more than five minutes from its
clock, so notification times are taken from the clock when the scenario is
built; the demo must reach its last callback phase within that window.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from edustream.billing.bills import Bill, BillItem, FeeKind
from edustream.billing.orders import PaymentEvent, PaymentStatus
from edustream.billing.receipts import business_day
from edustream.billing.remittance import DayClosed
from edustream.channels import alipay, unionpay, wechat
from edustream.channels.keys import ChannelKeys, generate_test_keys
from edustream.demo.city import Student, build_city
from edustream.demo.scenario import HttpCallback, Kind, Phase, Publication, Scenario
from edustream.pseudonym import name_digest, pseudonymise
from edustream.settings import Settings
from topics import billing

FLOW = "billing"
STUDENTS_AT_SCALE_1 = 900
SCHOOLS = 12

# Phases of the scenario, in order.
BILLS, PAYMENTS, FIRST_REFUNDS, LAST_CALLBACKS, DAY_CLOSES = range(5)
_PHASE_NAMES = ("bills", "payments", "first refunds", "last callbacks", "day closes")
# Seconds after the scenario clock at which each callback phase is stamped.
_PHASE_OFFSET_S = {PAYMENTS: 0, FIRST_REFUNDS: 20, LAST_CALLBACKS: 40}
# The ingress window is five minutes; an hour is stale beyond doubt.
_STALE_BY = timedelta(hours=1)

_FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
_OK = {"alipay": 200, "wechat": 204, "unionpay": 200}
_REFUSED = 400
_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:demo:billing")

# Story name -> weight. Each story is a method of ``_Stories``.
STORIES: dict[str, int] = {
    "paid": 40,
    "paid_twice_quickly": 5,
    "second_payment": 7,
    "amount_mismatch": 6,
    "alipay_refunds": 7,
    "alipay_finished_after_refund": 5,
    "wechat_refunds": 7,
    "refund_before_payment": 7,
    "late_paid_after_refund": 6,
    "unionpay_refund": 6,
    "forged": 4,
}


@dataclass
class _Truth:
    """What the stories decided to send, and so what must come out."""

    receipts: int = 0
    red_letters: int = 0
    exceptions: int = 0
    rejected: set[str] = field(default_factory=set)
    dead_letters: int = 0
    # (collecting unit, business day) -> net fen to remit.
    days: dict[tuple[str, date], int] = field(default_factory=dict)

    def receipt(self, bill: Bill, at: datetime) -> None:
        self.receipts += 1
        self._book(bill, at, bill.total_fen)

    def red_letter(self, bill: Bill, at: datetime, fen: int) -> None:
        self.red_letters += 1
        self._book(bill, at, -fen)

    def _book(self, bill: Bill, at: datetime, fen: int) -> None:
        key = (bill.collecting_unit_code, business_day(at))
        self.days[key] = self.days.get(key, 0) + fen


@dataclass
class _Play:
    """Callbacks and records of the scenario, per phase."""

    callbacks: dict[int, list[HttpCallback]] = field(default_factory=dict)
    publications: dict[int, list[Publication]] = field(default_factory=dict)

    def post(self, phase: int, callback: HttpCallback, times: int = 1) -> None:
        self.callbacks.setdefault(phase, []).extend([callback] * times)

    def publish(self, phase: int, publication: Publication) -> None:
        self.publications.setdefault(phase, []).append(publication)


def scenario(settings: Settings, seed: int, scale: float, today: date) -> Scenario:
    """The billing scenario for one synthetic city."""
    keys = generate_test_keys()
    keys.save(settings.channel_keys_dir)

    students = max(20, round(STUDENTS_AT_SCALE_1 * scale))
    city = build_city(seed, SCHOOLS, students, today)
    rng = random.Random(f"billing:{seed}")
    clock = datetime.now(UTC).replace(microsecond=0)
    stories = _Stories(keys, rng, clock)

    bills = [
        _bill(settings, student, index, seed=seed, today=today, clock=clock)
        for index, student in enumerate(city.students)
    ]
    for bill in bills:
        stories.play.publish(BILLS, _bill_publication(bill))
    told = Counter(stories.tell(bill) for bill in bills)
    _malformed(stories.play, stories.truth, bills, rng)

    _close_days(stories.play, stories.truth, clock)
    return _scenario(stories, bills, city.students, told)


def _scenario(
    stories: _Stories, bills: list[Bill], students: list[Student], told: Counter[str]
) -> Scenario:
    """Phases, kinds, expected counts and secrets of the built stories."""
    truth, play = stories.truth, stories.play
    orders = frozenset(bill.order_id for bill in bills)
    units = frozenset(bill.collecting_unit_code for bill in bills)
    phases = [
        Phase(
            name=f"billing {name}",
            publications=play.publications.get(index, []),
            callbacks=play.callbacks.get(index, []),
        )
        for index, name in enumerate(_PHASE_NAMES)
    ]
    # Days close only after every receipt of them was issued.
    phases[LAST_CALLBACKS].wait_for = (
        "billing.receipts",
        "billing.red_receipts",
        "billing.exceptions",
    )
    phases[DAY_CLOSES].wait_for = ("billing.remittances",)

    return Scenario(
        flow=FLOW,
        phases=phases,
        kinds=_kinds(orders, units),
        expected={
            "billing.receipts": truth.receipts,
            "billing.red_receipts": truth.red_letters,
            "billing.remittances": len(truth.days),
            "billing.exceptions": truth.exceptions,
            "billing.rejected_callbacks": len(truth.rejected),
            "billing.dead_letters": truth.dead_letters,
        },
        secrets={s.id_number for s in students} | {s.name for s in students},
        facts={
            "bills": len(bills),
            "callbacks": sum(len(c) for c in play.callbacks.values()),
            "stories": dict(sorted(told.items())),
            "net_fen_by_unit_day": {
                f"{unit}/{day.isoformat()}": net
                for (unit, day), net in sorted(truth.days.items())
            },
        },
    )


def _kinds(orders: frozenset[str], units: frozenset[str]) -> list[Kind]:
    """How the runner recognises each output kind of this scenario."""

    def ours(record: dict[str, Any]) -> bool:
        return record.get("order_id") in orders

    return [
        Kind("billing.receipts", billing.RECEIPTS, _receipt_id, ours),
        Kind("billing.red_receipts", billing.RED_RECEIPTS, _receipt_id, ours),
        Kind("billing.exceptions", billing.EXCEPTIONS, _event_id, ours),
        Kind(
            "billing.remittances",
            billing.REMITTANCES,
            lambda r: str(r["batch_id"]),
            lambda r: r["collecting_unit_code"] in units,
        ),
        Kind("billing.rejected_callbacks", billing.REJECTED_CALLBACKS, _event_id),
    ]


def _receipt_id(record: dict[str, Any]) -> str:
    return str(record["receipt_id"])


def _event_id(record: dict[str, Any]) -> str:
    return str(record["event_id"])


# Bills.


def _bill(
    settings: Settings,
    student: Student,
    index: int,
    *,
    seed: int,
    today: date,
    clock: datetime,
) -> Bill:
    """One term's bill for a student; primary and junior pay no tuition."""
    items = [
        BillItem(
            "D01", "代办费(教材)", FeeKind.AGENCY_SERVICE, 18_000 + index % 7 * 2_500
        )
    ]
    if student.stage in ("SENIOR", "VOCATIONAL"):
        items.insert(0, BillItem("T01", "学费", FeeKind.TUITION, 120_000))
    if student.boarding:
        items.insert(-1, BillItem("A01", "住宿费", FeeKind.ACCOMMODATION, 60_000))

    school = student.school
    key = settings.pseudonym_key.encode()
    student_ref = pseudonymise(key, student.id_number)
    return Bill(
        bill_id=f"B{seed % 10_000:04d}{index:07d}",
        school_id=school.school_id,
        collecting_unit_code=school.collecting_unit_code,
        student_ref=student_ref,
        student_name_digest=name_digest(key, student_ref, student.name),
        term=f"{today.year}-{today.year + 1}-1",
        items=tuple(items),
        total_fen=sum(item.amount_fen for item in items),
        receipt_series=school.receipt_series,
        published_at=clock - timedelta(days=7),
    )


def _short(bill: Bill) -> Bill:
    """The bill as a payer who paid one yuan too little saw it."""
    first, *rest = bill.items
    short = replace(first, amount_fen=first.amount_fen - 100)
    return replace(bill, items=(short, *rest), total_fen=bill.total_fen - 100)


def _bill_publication(bill: Bill) -> Publication:
    event_id = str(uuid.uuid5(_IDS, f"bill:{bill.bill_id}"))
    record = bill.as_record(event_id=event_id, occurred_at=bill.published_at)
    return Publication.record(billing.BILLS, bill.order_id, record)


# Stories: each posts its callbacks and counts what they must produce.


class _Stories:
    """Plays one payment story per order through the three channels."""

    def __init__(self, keys: ChannelKeys, rng: random.Random, clock: datetime) -> None:
        self.keys = keys
        self.rng = rng
        self.clock = clock
        self.play = _Play()
        self.truth = _Truth()
        self._signers = _Signers(keys, rng)

    def tell(self, bill: Bill) -> str:
        """Pick and play a story for one order; return its name."""
        name = self.rng.choices(list(STORIES), weights=list(STORIES.values()))[0]
        story: Callable[[Bill], None] = getattr(self, name)
        story(bill)
        return name

    def at(self, phase: int, bill: Bill) -> datetime:
        """The notification second of an order's callbacks in one phase."""
        jitter = int(hashlib.sha256(bill.bill_id.encode()).hexdigest()[:4], 16) % 10
        return self.clock + timedelta(seconds=_PHASE_OFFSET_S[phase] + jitter)

    def paid(self, bill: Bill) -> None:
        """One payment; some resent, some Alipay ones finished a phase later."""
        channel = self.rng.choice(("alipay", "wechat", "unionpay"))
        payment = self._signers.payment(channel, bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback, times=self.rng.choice((1, 1, 1, 2)))
        self.truth.receipt(bill, payment.at)

        if channel == "alipay" and self.rng.random() < 0.3:
            finished = self._signers.alipay_trade(
                bill, payment, "TRADE_FINISHED", self.at(FIRST_REFUNDS, bill)
            )
            self.play.post(FIRST_REFUNDS, finished)

    def paid_twice_quickly(self, bill: Bill) -> None:
        """Two notifications of one WeChat payment in the same second."""
        at = self.at(PAYMENTS, bill)
        payment = self._signers.payment("wechat", bill, at)
        again = self._signers.wechat_paid(
            bill, payment.txn_id, at + timedelta(seconds=0.2)
        )
        self.play.post(PAYMENTS, payment.callback)
        self.play.post(PAYMENTS, again)
        self.truth.receipt(bill, at)

    def second_payment(self, bill: Bill) -> None:
        """The parent pays in two channels at once: one receipt, one refund due."""
        first, second = self.rng.sample(("alipay", "wechat", "unionpay"), 2)
        at = self.at(PAYMENTS, bill)
        self.play.post(PAYMENTS, self._signers.payment(first, bill, at).callback)
        self.play.post(PAYMENTS, self._signers.payment(second, bill, at).callback)
        self.truth.receipt(bill, at)
        self.truth.exceptions += 1

    def amount_mismatch(self, bill: Bill) -> None:
        """A payment short of the total; half the parents then pay in full."""
        channel = self.rng.choice(("alipay", "wechat", "unionpay"))
        wrong = self._signers.payment(channel, _short(bill), self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, wrong.callback, times=2)
        self.truth.exceptions += 1

        if self.rng.random() < 0.5:
            at = self.at(FIRST_REFUNDS, bill)
            self.play.post(
                FIRST_REFUNDS, self._signers.payment(channel, bill, at).callback
            )
            self.truth.receipt(bill, at)

    def alipay_refunds(self, bill: Bill) -> None:
        """Alipay: a partial refund, then the rest (cumulative refund_fee)."""
        payment = self._signers.payment("alipay", bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback)
        self.truth.receipt(bill, payment.at)

        part = bill.total_fen * 3 // 10
        at = self.at(FIRST_REFUNDS, bill)
        partial = self._signers.alipay_refund(bill, payment, part, "TRADE_SUCCESS", at)
        self.play.post(FIRST_REFUNDS, partial)
        self.truth.red_letter(bill, at, part)

        at = self.at(LAST_CALLBACKS, bill)
        full = self._signers.alipay_refund(
            bill, payment, bill.total_fen, "TRADE_CLOSED", at
        )
        self.play.post(LAST_CALLBACKS, full)
        self.play.post(LAST_CALLBACKS, partial)
        self.truth.red_letter(bill, at, bill.total_fen - part)

    def alipay_finished_after_refund(self, bill: Bill) -> None:
        """Alipay: a partial refund, then TRADE_FINISHED, which changes nothing."""
        payment = self._signers.payment("alipay", bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback)
        self.truth.receipt(bill, payment.at)

        part = bill.total_fen * 4 // 10
        at = self.at(FIRST_REFUNDS, bill)
        refund = self._signers.alipay_refund(bill, payment, part, "TRADE_SUCCESS", at)
        self.play.post(FIRST_REFUNDS, refund)
        self.truth.red_letter(bill, at, part)

        at = self.at(LAST_CALLBACKS, bill)
        finished = self._signers.alipay_trade(
            bill, payment, "TRADE_FINISHED", at, refund_fen=part
        )
        self.play.post(LAST_CALLBACKS, finished)

    def wechat_refunds(self, bill: Bill) -> None:
        """WeChat Pay: two refunds of their own amounts; the first is resent."""
        payment = self._signers.payment("wechat", bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback)
        self.truth.receipt(bill, payment.at)

        part = bill.total_fen * 4 // 10
        at = self.at(FIRST_REFUNDS, bill)
        first = self._signers.wechat_refund(bill, payment.txn_id, part, at, number=1)
        self.play.post(FIRST_REFUNDS, first)
        self.truth.red_letter(bill, at, part)

        at = self.at(LAST_CALLBACKS, bill)
        rest = bill.total_fen - part
        second = self._signers.wechat_refund(bill, payment.txn_id, rest, at, number=2)
        self.play.post(LAST_CALLBACKS, second)
        self.play.post(LAST_CALLBACKS, first)
        self.truth.red_letter(bill, at, rest)

    def refund_before_payment(self, bill: Bill) -> None:
        """A refund notified before its payment: held, then released with it."""
        channel = self.rng.choice(("wechat", "unionpay"))
        refund_at = self.at(PAYMENTS, bill)
        paid_at = self.at(FIRST_REFUNDS, bill)
        txn_id = self._signers.txn_id(channel)
        part = bill.total_fen // 2

        refund = self._signers.refund(channel, bill, txn_id, part, refund_at)
        payment = self._signers.payment(channel, bill, paid_at, txn_id=txn_id)
        self.play.post(PAYMENTS, refund)
        self.play.post(FIRST_REFUNDS, payment.callback)
        self.truth.receipt(bill, paid_at)
        self.truth.red_letter(bill, paid_at, part)

    def late_paid_after_refund(self, bill: Bill) -> None:
        """WeChat Pay: a full refund, then the payment notified again."""
        payment = self._signers.payment("wechat", bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback)
        self.truth.receipt(bill, payment.at)

        at = self.at(FIRST_REFUNDS, bill)
        refund = self._signers.wechat_refund(bill, payment.txn_id, bill.total_fen, at)
        self.play.post(FIRST_REFUNDS, refund)
        self.truth.red_letter(bill, at, bill.total_fen)

        late = self._signers.wechat_paid(
            bill, payment.txn_id, self.at(LAST_CALLBACKS, bill)
        )
        self.play.post(LAST_CALLBACKS, late)

    def unionpay_refund(self, bill: Bill) -> None:
        """UnionPay: a payment and a partial refund."""
        payment = self._signers.payment("unionpay", bill, self.at(PAYMENTS, bill))
        self.play.post(PAYMENTS, payment.callback)
        self.truth.receipt(bill, payment.at)

        part = bill.total_fen // 5
        at = self.at(FIRST_REFUNDS, bill)
        refund = self._signers.refund("unionpay", bill, payment.txn_id, part, at)
        self.play.post(FIRST_REFUNDS, refund)
        self.truth.red_letter(bill, at, part)

    def forged(self, bill: Bill) -> None:
        """A forged or stale "paid" is refused; the real payment follows."""
        channel = self.rng.choice(("alipay", "wechat", "unionpay"))
        at = self.at(PAYMENTS, bill)
        if channel == "wechat" and self.rng.random() < 0.5:
            fake = self._signers.wechat_stale(bill, at - _STALE_BY)
        else:
            fake = self._signers.forged(channel, bill, at)
        self.play.post(PAYMENTS, fake, times=self.rng.choice((1, 2)))
        self.truth.rejected.add(f"{channel}:{hashlib.sha256(fake.body).hexdigest()}")

        payment = self._signers.payment(channel, bill, self.at(FIRST_REFUNDS, bill))
        self.play.post(FIRST_REFUNDS, payment.callback)
        self.truth.receipt(bill, payment.at)


@dataclass(frozen=True)
class _Payment:
    """A signed payment notification and what later callbacks refer to."""

    channel: str
    callback: HttpCallback
    txn_id: str
    at: datetime


class _Signers:
    """Builds each channel's real notifications, signed with the test keys."""

    def __init__(
        self, keys: ChannelKeys, rng: random.Random, *, forging: bool = False
    ) -> None:
        self.keys = keys
        self.rng = rng
        self._forger: _Signers | None = None
        if not forging:
            # The merchant's own Alipay app key stands in for any key a
            # channel never held; the certificates named stay the real ones.
            other = keys.alipay_app_key
            forged = replace(
                keys,
                alipay_channel_key=other,
                wechat_platform_key=other,
                unionpay_sign_key=other,
            )
            self._forger = _Signers(forged, rng, forging=True)

    def txn_id(self, channel: str) -> str:
        """A channel transaction id in the channel's own shape."""
        digits = "".join(self.rng.choices("0123456789", k=20))
        return {
            "alipay": f"2026{digits}0000",
            "wechat": f"42000{digits}123",
            "unionpay": f"7{digits}",
        }[channel]

    def payment(
        self, channel: str, bill: Bill, at: datetime, *, txn_id: str | None = None
    ) -> _Payment:
        """A successful payment of the bill's total."""
        txn = txn_id or self.txn_id(channel)
        if channel == "alipay":
            payment = _Payment(channel, self._alipay_paid(bill, txn, at), txn, at)
        elif channel == "wechat":
            payment = _Payment(channel, self.wechat_paid(bill, txn, at), txn, at)
        else:
            payment = _Payment(channel, self._unionpay_paid(bill, txn, at), txn, at)
        return payment

    def refund(
        self, channel: str, bill: Bill, txn_id: str, fen: int, at: datetime
    ) -> HttpCallback:
        """A refund of ``fen`` (WeChat Pay or UnionPay: this refund alone)."""
        if channel == "wechat":
            return self.wechat_refund(bill, txn_id, fen, at)
        return self._unionpay_refund(bill, txn_id, fen, at)

    def forged(self, channel: str, bill: Bill, at: datetime) -> HttpCallback:
        """A "paid" signed with a key the channel never held."""
        assert self._forger is not None, "a forger does not forge"
        callback = self._forger.payment(channel, bill, at).callback
        return replace(callback, expect_status=_REFUSED)

    def wechat_stale(self, bill: Bill, at: datetime) -> HttpCallback:
        """A correctly signed WeChat Pay "paid" stamped long ago."""
        return replace(
            self.wechat_paid(bill, self.txn_id("wechat"), at), expect_status=_REFUSED
        )

    def alipay_trade(
        self,
        bill: Bill,
        payment: _Payment,
        status: str,
        at: datetime,
        refund_fen: int | None = None,
    ) -> HttpCallback:
        """Another Alipay notification of an existing trade."""
        params = alipay.trade_params(
            self.keys,
            notify_id=self._hex(),
            trade_no=payment.txn_id,
            order_id=bill.order_id,
            trade_status=status,
            total_fen=bill.total_fen,
            notified_at=at,
            paid_at=payment.at,
            refund_fen=refund_fen,
        )
        return self._alipay(params)

    def alipay_refund(
        self, bill: Bill, payment: _Payment, total_fen: int, status: str, at: datetime
    ) -> HttpCallback:
        """An Alipay refund: ``refund_fee`` is the total refunded so far."""
        params = alipay.trade_params(
            self.keys,
            notify_id=self._hex(),
            trade_no=payment.txn_id,
            order_id=bill.order_id,
            trade_status=status,
            total_fen=bill.total_fen,
            notified_at=at,
            paid_at=payment.at,
            refund_fen=total_fen,
            refunded_at=at,
            refund_request_id=f"R{bill.order_id}{total_fen}",
        )
        return self._alipay(params)

    def wechat_paid(self, bill: Bill, txn_id: str, at: datetime) -> HttpCallback:
        """A WeChat Pay TRANSACTION.SUCCESS with a fresh notification id."""
        resource = wechat.transaction_resource(
            self.keys,
            order_id=bill.order_id,
            transaction_id=txn_id,
            total_fen=bill.total_fen,
            paid_at=at,
        )
        return self._wechat(resource, "TRANSACTION.SUCCESS", at)

    def wechat_refund(
        self, bill: Bill, txn_id: str, fen: int, at: datetime, number: int = 1
    ) -> HttpCallback:
        """A WeChat Pay REFUND.SUCCESS for one refund of ``fen``."""
        resource = wechat.refund_resource(
            self.keys,
            order_id=bill.order_id,
            transaction_id=txn_id,
            refund_request_id=f"R{bill.order_id}{number}",
            refund_id=f"50{self.txn_id('wechat')}",
            total_fen=bill.total_fen,
            refund_fen=fen,
            refund_status="SUCCESS",
            refunded_at=at,
        )
        return self._wechat(resource, "REFUND.SUCCESS", at)

    def _alipay_paid(self, bill: Bill, txn_id: str, at: datetime) -> HttpCallback:
        params = alipay.trade_params(
            self.keys,
            notify_id=self._hex(),
            trade_no=txn_id,
            order_id=bill.order_id,
            trade_status="TRADE_SUCCESS",
            total_fen=bill.total_fen,
            notified_at=at,
            paid_at=at,
        )
        return self._alipay(params)

    def _unionpay_paid(self, bill: Bill, txn_id: str, at: datetime) -> HttpCallback:
        params = unionpay.consume_params(
            self.keys,
            order_id=bill.order_id,
            query_id=txn_id,
            txn_fen=bill.total_fen,
            txn_time=at,
        )
        return self._unionpay(params)

    def _unionpay_refund(
        self, bill: Bill, txn_id: str, fen: int, at: datetime
    ) -> HttpCallback:
        params = unionpay.refund_params(
            self.keys,
            refund_request_id=f"R{bill.order_id}{fen}",
            query_id=self.txn_id("unionpay"),
            orig_query_id=txn_id,
            order_id=bill.order_id,
            order_fen=bill.total_fen,
            refund_fen=fen,
            txn_time=at,
        )
        return self._unionpay(params)

    def _alipay(self, params: dict[str, str]) -> HttpCallback:
        body = alipay.sign_notification(self.keys, params)
        return HttpCallback("/callbacks/alipay", dict(_FORM), body, _OK["alipay"])

    def _unionpay(self, params: dict[str, str]) -> HttpCallback:
        body = unionpay.sign_notification(self.keys, params)
        return HttpCallback("/callbacks/unionpay", dict(_FORM), body, _OK["unionpay"])

    def _wechat(
        self, resource: dict[str, Any], event_type: str, at: datetime
    ) -> HttpCallback:
        notification_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        keys = self.keys
        # How far the notification's time lies from the clock when built.
        skew = int(at.timestamp()) - int(time.time())

        def sign(timestamp: int, nonce: str) -> tuple[dict[str, str], bytes]:
            return wechat.sign_notification(
                keys,
                resource,
                event_type,
                timestamp=timestamp,
                nonce=nonce,
                notification_id=notification_id,
            )

        def resign() -> tuple[dict[str, str], bytes]:
            return sign(int(time.time()) + skew, secrets.token_hex(8).upper())

        headers, body = sign(int(at.timestamp()), self._hex()[:16].upper())
        return HttpCallback(
            "/callbacks/wechat", headers, body, _OK["wechat"], resign=resign
        )

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"


# Malformed records and day closes.


def _malformed(
    play: _Play, truth: _Truth, bills: list[Bill], rng: random.Random
) -> None:
    """Records on the callback topic that must each become a dead letter."""
    one, other = rng.sample(bills, 2)
    callback = _callback_record(one)
    good = Publication.record(billing.CALLBACKS, one.order_id, callback)
    no_amount = {**callback, "status": "REFUNDED", "refund_fen": None}
    bill_record = one.as_record(
        event_id=str(uuid.uuid4()), occurred_at=one.published_at
    )

    bad = [
        Publication(billing.CALLBACKS, one.order_id.encode(), b""),
        Publication(billing.CALLBACKS, one.order_id.encode(), rng.randbytes(40)),
        Publication(billing.CALLBACKS, one.order_id.encode(), good.value[:-7]),
        Publication.record(billing.CALLBACKS, other.order_id, callback),
        Publication.record(billing.CALLBACKS, one.order_id, no_amount),
        Publication(
            billing.CALLBACKS, one.order_id.encode(), _as_callback(bill_record)
        ),
    ]
    for publication in bad:
        play.publish(PAYMENTS, publication)
    truth.dead_letters += len(bad)


def _callback_record(bill: Bill) -> dict[str, Any]:
    """A well-formed callback for a transaction that never happened."""
    event = PaymentEvent(
        channel="alipay",
        notify_id="malformed-demo",
        channel_txn_id="malformed-demo",
        order_id=bill.order_id,
        status=PaymentStatus.PAID,
        amount_fen=bill.total_fen,
        notified_at=bill.published_at,
    )
    event_id = str(uuid.uuid5(_IDS, f"malformed:{bill.bill_id}"))
    return event.as_record(event_id=event_id, occurred_at=bill.published_at)


def _as_callback(bill_record: dict[str, Any]) -> bytes:
    """A bill encoded under its own schema, to be sent where callbacks go."""
    return Publication.record(billing.BILLS, None, bill_record).value


def _close_days(play: _Play, truth: _Truth, clock: datetime) -> None:
    """Close every unit's days one by one, then the last day for every unit."""
    for unit, day in sorted(truth.days):
        command = _day_closed(day, unit, clock)
        play.publish(DAY_CLOSES, Publication.record(billing.DAY_CLOSES, unit, command))

    last = max(day for _, day in truth.days)
    everyone = _day_closed(last, None, clock)
    play.publish(DAY_CLOSES, Publication.record(billing.DAY_CLOSES, None, everyone))


def _day_closed(day: date, unit: str | None, clock: datetime) -> dict[str, Any]:
    event_id = str(uuid.uuid5(_IDS, f"day-closed:{unit}:{day.isoformat()}"))
    command = DayClosed(
        event_id=event_id,
        occurred_at=clock,
        business_day=day,
        collecting_unit_code=unit,
    )
    return command.as_record()
