"""The order state machine: payment events in, decisions out.

Duties:

- hold one payment event in channel-neutral terms (``PaymentEvent``);
- hold what is known about one order (``OrderState``): the payment of
  record, the refunds counted against it, payments refused, refunds held
  and notifications already seen;
- ``decide`` what an event means for the order, as a new state and a list
  of decisions: issue a receipt, issue a red-letter receipt, raise an
  exception for a person, hold a refund, or ignore the event;
- store an order state as bytes and read it back.

``decide`` is pure. The caller keeps the state per order id, applies the
decisions, and must process one order's events in order (a Kafka partition
keyed by order id does that).

Rules, each of them a trap seen in real integrations:

- Exactly one receipt per paid order, however often a payment is reported:
  a resend with the same ``notify_id`` is dropped, and a new notification of
  the same payment (same channel and ``channel_txn_id``, such as Alipay's
  ``TRADE_FINISHED`` after ``TRADE_SUCCESS``) changes nothing. Nothing here
  expires, so a resend 25 hours later is dropped as well.
- The first accepted payment is the payment of record. A "paid" from
  another channel, or another transaction of the same channel, is a
  duplicate payment: no receipt, an exception so a person refunds it.
- A payment must match the bill total (``amount_fen``, and ``paid_fen`` when
  the channel reports it), else an ``AMOUNT_MISMATCH`` exception and no
  receipt. A payment on an unknown order, or on a bill that is not open,
  is refused the same way.
- Refunds accumulate against the payment of record. When
  ``refund_is_cumulative`` (Alipay) the red-letter amount is the increase
  over what was already refunded; otherwise (WeChat Pay, UnionPay) each
  distinct ``refund_id`` counts once. Refunds never add up to more than was
  paid: one that would is an exception and issues nothing.
- A late "paid", or a "finished" or "closed", after a refund never reopens
  the order. The normalised form cannot tell Alipay's ``TRADE_FINISHED``
  from a resent ``TRADE_SUCCESS`` (both are ``PAID``), so both are ignored
  as ``LATE_PAID_AFTER_REFUND``.
- A refund for a payment not seen yet is held, and released in time order
  once that payment arrives. A refund of a refused payment (the usual end
  of a duplicate payment) issues no red-letter receipt.
- An exception is raised once per cause: resends of the same faulty event
  are ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edustream.billing.bills import Bill, BillStatus
from edustream.errors import CodecError, PoisonError

_EXCEPTION_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:billing:exceptions")

# Resends of one notification arrive within about a day, and an order sees a
# handful of distinct notifications in its life. 64 keeps the state small;
# anything older that comes back is still caught by the payment and refund
# rules, only under a less precise reason than DUPLICATE_NOTIFICATION.
_SEEN_LIMIT = 64


class PaymentStatus(StrEnum):
    """What a payment event says happened (the normalised callback status)."""

    PAID = "PAID"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"
    PENDING = "PENDING"
    REFUND_FAILED = "REFUND_FAILED"


class PaymentSource(StrEnum):
    """How the event reached us: a live callback or the daily bill file."""

    INGRESS = "INGRESS"
    RECONCILIATION = "RECONCILIATION"


class OrderStatus(StrEnum):
    """Where an order stands."""

    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAID = "PAID"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


class ExceptionKind(StrEnum):
    """Why an event needs a person."""

    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    BILL_NOT_OPEN = "BILL_NOT_OPEN"
    REFUND_EXCEEDS_PAYMENT = "REFUND_EXCEEDS_PAYMENT"
    REFUND_FAILED = "REFUND_FAILED"


class IgnoreReason(StrEnum):
    """Why an event changes nothing."""

    DUPLICATE_NOTIFICATION = "duplicate_notification"
    ALREADY_PAID = "already_paid"
    LATE_PAID_AFTER_REFUND = "late_paid_after_refund"
    FINISHED_AFTER_PAYMENT = "finished_after_payment"
    FINISHED_AFTER_REFUND = "finished_after_refund"
    ALREADY_REFUSED = "already_refused"
    REFUSED_PAYMENT_REFUNDED = "refused_payment_refunded"
    REFUND_ALREADY_COUNTED = "refund_already_counted"
    NOT_PAID = "not_paid"
    CLOSED_UNPAID = "closed_unpaid"
    EXCEPTION_ALREADY_RAISED = "exception_already_raised"


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentEvent:
    """One payment callback, verified and normalised, as billing reads it.

    The fields mirror the normalised callback (``payment_callback.avsc``):

    - ``channel`` names the channel that holds the money (``alipay``,
      ``wechat``, ``unionpay``), also for events rebuilt by reconciliation,
      which say so in ``source``;
    - ``notify_id`` is stable across resends of one notification;
    - ``channel_txn_id`` is the channel's id of the payment; a refund carries
      the id of the payment it reverses;
    - ``amount_fen`` is the order total, ``paid_fen`` what the payer paid;
    - ``refund_fen`` is cumulative when ``refund_is_cumulative`` (Alipay),
      else this one refund's amount; ``refund_id`` is our refund number.

    A full Alipay refund (``TRADE_CLOSED`` with ``refund_fee``) is
    ``REFUNDED``; ``CLOSED`` means a trade closed without a refund.
    """

    channel: str
    notify_id: str
    channel_txn_id: str
    order_id: str
    status: PaymentStatus
    amount_fen: int
    notified_at: datetime
    refund_is_cumulative: bool = False
    paid_fen: int | None = None
    refund_fen: int | None = None
    refund_id: str | None = None
    paid_at: datetime | None = None
    refunded_at: datetime | None = None
    source: PaymentSource = PaymentSource.INGRESS

    def __post_init__(self) -> None:
        """Refuse an event the state machine could misread."""
        for name in ("paid_at", "refunded_at", "notified_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() != timedelta(0):
                raise PoisonError("invalid_record", f"{name} must be UTC-aware")

        if self.amount_fen <= 0 or (self.paid_fen or 0) < 0:
            raise PoisonError("invalid_record", "payment amounts must be positive")
        if self.status is PaymentStatus.REFUNDED and (self.refund_fen or 0) <= 0:
            raise PoisonError("invalid_record", "a refund needs a positive refund_fen")

    @property
    def txn(self) -> tuple[str, str]:
        """The payment this event is about: channel and channel txn id."""
        return (self.channel, self.channel_txn_id)

    @property
    def moment(self) -> datetime:
        """When the event happened, as best known (for ordering refunds)."""
        return self.refunded_at or self.paid_at or self.notified_at

    def as_record(self, *, event_id: str, occurred_at: datetime) -> dict[str, Any]:
        """The event as an ``edustream.billing.PaymentCallback`` record."""
        return {
            "event_id": event_id,
            "occurred_at": occurred_at,
            "channel": self.channel,
            "notify_id": self.notify_id,
            "channel_txn_id": self.channel_txn_id,
            "order_id": self.order_id,
            "status": str(self.status),
            "amount_fen": self.amount_fen,
            "paid_fen": self.paid_fen,
            "refund_fen": self.refund_fen,
            "refund_is_cumulative": self.refund_is_cumulative,
            "refund_id": self.refund_id,
            "paid_at": self.paid_at,
            "refunded_at": self.refunded_at,
            "notified_at": self.notified_at,
            "source": str(self.source),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PaymentEvent:
        """Rebuild an event from a decoded ``PaymentCallback`` record."""
        try:
            return cls(
                channel=record["channel"],
                notify_id=record["notify_id"],
                channel_txn_id=record["channel_txn_id"],
                order_id=record["order_id"],
                status=PaymentStatus(record["status"]),
                amount_fen=record["amount_fen"],
                paid_fen=record.get("paid_fen"),
                refund_fen=record.get("refund_fen"),
                refund_is_cumulative=record["refund_is_cumulative"],
                refund_id=record.get("refund_id"),
                paid_at=record.get("paid_at"),
                refunded_at=record.get("refunded_at"),
                notified_at=record["notified_at"],
                source=PaymentSource(record.get("source", "INGRESS")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CodecError(
                "invalid_record", f"callback record is invalid: {type(exc).__name__}"
            ) from exc


@dataclass(frozen=True, slots=True)
class Payment:
    """The payment of record: the one the receipt is issued for."""

    channel: str
    channel_txn_id: str
    amount_fen: int
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefusedPayment:
    """A payment that got an exception instead of a receipt."""

    channel: str
    channel_txn_id: str
    amount_fen: int
    kind: ExceptionKind


@dataclass(frozen=True, slots=True)
class CountedRefund:
    """A refund that produced a red-letter receipt, with its increment."""

    refund_key: str
    refund_id: str | None
    refund_fen: int
    refunded_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderState:
    """Everything ``decide`` needs to remember about one order."""

    order_id: str
    status: OrderStatus = OrderStatus.AWAITING_PAYMENT
    payment: Payment | None = None
    refunds: tuple[CountedRefund, ...] = ()
    refused: tuple[RefusedPayment, ...] = ()
    held: tuple[PaymentEvent, ...] = ()
    raised: tuple[str, ...] = ()
    seen_notifications: tuple[str, ...] = ()

    @property
    def refunded_fen(self) -> int:
        """Fen refunded so far against the payment of record."""
        return sum(refund.refund_fen for refund in self.refunds)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueReceipt:
    """Issue the order's one receipt for the payment of record."""

    order_id: str
    channel: str
    channel_txn_id: str
    amount_fen: int
    paid_at: datetime | None
    issued_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueRedLetterReceipt:
    """Issue a red-letter receipt for ``refund_fen`` newly refunded.

    ``refund_key`` identifies the refund within the order and is stable
    across replays; the red-letter receipt id derives from it.
    """

    order_id: str
    channel: str
    channel_txn_id: str
    refund_key: str
    refund_id: str | None
    refund_fen: int
    refunded_at: datetime | None
    issued_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseException:
    """Hand an event to a person; ``exception_id`` is stable per cause."""

    exception_id: str
    kind: ExceptionKind
    order_id: str
    channel: str
    channel_txn_id: str
    amount_fen: int
    refund_key: str | None
    detail: str
    raised_at: datetime

    def as_record(self, bill: Bill | None) -> dict[str, Any]:
        """The exception as an ``edustream.billing.PaymentException`` record.

        The bill, when known, routes the exception to its school.
        """
        return {
            "event_id": self.exception_id,
            "occurred_at": self.raised_at,
            "kind": str(self.kind),
            "order_id": self.order_id,
            "school_id": bill.school_id if bill else None,
            "collecting_unit_code": bill.collecting_unit_code if bill else None,
            "channel": self.channel,
            "channel_txn_id": self.channel_txn_id,
            "amount_fen": self.amount_fen,
            "refund_key": self.refund_key,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldRefund:
    """Keep a refund until the payment it reverses is known."""

    order_id: str
    channel: str
    channel_txn_id: str
    refund_key: str
    refund_fen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignore:
    """The event changes nothing, for ``reason``."""

    order_id: str
    notify_id: str
    reason: IgnoreReason


Decision = IssueReceipt | IssueRedLetterReceipt | RaiseException | HoldRefund | Ignore
Outcome = tuple[OrderState, list[Decision]]


def decide(state: OrderState | None, bill: Bill | None, event: PaymentEvent) -> Outcome:
    """Apply one payment event to an order.

    ``state`` is ``None`` for an order never seen; ``bill`` is the bill with
    the event's order id (see ``bills``), or ``None`` when there is none.
    Returns the new state (always one to
    store, even for an unknown order, so resends are recognised) and the
    decisions in the order they must be carried out.
    """
    current = state if state is not None else OrderState(order_id=event.order_id)

    seen_key = f"{event.channel}:{event.notify_id}"
    if seen_key in current.seen_notifications:
        return current, [_ignore(event, IgnoreReason.DUPLICATE_NOTIFICATION)]

    current = replace(
        current,
        seen_notifications=(*current.seen_notifications, seen_key)[-_SEEN_LIMIT:],
    )
    return _HANDLERS[event.status](current, bill, event)


def refund_key(event: PaymentEvent) -> str:
    """The key that identifies a refund within its order.

    A cumulative refund is known by the total it reaches (which only ever
    grows); any other by our refund number, or the notification id when the
    channel sent none.
    """
    prefix = f"{event.channel}:{event.channel_txn_id}"
    if event.refund_is_cumulative:
        return f"{prefix}:cumulative:{event.refund_fen}"

    return f"{prefix}:refund:{event.refund_id or event.notify_id}"


def dump_state(state: OrderState) -> bytes:
    """The state as JSON bytes, for a table or Redis."""
    return _STATE_ADAPTER.dump_json(state)


def load_state(data: bytes) -> OrderState:
    """Read back ``dump_state`` output; ``CodecError`` if it does not parse."""
    try:
        return _STATE_ADAPTER.validate_json(data)
    except (ValidationError, PoisonError) as exc:
        raise CodecError("invalid_record", "order state does not parse") from exc


def _on_paid(state: OrderState, bill: Bill | None, event: PaymentEvent) -> Outcome:
    if _payment_of_record(state, event) is not None:
        reason = (
            IgnoreReason.LATE_PAID_AFTER_REFUND
            if state.refunds
            else IgnoreReason.ALREADY_PAID
        )
        return state, [_ignore(event, reason)]

    if _refused(state, event) is not None:
        return state, [_ignore(event, IgnoreReason.ALREADY_REFUSED)]

    problem = _payment_problem(state, bill, event)
    if problem is not None:
        return _refuse(state, event, *problem)

    return _accept(state, event)


def _on_refunded(state: OrderState, bill: Bill | None, event: PaymentEvent) -> Outcome:
    payment = _payment_of_record(state, event)
    if payment is not None:
        return _count_refund(state, payment, event, at=event.notified_at)

    if _refused(state, event) is not None:
        return state, [_ignore(event, IgnoreReason.REFUSED_PAYMENT_REFUNDED)]

    if bill is None and state.payment is None:
        detail = "refund for an order with no bill"
        key = refund_key(event)
        return _raise_once(state, event, ExceptionKind.UNKNOWN_ORDER, detail, key)

    return _hold(state, event)


def _on_closed(state: OrderState, bill: Bill | None, event: PaymentEvent) -> Outcome:
    if _payment_of_record(state, event) is None:
        return state, [_ignore(event, IgnoreReason.CLOSED_UNPAID)]

    reason = (
        IgnoreReason.FINISHED_AFTER_REFUND
        if state.refunds
        else IgnoreReason.FINISHED_AFTER_PAYMENT
    )
    return state, [_ignore(event, reason)]


def _on_pending(state: OrderState, bill: Bill | None, event: PaymentEvent) -> Outcome:
    return state, [_ignore(event, IgnoreReason.NOT_PAID)]


def _on_refund_failed(
    state: OrderState, bill: Bill | None, event: PaymentEvent
) -> Outcome:
    # A failed refund leaves the money with us while someone expects it back;
    # only a person can retry it or tell the family.
    key = f"{event.channel}:{event.channel_txn_id}:refund:"
    key += event.refund_id or event.notify_id
    detail = "the channel reports a refund failed or closed"
    return _raise_once(state, event, ExceptionKind.REFUND_FAILED, detail, key)


_HANDLERS: dict[
    PaymentStatus, Callable[[OrderState, Bill | None, PaymentEvent], Outcome]
] = {
    PaymentStatus.PAID: _on_paid,
    PaymentStatus.REFUNDED: _on_refunded,
    PaymentStatus.CLOSED: _on_closed,
    PaymentStatus.PENDING: _on_pending,
    PaymentStatus.REFUND_FAILED: _on_refund_failed,
}


def _payment_problem(
    state: OrderState, bill: Bill | None, event: PaymentEvent
) -> tuple[ExceptionKind, str] | None:
    """Why a new payment cannot be the payment of record, if it cannot."""
    if state.payment is not None:
        return ExceptionKind.DUPLICATE_PAYMENT, (
            f"order already paid through {state.payment.channel}; refund this one"
        )
    if bill is None:
        return ExceptionKind.UNKNOWN_ORDER, "payment for an order with no bill"
    if bill.status is not BillStatus.OPEN:
        return ExceptionKind.BILL_NOT_OPEN, f"payment on a bill that is {bill.status}"

    paid = event.paid_fen if event.paid_fen is not None else event.amount_fen
    if event.amount_fen != bill.total_fen or paid != bill.total_fen:
        return ExceptionKind.AMOUNT_MISMATCH, (
            f"order total {event.amount_fen} fen, paid {paid} fen, "
            f"bill total {bill.total_fen} fen"
        )
    return None


def _accept(state: OrderState, event: PaymentEvent) -> Outcome:
    payment = Payment(
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        amount_fen=event.amount_fen,
        paid_at=event.paid_at,
    )
    state = replace(state, payment=payment, status=OrderStatus.PAID)
    receipt = IssueReceipt(
        order_id=state.order_id,
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        amount_fen=event.amount_fen,
        paid_at=event.paid_at,
        issued_at=event.notified_at,
    )

    state, released = _release_held(state, event, payment)
    return state, [receipt, *released]


def _refuse(
    state: OrderState, event: PaymentEvent, kind: ExceptionKind, detail: str
) -> Outcome:
    refused = RefusedPayment(
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        amount_fen=event.amount_fen,
        kind=kind,
    )
    state = replace(state, refused=(*state.refused, refused))
    state, raised = _raise_once(state, event, kind, detail, None)

    state, released = _release_held(state, event, None)
    return state, [*raised, *released]


def _release_held(
    state: OrderState, event: PaymentEvent, payment: Payment | None
) -> Outcome:
    """Run the refunds held for ``event``'s transaction, oldest first.

    ``payment`` is the payment of record when the event became it, and
    ``None`` when the event was refused (its refunds then issue nothing).
    """
    mine = [held for held in state.held if held.txn == event.txn]
    if not mine:
        return state, []

    state = replace(state, held=tuple(h for h in state.held if h.txn != event.txn))
    decisions: list[Decision] = []
    for held in sorted(mine, key=lambda h: h.moment):
        if payment is None:
            decisions.append(_ignore(held, IgnoreReason.REFUSED_PAYMENT_REFUNDED))
            continue
        state, more = _count_refund(state, payment, held, at=event.notified_at)
        decisions.extend(more)
    return state, decisions


def _count_refund(
    state: OrderState, payment: Payment, event: PaymentEvent, *, at: datetime
) -> Outcome:
    """Count a refund of the payment of record and issue its red letter."""
    key = refund_key(event)
    increment = _refund_increment(state, event, key)
    if increment is None:
        return state, [_ignore(event, IgnoreReason.REFUND_ALREADY_COUNTED)]

    refunded = state.refunded_fen + increment
    if refunded > payment.amount_fen:
        detail = f"refunds would reach {refunded} fen of a {payment.amount_fen} fen"
        kind = ExceptionKind.REFUND_EXCEEDS_PAYMENT
        return _raise_once(state, event, kind, detail, key)

    counted = CountedRefund(key, event.refund_id, increment, event.refunded_at)
    status = (
        OrderStatus.REFUNDED
        if refunded == payment.amount_fen
        else OrderStatus.PARTIALLY_REFUNDED
    )
    state = replace(state, refunds=(*state.refunds, counted), status=status)
    red_letter = IssueRedLetterReceipt(
        order_id=state.order_id,
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        refund_key=key,
        refund_id=event.refund_id,
        refund_fen=increment,
        refunded_at=event.refunded_at,
        issued_at=at,
    )
    return state, [red_letter]


def _refund_increment(state: OrderState, event: PaymentEvent, key: str) -> int | None:
    """Fen this refund adds, or ``None`` when it adds nothing new."""
    reported = event.refund_fen or 0
    if event.refund_is_cumulative:
        # A cumulative report supersedes earlier ones; one at or below what
        # is counted is a resend or arrived out of order.
        increment = reported - state.refunded_fen
        return increment if increment > 0 else None

    if any(refund.refund_key == key for refund in state.refunds):
        return None
    return reported


def _hold(state: OrderState, event: PaymentEvent) -> Outcome:
    state = replace(state, held=(*state.held, event))
    hold = HoldRefund(
        order_id=state.order_id,
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        refund_key=refund_key(event),
        refund_fen=event.refund_fen or 0,
    )
    return state, [hold]


def _raise_once(
    state: OrderState,
    event: PaymentEvent,
    kind: ExceptionKind,
    detail: str,
    key: str | None,
) -> Outcome:
    cause = f"{state.order_id}:{kind}:{event.channel}:{event.channel_txn_id}:{key}"
    exception_id = str(uuid.uuid5(_EXCEPTION_IDS, cause))
    if exception_id in state.raised:
        return state, [_ignore(event, IgnoreReason.EXCEPTION_ALREADY_RAISED)]

    state = replace(state, raised=(*state.raised, exception_id))
    raised = RaiseException(
        exception_id=exception_id,
        kind=kind,
        order_id=state.order_id,
        channel=event.channel,
        channel_txn_id=event.channel_txn_id,
        amount_fen=_amount_in_question(event),
        refund_key=key,
        detail=detail,
        raised_at=event.notified_at,
    )
    return state, [raised]


def _payment_of_record(state: OrderState, event: PaymentEvent) -> Payment | None:
    """The payment of record, if ``event`` is about it."""
    payment = state.payment
    if payment is None or (payment.channel, payment.channel_txn_id) != event.txn:
        return None
    return payment


def _amount_in_question(event: PaymentEvent) -> int:
    """The refund amount for a refund event, else the order total."""
    if event.status is PaymentStatus.PAID or event.refund_fen is None:
        return event.amount_fen
    return event.refund_fen


def _refused(state: OrderState, event: PaymentEvent) -> RefusedPayment | None:
    for refused in state.refused:
        if (refused.channel, refused.channel_txn_id) == event.txn:
            return refused
    return None


def _ignore(event: PaymentEvent, reason: IgnoreReason) -> Ignore:
    return Ignore(order_id=event.order_id, notify_id=event.notify_id, reason=reason)


_STATE_ADAPTER: TypeAdapter[OrderState] = TypeAdapter(OrderState)
