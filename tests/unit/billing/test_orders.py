"""The order state machine: every payment trap as a row, then properties."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edustream.billing.bills import Bill, BillItem, BillStatus, FeeKind
from edustream.billing.orders import (
    Decision,
    ExceptionKind,
    HoldRefund,
    Ignore,
    IgnoreReason,
    IssueReceipt,
    IssueRedLetterReceipt,
    OrderState,
    OrderStatus,
    PaymentEvent,
    PaymentSource,
    PaymentStatus,
    RaiseException,
    decide,
    dump_state,
    load_state,
    refund_key,
)
from edustream.errors import CodecError, PoisonError

T0 = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)
TOTAL = 120_000
ORDER = "B2025090100001"

BILL = Bill(
    bill_id=ORDER,
    school_id="S310104001",
    collecting_unit_code="CU3101040001",
    student_ref="p-7f3a9c",
    term="2025-2026-1",
    items=(
        BillItem("T01", "学费", FeeKind.TUITION, 100_000),
        BillItem("A01", "住宿费", FeeKind.ACCOMMODATION, 20_000),
    ),
    total_fen=TOTAL,
    receipt_series="31052025",
    published_at=T0,
)


def paid(
    notify: str = "n-paid",
    *,
    channel: str = "alipay",
    txn: str = "T1",
    amount: int = TOTAL,
    paid_fen: int | None = None,
    seconds: float = 0.0,
    source: PaymentSource = PaymentSource.INGRESS,
) -> PaymentEvent:
    """A PAID event for the test order."""
    moment = T0 + timedelta(seconds=seconds)
    return PaymentEvent(
        channel=channel,
        notify_id=notify,
        channel_txn_id=txn,
        order_id=ORDER,
        status=PaymentStatus.PAID,
        amount_fen=amount,
        paid_fen=paid_fen,
        paid_at=T0,
        notified_at=moment,
        source=source,
    )


def refund(
    notify: str,
    refund_fen: int,
    *,
    refund_id: str | None = None,
    cumulative: bool = False,
    channel: str = "wechat",
    txn: str = "T1",
    seconds: float = 60.0,
    status: PaymentStatus = PaymentStatus.REFUNDED,
) -> PaymentEvent:
    """A refund event (REFUNDED unless told) for the test order."""
    moment = T0 + timedelta(seconds=seconds)
    return PaymentEvent(
        channel=channel,
        notify_id=notify,
        channel_txn_id=txn,
        order_id=ORDER,
        status=status,
        amount_fen=TOTAL,
        refund_fen=refund_fen,
        refund_is_cumulative=cumulative,
        refund_id=refund_id,
        refunded_at=moment,
        notified_at=moment,
    )


def alipay_refund(notify: str, cumulative_fen: int, seconds: float) -> PaymentEvent:
    """An Alipay refund notification: refund_fee is the cumulative total."""
    return refund(
        notify,
        cumulative_fen,
        refund_id=f"rb-{notify}",
        cumulative=True,
        channel="alipay",
        seconds=seconds,
    )


def other(status: PaymentStatus, notify: str, txn: str = "T1") -> PaymentEvent:
    """A PENDING or CLOSED event for the test order."""
    return PaymentEvent(
        channel="alipay",
        notify_id=notify,
        channel_txn_id=txn,
        order_id=ORDER,
        status=status,
        amount_fen=TOTAL,
        notified_at=T0 + timedelta(hours=1),
    )


def run(
    events: list[PaymentEvent], bill: Bill | None = BILL
) -> tuple[OrderState, list[list[Decision]]]:
    """Feed events in order; return the final state and each step's decisions."""
    state: OrderState | None = None
    steps: list[list[Decision]] = []
    for event in events:
        state, decisions = decide(state, bill, event)
        steps.append(decisions)
    assert state is not None
    return state, steps


def summary(decision: Decision) -> tuple[str, object]:
    """A decision reduced to what the table compares."""
    match decision:
        case IssueReceipt():
            return ("receipt", decision.amount_fen)
        case IssueRedLetterReceipt():
            return ("red", decision.refund_fen)
        case RaiseException():
            return ("exception", decision.kind)
        case HoldRefund():
            return ("hold", decision.refund_fen)
        case Ignore():
            return ("ignore", decision.reason)
    raise AssertionError(decision)


ALREADY_PAID = [("ignore", IgnoreReason.ALREADY_PAID)]
DUPLICATE = [("ignore", IgnoreReason.DUPLICATE_NOTIFICATION)]
RECEIPT = [("receipt", TOTAL)]

TABLE = [
    pytest.param(
        [paid("n1", seconds=0.0), paid("n2", seconds=0.2)],
        BILL,
        [RECEIPT, ALREADY_PAID],
        OrderStatus.PAID,
        id="two-callbacks-0.2s-apart",
    ),
    pytest.param(
        [paid("n1"), paid("n1", seconds=3600), paid("n1", seconds=25 * 3600)],
        BILL,
        [RECEIPT, DUPLICATE, DUPLICATE],
        OrderStatus.PAID,
        id="same-notification-resent-for-25h",
    ),
    pytest.param(
        [paid("n1"), paid("recon-1", source=PaymentSource.RECONCILIATION)],
        BILL,
        [RECEIPT, ALREADY_PAID],
        OrderStatus.PAID,
        id="reconciliation-confirms-a-seen-payment",
    ),
    pytest.param(
        [paid("n1"), paid("w1", channel="wechat", txn="W1")],
        BILL,
        [RECEIPT, [("exception", ExceptionKind.DUPLICATE_PAYMENT)]],
        OrderStatus.PAID,
        id="second-paid-from-another-channel",
    ),
    pytest.param(
        [paid("n1"), paid("n2", txn="T2")],
        BILL,
        [RECEIPT, [("exception", ExceptionKind.DUPLICATE_PAYMENT)]],
        OrderStatus.PAID,
        id="second-paid-another-txn-same-channel",
    ),
    pytest.param(
        [
            paid("n1"),
            paid("w1", channel="wechat", txn="W1"),
            paid("w2", channel="wechat", txn="W1"),
            refund("wr1", TOTAL, refund_id="R-dup", txn="W1"),
        ],
        BILL,
        [
            RECEIPT,
            [("exception", ExceptionKind.DUPLICATE_PAYMENT)],
            [("ignore", IgnoreReason.ALREADY_REFUSED)],
            [("ignore", IgnoreReason.REFUSED_PAYMENT_REFUNDED)],
        ],
        OrderStatus.PAID,
        id="duplicate-payment-refunded-issues-no-red-letter",
    ),
    pytest.param(
        [
            paid("n1"),
            alipay_refund("a1", 30_000, seconds=60),
            paid("n-finished", seconds=7200),
            other(PaymentStatus.CLOSED, "n-closed"),
        ],
        BILL,
        [
            RECEIPT,
            [("red", 30_000)],
            [("ignore", IgnoreReason.LATE_PAID_AFTER_REFUND)],
            [("ignore", IgnoreReason.FINISHED_AFTER_REFUND)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="trade-finished-after-refund",
    ),
    pytest.param(
        [
            paid("n1"),
            alipay_refund("a1", TOTAL, seconds=60),
            paid("n1", seconds=600),
            paid("n-late", seconds=900),
        ],
        BILL,
        [
            RECEIPT,
            [("red", TOTAL)],
            DUPLICATE,
            [("ignore", IgnoreReason.LATE_PAID_AFTER_REFUND)],
        ],
        OrderStatus.REFUNDED,
        id="late-paid-after-full-refund",
    ),
    pytest.param(
        [
            paid("n1"),
            alipay_refund("a1", TOTAL, seconds=60),
            paid("w1", channel="wechat", txn="W1", seconds=120),
        ],
        BILL,
        [
            RECEIPT,
            [("red", TOTAL)],
            [("exception", ExceptionKind.DUPLICATE_PAYMENT)],
        ],
        OrderStatus.REFUNDED,
        id="new-payment-after-full-refund-never-reopens",
    ),
    pytest.param(
        [
            refund("r2", 3_000, refund_id="R2", seconds=90),
            refund("r1", 5_000, refund_id="R1", seconds=60),
            paid("p1", channel="wechat", seconds=120),
        ],
        BILL,
        [
            [("hold", 3_000)],
            [("hold", 5_000)],
            [("receipt", TOTAL), ("red", 5_000), ("red", 3_000)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="refund-before-payment-held-then-released-in-time-order",
    ),
    pytest.param(
        [
            paid("n1"),
            alipay_refund("a1", 30_000, seconds=60),
            alipay_refund("a2", 50_000, seconds=120),
            alipay_refund("a1-again", 30_000, seconds=60),
        ],
        BILL,
        [
            RECEIPT,
            [("red", 30_000)],
            [("red", 20_000)],
            [("ignore", IgnoreReason.REFUND_ALREADY_COUNTED)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="alipay-cumulative-30-then-20",
    ),
    pytest.param(
        [
            paid("n1"),
            alipay_refund("a2", 50_000, seconds=120),
            alipay_refund("a1", 30_000, seconds=60),
        ],
        BILL,
        [
            RECEIPT,
            [("red", 50_000)],
            [("ignore", IgnoreReason.REFUND_ALREADY_COUNTED)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="alipay-cumulative-out-of-order",
    ),
    pytest.param(
        [
            paid("n1", channel="wechat"),
            refund("w1", 30_000, refund_id="R1"),
            refund("w2", 20_000, refund_id="R2"),
            refund("w3", 30_000, refund_id="R1"),
        ],
        BILL,
        [
            RECEIPT,
            [("red", 30_000)],
            [("red", 20_000)],
            [("ignore", IgnoreReason.REFUND_ALREADY_COUNTED)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="wechat-two-refund-ids",
    ),
    pytest.param(
        [
            paid("n1", channel="wechat"),
            refund("w1", 100_000, refund_id="R1"),
            refund("w2", 30_000, refund_id="R2"),
            refund("w3", 30_000, refund_id="R2"),
        ],
        BILL,
        [
            RECEIPT,
            [("red", 100_000)],
            [("exception", ExceptionKind.REFUND_EXCEEDS_PAYMENT)],
            [("ignore", IgnoreReason.EXCEPTION_ALREADY_RAISED)],
        ],
        OrderStatus.PARTIALLY_REFUNDED,
        id="refund-exceeding-payment",
    ),
    pytest.param(
        [
            paid("n1", channel="wechat"),
            refund("w1", 70_000, refund_id="R1"),
            refund("w2", 50_000, refund_id="R2"),
        ],
        BILL,
        [RECEIPT, [("red", 70_000)], [("red", 50_000)]],
        OrderStatus.REFUNDED,
        id="refunds-reaching-the-total-refund-the-order",
    ),
    pytest.param(
        [
            paid("n1", amount=100_000),
            paid("n2", amount=100_000),
            paid("w1", channel="wechat", txn="W1"),
        ],
        BILL,
        [
            [("exception", ExceptionKind.AMOUNT_MISMATCH)],
            [("ignore", IgnoreReason.ALREADY_REFUSED)],
            RECEIPT,
        ],
        OrderStatus.PAID,
        id="amount-mismatch-then-a-correct-payment",
    ),
    pytest.param(
        [paid("n1", paid_fen=110_000)],
        BILL,
        [[("exception", ExceptionKind.AMOUNT_MISMATCH)]],
        OrderStatus.AWAITING_PAYMENT,
        id="payer-paid-less-than-the-total",
    ),
    pytest.param(
        [
            paid("n1"),
            paid("n2"),
            refund("r1", 1_000, refund_id="R1", channel="alipay"),
        ],
        None,
        [
            [("exception", ExceptionKind.UNKNOWN_ORDER)],
            [("ignore", IgnoreReason.ALREADY_REFUSED)],
            [("ignore", IgnoreReason.REFUSED_PAYMENT_REFUNDED)],
        ],
        OrderStatus.AWAITING_PAYMENT,
        id="unknown-order",
    ),
    pytest.param(
        [refund("r1", 1_000, refund_id="R1")],
        None,
        [[("exception", ExceptionKind.UNKNOWN_ORDER)]],
        OrderStatus.AWAITING_PAYMENT,
        id="refund-on-unknown-order",
    ),
    pytest.param(
        [paid("n1")],
        replace(BILL, status=BillStatus.CANCELLED),
        [[("exception", ExceptionKind.BILL_NOT_OPEN)]],
        OrderStatus.AWAITING_PAYMENT,
        id="payment-on-cancelled-bill",
    ),
    pytest.param(
        [
            other(PaymentStatus.PENDING, "n0"),
            other(PaymentStatus.CLOSED, "c0", txn="T0"),
            paid("n1"),
            other(PaymentStatus.CLOSED, "c1"),
        ],
        BILL,
        [
            [("ignore", IgnoreReason.NOT_PAID)],
            [("ignore", IgnoreReason.CLOSED_UNPAID)],
            RECEIPT,
            [("ignore", IgnoreReason.FINISHED_AFTER_PAYMENT)],
        ],
        OrderStatus.PAID,
        id="pending-and-closed-attempts",
    ),
    pytest.param(
        [
            paid("n1", channel="wechat"),
            refund("f1", 1_000, refund_id="R1", status=PaymentStatus.REFUND_FAILED),
            refund("f1", 1_000, refund_id="R1", status=PaymentStatus.REFUND_FAILED),
            refund("f2", 1_000, refund_id="R1", status=PaymentStatus.REFUND_FAILED),
        ],
        BILL,
        [
            RECEIPT,
            [("exception", ExceptionKind.REFUND_FAILED)],
            DUPLICATE,
            [("ignore", IgnoreReason.EXCEPTION_ALREADY_RAISED)],
        ],
        OrderStatus.PAID,
        id="refund-failed",
    ),
    pytest.param(
        [
            paid("n1"),
            refund("wr", 5_000, refund_id="R9", txn="W1"),
            paid("w1", channel="wechat", txn="W1"),
        ],
        BILL,
        [
            RECEIPT,
            [("hold", 5_000)],
            [
                ("exception", ExceptionKind.DUPLICATE_PAYMENT),
                ("ignore", IgnoreReason.REFUSED_PAYMENT_REFUNDED),
            ],
        ],
        OrderStatus.PAID,
        id="held-refund-of-a-payment-that-turns-out-duplicate",
    ),
]


@pytest.mark.parametrize(("events", "bill", "expected", "status"), TABLE)
def test_decision_table(
    events: list[PaymentEvent],
    bill: Bill | None,
    expected: list[list[tuple[str, object]]],
    status: OrderStatus,
) -> None:
    """Each trap yields exactly the decisions and final status in its row."""
    state, steps = run(events, bill)

    assert [[summary(d) for d in step] for step in steps] == expected
    assert state.status is status


def test_receipt_decision_carries_the_payment() -> None:
    """The receipt decision names the payment of record and its times."""
    _, steps = run([paid("n1", channel="unionpay", txn="U1", seconds=5)])

    (receipt,) = steps[0]
    assert receipt == IssueReceipt(
        order_id=ORDER,
        channel="unionpay",
        channel_txn_id="U1",
        amount_fen=TOTAL,
        paid_at=T0,
        issued_at=T0 + timedelta(seconds=5),
    )


def test_released_refunds_are_issued_when_the_payment_arrives() -> None:
    """A held refund's red letter is dated by the payment that released it."""
    events = [
        refund("r1", 5_000, refund_id="R1", seconds=10),
        paid("p", channel="wechat", seconds=99),
    ]
    state, steps = run(events)

    red = steps[1][1]
    assert isinstance(red, IssueRedLetterReceipt)
    assert red.issued_at == T0 + timedelta(seconds=99)
    assert red.refunded_at == T0 + timedelta(seconds=10)
    assert red.refund_key == "wechat:T1:refund:R1"
    assert state.held == ()
    assert state.refunded_fen == 5_000


def test_exception_ids_are_stable_per_cause() -> None:
    """The same fault replayed from scratch raises the same exception id."""
    events = [paid("n1"), paid("w1", channel="wechat", txn="W1")]
    _, first = run(events)
    _, second = run(events)

    one, two = first[1][0], second[1][0]
    assert isinstance(one, RaiseException)
    assert isinstance(two, RaiseException)
    assert one.exception_id == two.exception_id
    assert one.amount_fen == TOTAL
    assert "wechat" not in one.detail
    assert "alipay" in one.detail


def test_exception_record_routes_to_the_school() -> None:
    """An exception record names the bill's school and unit, no payer data."""
    _, steps = run([paid("n1", amount=1)])
    (raised,) = steps[0]
    assert isinstance(raised, RaiseException)

    record = raised.as_record(BILL)

    assert record["school_id"] == "S310104001"
    assert record["collecting_unit_code"] == "CU3101040001"
    assert record["kind"] == "AMOUNT_MISMATCH"
    assert BILL.student_ref not in str(record)
    assert raised.as_record(None)["school_id"] is None


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (alipay_refund("a1", 30_000, 1), "alipay:T1:cumulative:30000"),
        (refund("w1", 100, refund_id="R7"), "wechat:T1:refund:R7"),
        (refund("w1", 100), "wechat:T1:refund:w1"),
    ],
)
def test_refund_key(event: PaymentEvent, expected: str) -> None:
    """Refund keys: cumulative by total, else refund id, else notify id."""
    assert refund_key(event) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_fen": 0},
        {"paid_fen": -1},
        {"notified_at": datetime(2025, 9, 1, 2, 0)},
        {"status": PaymentStatus.REFUNDED},
    ],
)
def test_invalid_events_are_poison(changes: dict[str, object]) -> None:
    """Zero totals, negative money, naive times, amountless refunds: poison."""
    with pytest.raises(PoisonError) as caught:
        replace(paid(), **changes)  # type: ignore[arg-type]

    assert caught.value.reason == "invalid_record"


def test_state_round_trips_through_bytes() -> None:
    """A state with every part filled survives dump and load unchanged."""
    events = [
        refund("r0", 1_000, refund_id="R0", txn="W9"),
        paid("n1", amount=5),
        paid("n2", channel="wechat", txn="W2"),
        refund("r1", 2_000, refund_id="R1", txn="W2"),
    ]
    state, _ = run(events)

    assert load_state(dump_state(state)) == state
    assert len(state.held) == 1
    assert len(state.refused) == 1
    assert len(state.refunds) == 1
    assert len(state.raised) == 1


def test_unparseable_state_is_a_codec_error() -> None:
    """Bytes that are not a stored state raise CodecError."""
    with pytest.raises(CodecError):
        load_state(b'{"order_id": 5}')


def test_event_record_round_trip() -> None:
    """An event survives as_record and from_record unchanged."""
    event = alipay_refund("a1", 30_000, 5)
    occurred = T0 + timedelta(minutes=1)

    record = event.as_record(
        event_id="0" * 8 + "-0000-4000-8000-" + "0" * 12, occurred_at=occurred
    )

    assert PaymentEvent.from_record(record) == event
    with pytest.raises(CodecError):
        PaymentEvent.from_record({k: v for k, v in record.items() if k != "order_id"})


# --- properties -----------------------------------------------------------

_SAME_PAYMENT = st.sampled_from(
    [
        paid("n1", seconds=0.0),
        paid("n1", seconds=0.2),
        paid("n2", seconds=0.2),
        paid("n3", seconds=3600),
        paid("n1", seconds=25 * 3600),
        paid("recon", source=PaymentSource.RECONCILIATION, seconds=86_400),
        other(PaymentStatus.PENDING, "pend"),
    ]
)


@settings(max_examples=300)
@given(
    st.lists(_SAME_PAYMENT, min_size=1, max_size=12).filter(
        lambda events: any(e.status is PaymentStatus.PAID for e in events)
    )
)
def test_duplicates_of_one_payment_issue_exactly_one_receipt(
    events: list[PaymentEvent],
) -> None:
    """Any interleaving of notifications of one payment: one receipt."""
    _, steps = run(events)

    receipts = [d for step in steps for d in step if isinstance(d, IssueReceipt)]
    assert len(receipts) == 1
    assert receipts[0].channel_txn_id == "T1"
    assert all(isinstance(d, IssueReceipt | Ignore) for step in steps for d in step)


def _any_event() -> st.SearchStrategy[PaymentEvent]:
    """Any payment or refund event the order might see, faults included."""
    txns = st.sampled_from([("alipay", "T1"), ("wechat", "W1"), ("unionpay", "U1")])
    notify = st.sampled_from([f"n{i}" for i in range(8)])
    amount = st.integers(min_value=1, max_value=TOTAL + 10_000)
    seconds = st.floats(min_value=0, max_value=90_000, allow_nan=False)

    def payment(txn: tuple[str, str], n: str, fen: int, s: float) -> PaymentEvent:
        exact = fen % 3 != 0  # two in three payments match the bill
        return paid(
            n, channel=txn[0], txn=txn[1], amount=TOTAL if exact else fen, seconds=s
        )

    def a_refund(
        txn: tuple[str, str], n: str, fen: int, s: float, rid: int
    ) -> PaymentEvent:
        return refund(
            n,
            fen,
            refund_id=f"R{rid}",
            cumulative=txn[0] == "alipay",
            channel=txn[0],
            txn=txn[1],
            seconds=s,
        )

    return st.one_of(
        st.builds(payment, txns, notify, amount, seconds),
        st.builds(a_refund, txns, notify, amount, seconds, st.integers(0, 4)),
    )


@settings(max_examples=400)
@given(st.lists(_any_event(), min_size=1, max_size=20))
def test_red_letters_never_exceed_the_payment(events: list[PaymentEvent]) -> None:
    """Whatever arrives: at most one receipt, red letters within its amount."""
    state, steps = run(events)
    decisions = [d for step in steps for d in step]

    receipts = [d for d in decisions if isinstance(d, IssueReceipt)]
    reds = [d for d in decisions if isinstance(d, IssueRedLetterReceipt)]
    assert len(receipts) <= 1
    paid_fen = receipts[0].amount_fen if receipts else 0
    assert sum(r.refund_fen for r in reds) <= paid_fen
    assert sum(r.refund_fen for r in reds) == state.refunded_fen
    assert all(r.refund_fen > 0 for r in reds)
    assert len({r.refund_key for r in reds}) == len(reds)
    if receipts:
        assert {r.channel_txn_id for r in reds} <= {receipts[0].channel_txn_id}
    assert load_state(dump_state(state)) == state


@settings(max_examples=200)
@given(
    st.lists(st.integers(min_value=1, max_value=30_000), min_size=1, max_size=4),
    st.randoms(use_true_random=False),
)
def test_distinct_refunds_count_once_in_any_order(
    amounts: list[int], rng: random.Random
) -> None:
    """WeChat refunds with distinct ids, shuffled with resends and the payment:
    each yields one red letter of its own amount."""
    refunds = [
        refund(f"r{i}", fen, refund_id=f"R{i}", seconds=i)
        for i, fen in enumerate(amounts)
    ]
    resends = [replace(r, notify_id=r.notify_id + "-again") for r in refunds]
    events = [paid("p", channel="wechat"), *refunds, *resends]
    rng.shuffle(events)

    _, steps = run(events)

    reds = sorted(
        d.refund_fen
        for step in steps
        for d in step
        if isinstance(d, IssueRedLetterReceipt)
    )
    assert reds == sorted(amounts)
