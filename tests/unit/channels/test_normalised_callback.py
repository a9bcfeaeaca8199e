"""The channel-neutral callback and its Avro record form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.errors import CodecError

PAID_AT = datetime(2024, 9, 2, 1, 30, 5, tzinfo=UTC)
REFUNDED_AT = datetime(2024, 9, 3, 2, 0, 0, 250000, tzinfo=UTC)
NOTIFIED_AT = datetime(2024, 9, 3, 2, 0, 1, tzinfo=UTC)


def _refund() -> NormalisedCallback:
    """A partial Alipay refund with every optional field filled."""
    return NormalisedCallback(
        channel=Channel.ALIPAY,
        notify_id="n-1",
        channel_txn_id="2024090222001400001",
        order_id="BILL-1",
        status=PaymentStatus.REFUNDED,
        amount_fen=179500,
        paid_fen=179500,
        refund_fen=50000,
        refund_is_cumulative=True,
        refund_id="RF-1",
        paid_at=PAID_AT,
        refunded_at=REFUNDED_AT,
        notified_at=NOTIFIED_AT,
    )


def test_record_holds_plain_values_and_epoch_millis() -> None:
    """Enums become strings and times become epoch milliseconds."""
    record = _refund().to_record()

    assert record == {
        "channel": "alipay",
        "notify_id": "n-1",
        "channel_txn_id": "2024090222001400001",
        "order_id": "BILL-1",
        "status": "REFUNDED",
        "amount_fen": 179500,
        "paid_fen": 179500,
        "refund_fen": 50000,
        "refund_is_cumulative": True,
        "refund_id": "RF-1",
        "paid_at": 1725240605000,
        "refunded_at": 1725328800250,
        "notified_at": 1725328801000,
    }


def test_record_round_trips() -> None:
    """from_record(to_record(x)) gives back x, optional fields included."""
    callback = _refund()

    assert NormalisedCallback.from_record(callback.to_record()) == callback


def test_absent_optionals_stay_none() -> None:
    """A payment without refund fields keeps them None through a round trip."""
    callback = NormalisedCallback(
        channel=Channel.WECHAT,
        notify_id="n-2",
        channel_txn_id="4200000001",
        order_id="BILL-2",
        status=PaymentStatus.PAID,
        amount_fen=100,
        refund_is_cumulative=False,
        notified_at=NOTIFIED_AT,
    )
    record = callback.to_record()

    assert record["refund_fen"] is None
    assert record["paid_at"] is None
    assert NormalisedCallback.from_record(record) == callback


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"status": "SETTLED"}, "unknown status"),
        ({"channel": "paypal"}, "unknown channel"),
        ({"notified_at": None}, "missing notification time"),
        ({"paid_at": "yesterday"}, "time that is not millis"),
        ({"amount_fen": -1}, "negative amount"),
    ],
)
def test_invalid_records_are_codec_errors(change: dict[str, Any], name: str) -> None:
    """A record that cannot be a callback raises CodecError(invalid_record)."""
    record = {**_refund().to_record(), **change}

    with pytest.raises(CodecError) as caught:
        NormalisedCallback.from_record(record)

    assert caught.value.reason == "invalid_record", name


def test_missing_field_is_codec_error() -> None:
    """A record without a required key is refused, not half-built."""
    record = _refund().to_record()
    del record["order_id"]

    with pytest.raises(CodecError) as caught:
        NormalisedCallback.from_record(record)

    assert caught.value.reason == "invalid_record"


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 9, 2, 9, 30),
        datetime(2024, 9, 2, 9, 30, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_only_utc_times_are_accepted(moment: datetime) -> None:
    """Naive and non-UTC datetimes are refused at construction."""
    with pytest.raises(ValueError, match="notified_at"):
        NormalisedCallback(
            channel=Channel.UNIONPAY,
            notify_id="q-1",
            channel_txn_id="q-1",
            order_id="BILL-3",
            status=PaymentStatus.PAID,
            amount_fen=1,
            refund_is_cumulative=False,
            notified_at=moment,
        )
