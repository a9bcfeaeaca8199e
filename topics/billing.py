"""Topics of the school fee payment flow.

The ingress verifies each channel's signed callback and publishes it
normalised; refused callbacks are recorded with the reason. Receipts and
red-letter receipts carry the payer's pseudonym, never a name.

Keys. Bills, callbacks and everything billing writes per order are keyed by
the order id, which is the bill id, so one order's bill and payments share a
partition and are read in order. Remittance is per collecting unit, so its
inputs (receipts, red-letter receipts and day closes) are re-keyed by the
collecting unit code onto ``REMITTANCE_ENTRIES``.
"""

from __future__ import annotations

from topics.spec import DAY_MS, TopicSpec

BILLS = TopicSpec(
    name="billing.bills",
    key="order id",
    schema="edustream.billing.Bill",
    writer="school fee system",
    readers=("billing", "bill lookup"),
    doc="Bills per student and term with their items; an order pays one bill.",
    retention_ms=400 * DAY_MS,
)
CALLBACKS = TopicSpec(
    name="billing.payment-callbacks",
    key="order id",
    schema="edustream.billing.PaymentCallback",
    writer="ingress",
    readers=("billing",),
    doc="Verified channel callbacks, normalised; also reconciliation injections.",
    retention_ms=30 * DAY_MS,
)
REJECTED_CALLBACKS = TopicSpec(
    name="billing.rejected-callbacks",
    key="channel",
    schema="edustream.billing.RejectedCallback",
    writer="ingress",
    readers=("operators",),
    doc="Forged, stale or malformed callbacks with the reason; never acted on.",
    retention_ms=30 * DAY_MS,
)
DAY_CLOSES = TopicSpec(
    name="billing.day-closes",
    key="collecting unit code; no key closes the day for every unit",
    schema="edustream.billing.DayClosed",
    writer="remittance scheduler",
    readers=("billing",),
    doc="Nightly commands closing an Asia/Shanghai business day for remittance.",
    retention_ms=30 * DAY_MS,
)
RECEIPTS = TopicSpec(
    name="billing.receipts",
    key="order id",
    schema="edustream.billing.ReceiptIssued",
    writer="billing",
    readers=("receipt delivery", "payment history"),
    doc="Electronic fiscal receipts, one per paid order.",
    retention_ms=400 * DAY_MS,
)
RED_RECEIPTS = TopicSpec(
    name="billing.red-letter-receipts",
    key="order id",
    schema="edustream.billing.RedLetterReceiptIssued",
    writer="billing",
    readers=("receipt delivery", "payment history"),
    doc="Red-letter receipts for refunds, linked to the original receipt.",
    retention_ms=400 * DAY_MS,
)
REMITTANCE_ENTRIES = TopicSpec(
    name="billing.remittance-entries",
    key="collecting unit code; none for a day close sent to every partition",
    schema="edustream.billing.RemittanceEntry",
    writer="billing",
    readers=("billing",),
    doc="Internal: receipts, red-letter receipts and day closes re-keyed by "
    "collecting unit, in the order remittance must see them.",
    retention_ms=30 * DAY_MS,
)
REMITTANCES = TopicSpec(
    name="billing.remittances",
    key="collecting unit code",
    schema="edustream.billing.RemittanceBatchClosed",
    writer="billing",
    readers=("treasury",),
    doc="Per collecting unit and business day: receipts minus red-letter receipts.",
    retention_ms=400 * DAY_MS,
)
EXCEPTIONS = TopicSpec(
    name="billing.exceptions",
    key="order id",
    schema="edustream.billing.PaymentException",
    writer="billing",
    readers=("finance staff",),
    doc="Payments a person must handle: amount mismatches, second payments to refund.",
    retention_ms=400 * DAY_MS,
)
DEAD_LETTERS = TopicSpec(
    name="billing.dead-letters",
    key="the input's key",
    schema="edustream.common.DeadLetter",
    writer="billing",
    readers=("operators",),
    doc="Billing inputs refused, with reason and original bytes.",
    retention_ms=30 * DAY_MS,
)

ALL: tuple[TopicSpec, ...] = (
    BILLS,
    CALLBACKS,
    REJECTED_CALLBACKS,
    DAY_CLOSES,
    RECEIPTS,
    RED_RECEIPTS,
    REMITTANCE_ENTRIES,
    REMITTANCES,
    EXCEPTIONS,
    DEAD_LETTERS,
)
