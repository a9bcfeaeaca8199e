"""One payment callback, the same shape whichever channel sent it.

Duties:

- name the channels and the payment states a callback can report;
- hold a verified callback as ``NormalisedCallback``;
- turn it into a flat record for Avro (times as epoch millis) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from edustream.errors import CodecError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLI = timedelta(milliseconds=1)
_TIME_FIELDS = ("paid_at", "refunded_at", "notified_at")


class Channel(StrEnum):
    """Where a callback came from.

    ``RECONCILIATION`` marks a callback rebuilt from a channel's daily bill
    file because the live one never arrived.
    """

    ALIPAY = "alipay"
    WECHAT = "wechat"
    UNIONPAY = "unionpay"
    RECONCILIATION = "reconciliation"


class PaymentStatus(StrEnum):
    """What the channel says happened to the order."""

    PAID = "PAID"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"
    PENDING = "PENDING"
    REFUND_FAILED = "REFUND_FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class NormalisedCallback:
    """A verified payment callback in channel-neutral terms.

    Identity:

    - ``notify_id``: the channel's id for this notification, the same on every
      resend (Alipay ``notify_id``, WeChat body ``id``, UnionPay ``queryId`` of
      the transaction notified). Use it to drop resends.
    - ``channel_txn_id``: the channel's id of the *payment* (Alipay
      ``trade_no``, WeChat ``transaction_id``, UnionPay ``queryId`` of the
      consume, or ``origQryId`` on a refund). A refund carries the id of the
      payment it reverses.
    - ``order_id``: our order number, as sent to the channel.
    - ``refund_id``: our refund request number, as sent to the channel
      (Alipay ``out_biz_no``, WeChat ``out_refund_no``, UnionPay ``orderId``
      of the refund). The same key appears in every channel's bill file, so
      reconciliation can match refunds by it. ``None`` when no refund is
      reported.

    Money, all integer fen:

    - ``amount_fen``: the order total.
    - ``paid_fen``: what the channel reports as actually paid (Alipay
      ``receipt_amount``, WeChat ``payer_total``, UnionPay ``txnAmt``). It
      differs from ``amount_fen`` only when a discount covered part of the
      order; ``None`` when the notification does not say.
    - ``refund_fen``: a refunded amount; read it with ``refund_is_cumulative``.
      When true (Alipay), it is the total refunded on the order so far, so a
      later notification supersedes an earlier one. When false (WeChat and
      UnionPay), it is this one refund's amount, and billing must add up the
      distinct ``refund_id`` values itself.

    Times are timezone-aware UTC: ``paid_at`` and ``refunded_at`` when the
    channel reports them, and ``notified_at`` as the channel stamped the
    notification (UnionPay has no such stamp; its ``txnTime`` stands in).
    """

    channel: Channel
    notify_id: str
    channel_txn_id: str
    order_id: str
    status: PaymentStatus
    amount_fen: int
    notified_at: datetime
    refund_is_cumulative: bool
    paid_fen: int | None = None
    refund_fen: int | None = None
    refund_id: str | None = None
    paid_at: datetime | None = None
    refunded_at: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse naive times and negative money, whoever builds the value."""
        for name in _TIME_FIELDS:
            value = getattr(self, name)
            if value is not None and value.utcoffset() != timedelta(0):
                raise ValueError(f"{name} must be a UTC-aware datetime")

        for name in ("amount_fen", "paid_fen", "refund_fen"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")

    def to_record(self) -> dict[str, Any]:
        """Return a flat dict for Avro: enums as strings, times as epoch ms."""
        return {
            "channel": str(self.channel),
            "notify_id": self.notify_id,
            "channel_txn_id": self.channel_txn_id,
            "order_id": self.order_id,
            "status": str(self.status),
            "amount_fen": self.amount_fen,
            "paid_fen": self.paid_fen,
            "refund_fen": self.refund_fen,
            "refund_is_cumulative": self.refund_is_cumulative,
            "refund_id": self.refund_id,
            "paid_at": _to_millis(self.paid_at),
            "refunded_at": _to_millis(self.refunded_at),
            "notified_at": _to_millis(self.notified_at),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NormalisedCallback:
        """Rebuild a callback from ``to_record`` output.

        Raises ``CodecError(reason="invalid_record")`` when a field is missing
        or holds the wrong kind of value.
        """
        try:
            return cls(
                channel=Channel(record["channel"]),
                notify_id=record["notify_id"],
                channel_txn_id=record["channel_txn_id"],
                order_id=record["order_id"],
                status=PaymentStatus(record["status"]),
                amount_fen=record["amount_fen"],
                paid_fen=record.get("paid_fen"),
                refund_fen=record.get("refund_fen"),
                refund_is_cumulative=record["refund_is_cumulative"],
                refund_id=record.get("refund_id"),
                paid_at=_from_millis(record.get("paid_at")),
                refunded_at=_from_millis(record.get("refunded_at")),
                notified_at=_required_time(record["notified_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodecError(
                "invalid_record", f"callback record is invalid: {type(exc).__name__}"
            ) from exc


def _to_millis(moment: datetime | None) -> int | None:
    """Return epoch milliseconds, keeping ``None``."""
    if moment is None:
        return None
    return (moment - _EPOCH) // _MILLI


def _from_millis(millis: int | None) -> datetime | None:
    """Return the UTC datetime for epoch milliseconds, keeping ``None``."""
    if millis is None:
        return None
    return _EPOCH + millis * _MILLI


def _required_time(millis: int) -> datetime:
    """Return the UTC datetime for epoch milliseconds that must be present."""
    moment = _from_millis(millis)
    if moment is None:
        raise ValueError("time is required")
    return moment
