"""Topics of the school fee payment flow.

The ingress verifies each channel's signed callback and publishes it
normalised; refused callbacks are recorded with the reason. Receipts and
red-letter receipts carry the payer's pseudonym, never a name.
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
RECEIPTS = TopicSpec(
    name="billing.receipts",
    key="order id",
    schema="edustream.billing.Receipt",
    writer="billing",
    readers=("receipt delivery", "payment history", "remittance"),
    doc="Electronic fiscal receipts, one per paid order.",
    retention_ms=400 * DAY_MS,
)
RED_RECEIPTS = TopicSpec(
    name="billing.red-letter-receipts",
    key="order id",
    schema="edustream.billing.RedLetterReceipt",
    writer="billing",
    readers=("receipt delivery", "payment history", "remittance"),
    doc="Red-letter receipts for refunds, linked to the original receipt.",
    retention_ms=400 * DAY_MS,
)
REMITTANCES = TopicSpec(
    name="billing.remittances",
    key="collecting unit code",
    schema="edustream.billing.RemittanceBatch",
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
    RECEIPTS,
    RED_RECEIPTS,
    REMITTANCES,
    EXCEPTIONS,
    DEAD_LETTERS,
)
