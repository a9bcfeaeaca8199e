"""The billing commands' own logic: our side of reconciliation, injections, lines."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from edustream import logs
from edustream.billing.orders import PaymentSource, PaymentStatus
from edustream.billing.reconcile import OurPayment, reconcile
from edustream.channels.billfiles import BillLine
from edustream.commands import billing as commands
from edustream.http.payments import callback_event_id
from edustream.settings import get_settings

DAY = date(2025, 9, 1)
# 10:00 in Shanghai on DAY, and 23:30 the evening before.
MORNING = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)
EVE = datetime(2025, 8, 31, 15, 30, tzinfo=UTC)


def _callback(status: str, **fields: Any) -> dict[str, Any]:
    """A decoded PaymentCallback record with sensible defaults."""
    record: dict[str, Any] = {
        "channel": "wechat",
        "notify_id": uuid.uuid4().hex,
        "channel_txn_id": "TX1",
        "order_id": "B0000000001",
        "status": status,
        "amount_fen": 10_000,
        "paid_fen": None,
        "refund_fen": None,
        "refund_is_cumulative": False,
        "refund_id": None,
        "paid_at": None,
        "refunded_at": None,
        "notified_at": MORNING,
        "source": "INGRESS",
    }
    record.update(fields)
    return record


def _line(kind: str, amount: int, **fields: Any) -> BillLine:
    values: dict[str, Any] = {
        "channel": "wechat",
        "order_id": "B0000000001",
        "channel_txn_id": "TX1",
        "kind": kind,
        "amount_fen": amount,
        "refund_id": "R1" if kind == "refund" else None,
        "occurred_at": MORNING,
    }
    values.update(fields)
    return BillLine(**values)


def test_paid_callbacks_count_on_their_payment_day() -> None:
    """Payment time, in Shanghai, decides the day; resends collapse later."""
    callbacks = [
        _callback("PAID", paid_at=MORNING),
        _callback("PAID", paid_at=MORNING),
        _callback("PAID", order_id="B0000000002", paid_at=EVE),
        _callback("PAID", order_id="B0000000003", paid_at=None, notified_at=MORNING),
        _callback("PENDING"),
        _callback("CLOSED"),
        _callback("PAID", channel="alipay", order_id="B0000000004", paid_at=MORNING),
    ]

    ours = commands.our_payments(callbacks, "wechat", DAY)

    assert sorted({p.order_id for p in ours}) == ["B0000000001", "B0000000003"]
    assert all(p.kind == "payment" and p.amount_fen == 10_000 for p in ours)


def test_alipay_running_totals_become_single_refunds() -> None:
    """Totals 30.00 then 100.00 are refunds of 30.00 and 70.00; resends add nothing."""

    def refund(total: int, refund_id: str, hours: int) -> dict[str, Any]:
        return _callback(
            "REFUNDED",
            channel="alipay",
            refund_fen=total,
            refund_is_cumulative=True,
            refund_id=refund_id,
            refunded_at=MORNING + timedelta(hours=hours),
        )

    callbacks = [
        refund(10_000, "R2", 5),
        refund(3_000, "R1", 1),
        refund(3_000, "R1", 1),
    ]

    ours = commands.our_payments(callbacks, "alipay", DAY)

    assert sorted((p.refund_id, p.amount_fen) for p in ours) == [
        ("R1", 3_000),
        ("R2", 7_000),
    ]


def test_single_refunds_keep_their_amount_and_number() -> None:
    """WeChat and UnionPay refunds are matched by our refund number."""
    callbacks = [
        _callback("REFUNDED", refund_fen=2_500, refund_id="R9", refunded_at=MORNING),
        _callback("REFUNDED", refund_fen=2_500, refund_id="R8", refunded_at=EVE),
    ]

    ours = commands.our_payments(callbacks, "wechat", DAY)

    assert ours == [OurPayment("B0000000001", "TX1", "refund", 2_500, "R9")]


def test_missing_payment_and_refund_are_injected_with_the_real_channel() -> None:
    """Injections say RECONCILIATION in source and the channel in channel."""
    lines = [_line("payment", 10_000), _line("refund", 4_000)]
    report = reconcile(lines, [])

    events = commands.injections(report, lines, [])

    payment, refund = sorted(events, key=lambda e: e.status)
    assert {e.channel for e in events} == {"wechat"}
    assert {e.source for e in events} == {PaymentSource.RECONCILIATION}
    assert (payment.status, payment.amount_fen, payment.paid_at) == (
        PaymentStatus.PAID,
        10_000,
        MORNING,
    )
    assert (refund.status, refund.refund_fen, refund.amount_fen) == (
        PaymentStatus.REFUNDED,
        4_000,
        10_000,
    )
    assert refund.refund_id == "R1"
    assert refund.refund_is_cumulative is False


def test_injecting_twice_names_the_same_notification() -> None:
    """The notify id and the event id come from the line, not the run."""
    lines = [_line("payment", 10_000)]
    first = commands.injections(reconcile(lines, []), lines, [])
    second = commands.injections(reconcile(lines, []), lines, [])

    assert first[0].notify_id == second[0].notify_id
    assert callback_event_id("wechat", first[0].notify_id) == callback_event_id(
        "wechat", second[0].notify_id
    )


def test_only_what_we_lack_is_injected() -> None:
    """Matched lines and amount mismatches are reported, not replayed."""
    lines = [
        _line("payment", 10_000),
        _line("payment", 5_000, order_id="B0000000002", channel_txn_id="TX2"),
        _line("payment", 7_000, order_id="B0000000003", channel_txn_id="TX3"),
    ]
    ours = [
        OurPayment("B0000000001", "TX1", "payment", 10_000),
        OurPayment("B0000000002", "TX2", "payment", 4_000),
    ]

    events = commands.injections(reconcile(lines, ours), lines, [])

    assert [e.order_id for e in events] == ["B0000000003"]


@pytest.mark.parametrize(
    ("channel", "lookback", "start"),
    [
        ("wechat", None, datetime(2025, 8, 31, 15, 0, tzinfo=UTC)),
        ("alipay", None, datetime(2025, 8, 24, 15, 0, tzinfo=UTC)),
        ("unionpay", 2, datetime(2025, 8, 29, 15, 0, tzinfo=UTC)),
    ],
)
def test_reading_starts_before_the_day(
    channel: str, lookback: int | None, start: datetime
) -> None:
    """An hour before the Shanghai day, plus the lookback (7 days for Alipay)."""
    assert commands.window_start(channel, DAY, lookback) == start


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {
                "kind": "payment",
                "at": "T",
                "amount_fen": 123_456,
                "order_id": "B1",
                "channel": "alipay",
            },
            "T  payment                  1234.56  B1  via alipay",
        ),
        (
            {
                "kind": "red_letter_receipt",
                "at": "T",
                "refund_fen": 500,
                "order_id": "B1",
                "receipt_code": "31052025",
                "receipt_number": "0000000002",
            },
            "T  red_letter_receipt         -5.00  B1  receipt 31052025-0000000002",
        ),
    ],
    ids=["payment", "red-letter"],
)
def test_history_lines(entry: dict[str, Any], expected: str) -> None:
    """Refunds print as negative yuan; receipts by code and number."""
    assert commands.history_line(entry) == expected


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands configure logging to the runner's stream, which it then closes."""
    monkeypatch.setattr(logs, "configure", lambda *_args: None)


def test_history_command_prints_an_empty_history(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown student prints a plain line, and [] as JSON."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    runner = CliRunner()
    ref = f"stu_{uuid.uuid4().hex[:26]}"

    try:
        text = runner.invoke(commands.app, ["history", ref])
        as_json = runner.invoke(commands.app, ["history", ref, "--json"])
    finally:
        get_settings.cache_clear()

    assert (text.exit_code, text.output) == (0, "no payment history\n")
    assert json.loads(as_json.output) == []


def test_reconcile_refuses_to_run_without_a_cluster(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh embedded broker holds no callbacks, so it is not used."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    get_settings.cache_clear()
    bill_file = tmp_path / "bill.csv"
    bill_file.write_bytes(b"")

    try:
        result = CliRunner().invoke(
            commands.app,
            [
                "reconcile",
                "--channel",
                "wechat",
                "--date",
                "2025-09-01",
                str(bill_file),
            ],
        )
    finally:
        get_settings.cache_clear()

    assert result.exit_code != 0
    assert "KAFKA_BOOTSTRAP_SERVERS" in str(result.exception)
