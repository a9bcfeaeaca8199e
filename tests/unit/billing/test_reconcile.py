"""Reconciliation of a channel's bill lines against our payment records."""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.billing.reconcile import (
    Discrepancy,
    OurPayment,
    ReconciliationReport,
    reconcile,
)
from edustream.channels.billfiles import BillLine, Kind

AT = datetime(2024, 9, 2, 4, 0, tzinfo=UTC)


def paid(order: str, fen: int, txn: str = "T1", channel: str = "alipay") -> BillLine:
    """A payment line from the channel's bill."""
    return BillLine(channel, order, txn, "payment", fen, None, AT)


def refunded(order: str, refund: str, fen: int, txn: str = "T1") -> BillLine:
    """A refund line from the channel's bill."""
    return BillLine("alipay", order, txn, "refund", fen, refund, AT)


def ours_paid(order: str, fen: int, txn: str = "T1") -> OurPayment:
    """A payment in our records."""
    return OurPayment(order, txn, "payment", fen)


def ours_refunded(order: str, refund: str, fen: int, txn: str = "T1") -> OurPayment:
    """A refund in our records."""
    return OurPayment(order, txn, "refund", fen, refund)


def gap(
    order: str,
    channel_fen: int | None,
    our_fen: int | None,
    txn: str = "T1",
    refund: str | None = None,
) -> Discrepancy:
    """The discrepancy a case expects."""
    kind: Kind = "refund" if refund else "payment"
    return Discrepancy(order, kind, refund, txn, channel_fen, our_fen)


CASES = [
    pytest.param(
        [paid("A", 100)],
        [ours_paid("A", 100)],
        ReconciliationReport(matched=1),
        id="agree",
    ),
    pytest.param(
        [paid("A", 100)],
        [],
        ReconciliationReport(matched=0, missing_here=[gap("A", 100, None)]),
        id="callback-never-arrived",
    ),
    pytest.param(
        [],
        [ours_paid("A", 100)],
        ReconciliationReport(matched=0, missing_at_channel=[gap("A", None, 100)]),
        id="not-settled-at-channel",
    ),
    pytest.param(
        [paid("A", 100)],
        [ours_paid("A", 90)],
        ReconciliationReport(matched=0, amount_mismatches=[gap("A", 100, 90)]),
        id="amount-differs",
    ),
    pytest.param(
        [paid("A", 100), refunded("A", "R1", 40), refunded("A", "R2", 60)],
        [
            ours_paid("A", 100),
            ours_refunded("A", "R1", 40),
            ours_refunded("A", "R2", 60),
        ],
        ReconciliationReport(matched=3),
        id="two-partial-refunds-agree",
    ),
    pytest.param(
        [paid("A", 100), refunded("A", "R1", 40)],
        [ours_paid("A", 100), ours_refunded("A", "R2", 40)],
        ReconciliationReport(
            matched=1,
            missing_here=[gap("A", 40, None, refund="R1")],
            missing_at_channel=[gap("A", None, 40, refund="R2")],
        ),
        id="refunds-match-by-refund-id-not-amount",
    ),
    pytest.param(
        [refunded("A", "R1", 40)],
        [ours_refunded("A", "R1", 50)],
        ReconciliationReport(
            matched=0, amount_mismatches=[gap("A", 40, 50, refund="R1")]
        ),
        id="refund-amount-differs",
    ),
    pytest.param(
        [paid("A", 100)],
        [ours_paid("A", 100), ours_paid("A", 100)],
        ReconciliationReport(matched=1),
        id="our-record-delivered-twice",
    ),
    pytest.param(
        [paid("A", 100)],
        [ours_paid("A", 100), ours_paid("A", 100, txn="T2")],
        ReconciliationReport(
            matched=1, missing_at_channel=[gap("A", None, 100, txn="T2")]
        ),
        id="our-duplicate-payment-with-another-txn",
    ),
    pytest.param(
        [paid("A", 100), paid("A", 100, txn="T2")],
        [ours_paid("A", 100, txn="T2")],
        ReconciliationReport(matched=1, missing_here=[gap("A", 100, None)]),
        id="channel-settled-a-second-payment",
    ),
    pytest.param(
        [paid("A", 100, txn="T1"), paid("A", 70, txn="T2")],
        [ours_paid("A", 75, txn="T2"), ours_paid("A", 100, txn="T9")],
        ReconciliationReport(matched=1, amount_mismatches=[gap("A", 70, 75, txn="T2")]),
        id="pairs-amount-first-then-txn",
    ),
    pytest.param(
        [paid("A", 100), paid("A", 100)],
        [ours_paid("A", 100)],
        ReconciliationReport(matched=1),
        id="identical-bill-lines-collapse",
    ),
]


@pytest.mark.parametrize(("bill", "ours", "expected"), CASES)
def test_reconcile_reports_each_kind_of_discrepancy(
    bill: list[BillLine], ours: list[OurPayment], expected: ReconciliationReport
) -> None:
    """Each table case yields exactly the expected matches and gaps."""
    assert reconcile(bill, ours) == expected


def test_discrepancies_are_sorted_by_order_id() -> None:
    """Each list comes back ordered by order id, whatever the input order."""
    bill = [paid("C", 1), paid("A", 1), paid("B", 1)]
    ours = [ours_paid("Z", 5), ours_paid("X", 5), ours_paid("Y", 5)]

    report = reconcile(bill, ours)

    assert [item.order_id for item in report.missing_here] == ["A", "B", "C"]
    assert [item.order_id for item in report.missing_at_channel] == ["X", "Y", "Z"]


def test_bill_lines_of_two_channels_are_refused() -> None:
    """One report covers one channel's bill."""
    bill = [paid("A", 1), paid("B", 1, channel="wechat")]

    with pytest.raises(ValueError, match="one channel"):
        reconcile(bill, [])


@pytest.mark.parametrize(
    ("kind", "fen", "refund"),
    [
        ("void", 1, None),
        ("payment", 0, None),
        ("payment", True, None),
        ("payment", 1, "R1"),
        ("refund", 1, None),
    ],
)
def test_our_payment_refuses_impossible_records(
    kind: str, fen: int, refund: str | None
) -> None:
    """Our record is a positive payment, or a refund with a refund id."""
    with pytest.raises(ValueError, match=r"kind|amount|refund"):
        OurPayment("A", "T1", kind, fen, refund)  # type: ignore[arg-type]


def test_report_to_dict_is_json_with_fen() -> None:
    """The dict form is JSON-ready, money in integer fen, None as null."""
    report = reconcile([paid("A", 100), paid("B", 5)], [ours_paid("B", 6)])

    assert json.loads(json.dumps(report.to_dict())) == {
        "matched": 0,
        "missing_here": [
            {
                "order_id": "A",
                "kind": "payment",
                "refund_id": None,
                "channel_txn_id": "T1",
                "channel_amount_fen": 100,
                "our_amount_fen": None,
            }
        ],
        "missing_at_channel": [],
        "amount_mismatches": [
            {
                "order_id": "B",
                "kind": "payment",
                "refund_id": None,
                "channel_txn_id": "T1",
                "channel_amount_fen": 5,
                "our_amount_fen": 6,
            }
        ],
    }


def test_render_table_lists_every_discrepancy() -> None:
    """The table has a summary line, a header and one aligned row per gap."""
    report = reconcile(
        [paid("FEE1", 450000), refunded("FEE2", "RF2", 125050)],
        [ours_paid("FEE3", 1), ours_refunded("FEE2", "RF2", 125000)],
    )

    assert report.render_table() == (
        "reconciliation: 0 matched, 1 missing here, 1 missing at channel, "
        "1 amount mismatches\n"
        "issue               order id  kind     refund id  channel txn id"
        "  channel yuan  our yuan\n"
        "missing_here        FEE1      payment  -          T1              "
        "     4500.00         -\n"
        "missing_at_channel  FEE3      payment  -          T1              "
        "           -      0.01\n"
        "amount_mismatch     FEE2      refund   RF2        T1              "
        "     1250.50   1250.00\n"
    )


def test_clean_report_renders_one_summary() -> None:
    """A clean day renders as a summary and 'no discrepancies'."""
    report = reconcile([paid("A", 100)], [ours_paid("A", 100)])

    assert report.is_clean
    assert report.render_table() == (
        "reconciliation: 1 matched, 0 missing here, 0 missing at channel, "
        "0 amount mismatches\nno discrepancies\n"
    )


# --- properties -------------------------------------------------------------

_ID = st.text(string.ascii_uppercase + string.digits, min_size=1, max_size=6)


@st.composite
def _bill(draw: st.DrawFn) -> list[BillLine]:
    """A bill with one line per key, payments and refunds mixed."""
    keys = draw(st.sets(st.tuples(_ID, st.none() | _ID), max_size=12))
    lines = []
    for order, refund in keys:
        fen = draw(st.integers(1, 10**9))
        if refund is None:
            lines.append(paid(order, fen, txn=draw(_ID)))
        else:
            lines.append(refunded(order, refund, fen, txn=draw(_ID)))
    return lines


def _as_ours(line: BillLine) -> OurPayment:
    return OurPayment(
        line.order_id, line.channel_txn_id, line.kind, line.amount_fen, line.refund_id
    )


@given(bill=_bill())
def test_our_own_copy_of_the_bill_reconciles_clean(bill: list[BillLine]) -> None:
    """Records that mirror the bill match one for one, even listed twice."""
    ours = [_as_ours(line) for line in bill] * 2

    report = reconcile(bill, ours)

    assert report.is_clean
    assert report.matched == len(bill)


@given(bill=_bill(), data=st.data())
def test_a_lost_record_is_reported_missing_here(
    bill: list[BillLine], data: st.DataObject
) -> None:
    """Dropping one of our records reports exactly that line, nothing else."""
    lost = data.draw(st.sampled_from(bill)) if bill else None
    ours = [_as_ours(line) for line in bill if line is not lost]

    report = reconcile(bill, ours)

    expected = [] if lost is None else [_missing(lost)]
    assert report.missing_here == expected
    assert report.missing_at_channel == []
    assert report.amount_mismatches == []


def _missing(line: BillLine) -> Discrepancy:
    return Discrepancy(
        line.order_id,
        line.kind,
        line.refund_id,
        line.channel_txn_id,
        line.amount_fen,
        None,
    )
