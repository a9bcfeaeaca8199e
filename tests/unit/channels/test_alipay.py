"""Alipay notifications: the wire format, its traps, and the status mapping."""

from __future__ import annotations

import base64
import dataclasses
import html
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from edustream.channels import alipay
from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.errors import PoisonError, SignatureError

NOW = datetime(2024, 9, 2, 1, 30, tzinfo=UTC)
PAID_AT = NOW - timedelta(minutes=2)
REFUNDED_AT = NOW + timedelta(days=3)
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def _params(
    keys: ChannelKeys,
    *,
    notify_id: str = "2024090200222013005000000001",
    trade_status: str = "TRADE_SUCCESS",
    refund_fen: int | None = None,
    refunded_at: datetime | None = None,
    refund_request_id: str | None = None,
) -> dict[str, str]:
    """A 1,795-yuan tuition notification for one paid order."""
    return alipay.trade_params(
        keys,
        notify_id=notify_id,
        trade_no="2024090222001400000000000001",
        order_id="FEE-2024-0001",
        trade_status=trade_status,
        total_fen=179500,
        notified_at=NOW,
        paid_at=PAID_AT,
        refund_fen=refund_fen,
        refunded_at=refunded_at,
        refund_request_id=refund_request_id,
    )


def _verify(body: bytes, verifier: VerifierConfig) -> NormalisedCallback:
    """Verify with the content type Alipay sends."""
    return alipay.verify_notification(body, FORM, verifier)


def _reason(error: pytest.ExceptionInfo[PoisonError]) -> str:
    """The machine reason of a refusal."""
    return error.value.reason


def test_paid_notification_round_trips(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A signed TRADE_SUCCESS comes back as a PAID callback with every field."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))

    callback = _verify(body, verifier)

    assert callback == NormalisedCallback(
        channel=Channel.ALIPAY,
        notify_id="2024090200222013005000000001",
        channel_txn_id="2024090222001400000000000001",
        order_id="FEE-2024-0001",
        status=PaymentStatus.PAID,
        amount_fen=179500,
        paid_fen=179500,
        refund_is_cumulative=True,
        paid_at=PAID_AT,
        notified_at=NOW,
    )


def test_body_is_the_real_wire_format(channel_keys: ChannelKeys) -> None:
    """The body carries Alipay's field names, yuan strings and RSA2 signing."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))
    fields = dict(parse_qsl(body.decode("ascii")))

    assert fields["notify_type"] == "trade_status_sync"
    assert fields["total_amount"] == "1795.00"
    assert fields["notify_time"] == "2024-09-02 09:30:00"
    assert fields["gmt_payment"] == "2024-09-02 09:28:00"
    assert fields["sign_type"] == "RSA2"
    assert fields["charset"] == "utf-8"


def test_signature_is_sha256_rsa_over_sorted_pairs(channel_keys: ChannelKeys) -> None:
    """Independent check: sorted k=v& minus sign and sign_type, SHA256withRSA."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))
    fields = dict(parse_qsl(body.decode("ascii")))

    signature = base64.b64decode(fields.pop("sign"))
    del fields["sign_type"]
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()

    channel_public = channel_keys.alipay_channel_key.public_key()
    channel_public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def test_tampered_amount_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Changing a signed field after signing breaks the signature."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))
    tampered = body.replace(b"total_amount=1795.00", b"total_amount=0.01")

    with pytest.raises(SignatureError) as caught:
        _verify(tampered, verifier)

    assert _reason(caught) == "bad_signature"


def test_app_key_signature_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A notification signed with the merchant app's own key is a forgery."""
    app_signer = dataclasses.replace(
        channel_keys, alipay_channel_key=channel_keys.alipay_app_key
    )
    body = alipay.sign_notification(app_signer, _params(channel_keys))

    with pytest.raises(SignatureError) as caught:
        _verify(body, verifier)

    assert _reason(caught) == "bad_signature"


def test_verifier_holding_the_app_key_refuses_real_notifications(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Configuring the app's public key by mistake fails closed, not open."""
    misconfigured = dataclasses.replace(
        verifier, alipay_public_key=channel_keys.alipay_app_key.public_key()
    )
    body = alipay.sign_notification(channel_keys, _params(channel_keys))

    with pytest.raises(SignatureError) as caught:
        _verify(body, misconfigured)

    assert _reason(caught) == "bad_signature"


def test_gbk_form_verifies(channel_keys: ChannelKeys, verifier: VerifierConfig) -> None:
    """A GBK form is parsed and verified in GBK, Chinese subject included."""
    params = {**_params(channel_keys), "subject": "2024秋季学费", "body": "住宿费"}
    body = alipay.sign_notification(channel_keys, params, charset="gbk")

    callback = alipay.verify_notification(
        body, "application/x-www-form-urlencoded; charset=GBK", verifier
    )

    assert b"%D1%A7%B7%D1" in body  # 学费 in GBK, not UTF-8
    assert callback.amount_fen == 179500


def test_gbk_form_relabelled_utf8_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """GBK bytes under a UTF-8 label are bad_charset, never mis-decoded."""
    params = {**_params(channel_keys), "subject": "学费"}
    body = alipay.sign_notification(channel_keys, params, charset="gbk")

    with pytest.raises(PoisonError) as caught:
        _verify(body.replace(b"charset=gbk", b"charset=utf-8"), verifier)

    assert _reason(caught) == "bad_charset"


def test_duplicate_field_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A key sent twice is refused before anyone picks one of the values."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))

    with pytest.raises(PoisonError) as caught:
        _verify(body + b"&total_amount=0.01", verifier)

    assert _reason(caught) == "duplicate_field"


def test_html_escaped_json_field_verifies(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """HTML-escaped JSON in passback_params is verified exactly as sent."""
    escaped = html.escape('{"bill":"B-1","items":["tuition"]}')
    params = {**_params(channel_keys), "passback_params": escaped}
    body = alipay.sign_notification(channel_keys, params)

    callback = _verify(body, verifier)

    assert "&quot;" in escaped
    assert callback.order_id == "FEE-2024-0001"


def test_unescaping_before_verifying_breaks_the_signature(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Why nothing unescapes early: the unescaped value was never signed."""
    escaped = html.escape('{"bill":"B-1"}')
    body = alipay.sign_notification(
        channel_keys, {**_params(channel_keys), "passback_params": escaped}
    )
    fields = dict(parse_qsl(body.decode("ascii")))
    fields["passback_params"] = html.unescape(fields["passback_params"])

    with pytest.raises(SignatureError) as caught:
        _verify(urlencode(fields).encode("ascii"), verifier)

    assert _reason(caught) == "bad_signature"


@pytest.mark.parametrize(
    ("trade_status", "refund_fen", "status", "expected_refund"),
    [
        ("WAIT_BUYER_PAY", None, PaymentStatus.PENDING, None),
        ("TRADE_SUCCESS", None, PaymentStatus.PAID, None),
        ("TRADE_SUCCESS", 0, PaymentStatus.PAID, None),
        ("TRADE_SUCCESS", 30000, PaymentStatus.REFUNDED, 30000),
        ("TRADE_CLOSED", None, PaymentStatus.CLOSED, None),
        ("TRADE_CLOSED", 179500, PaymentStatus.REFUNDED, 179500),
        ("TRADE_FINISHED", None, PaymentStatus.PAID, None),
        ("TRADE_FINISHED", 30000, PaymentStatus.PAID, 30000),
    ],
)
def test_trade_status_mapping(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    *,
    trade_status: str,
    refund_fen: int | None,
    status: PaymentStatus,
    expected_refund: int | None,
) -> None:
    """trade_status plus a positive refund_fee decide the status.

    refund_fee 0.00 on a payment is no refund, and TRADE_FINISHED resent
    after a refund stays PAID while still reporting the refunded total.
    """
    params = _params(channel_keys, trade_status=trade_status, refund_fen=refund_fen)

    callback = _verify(alipay.sign_notification(channel_keys, params), verifier)

    assert callback.status is status
    assert callback.refund_fen == expected_refund


def test_partial_refunds_report_the_cumulative_total(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Two partial refunds: the second carries 300 + 200 yuan, not 200."""
    first = _params(
        channel_keys,
        notify_id="n-refund-1",
        refund_fen=30000,
        refunded_at=REFUNDED_AT,
        refund_request_id="RF-0001",
    )
    second = _params(
        channel_keys,
        notify_id="n-refund-2",
        refund_fen=50000,
        refunded_at=REFUNDED_AT + timedelta(hours=1),
        refund_request_id="RF-0002",
    )

    one = _verify(alipay.sign_notification(channel_keys, first), verifier)
    two = _verify(alipay.sign_notification(channel_keys, second), verifier)

    assert (one.status, one.refund_fen, one.refund_id) == (
        PaymentStatus.REFUNDED,
        30000,
        "RF-0001",
    )
    assert (two.refund_fen, two.refund_id) == (50000, "RF-0002")
    assert two.refund_is_cumulative is True
    assert two.refunded_at == REFUNDED_AT + timedelta(hours=1)
    assert two.amount_fen == 179500


def test_full_refund_closes_the_trade(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A full refund arrives as TRADE_CLOSED with refund_fee equal to the total."""
    params = _params(
        channel_keys,
        trade_status="TRADE_CLOSED",
        refund_fen=179500,
        refunded_at=REFUNDED_AT,
        refund_request_id="RF-0003",
    )

    callback = _verify(alipay.sign_notification(channel_keys, params), verifier)

    assert callback.status is PaymentStatus.REFUNDED
    assert callback.refund_fen == callback.amount_fen == 179500
    assert callback.refund_id == "RF-0003"


def test_rsa1_sign_type_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Only RSA2 (SHA-256) is accepted; the older SHA-1 RSA is not."""
    body = alipay.sign_notification(channel_keys, _params(channel_keys))

    with pytest.raises(SignatureError) as caught:
        _verify(body.replace(b"sign_type=RSA2", b"sign_type=RSA"), verifier)

    assert _reason(caught) == "bad_signature"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"total_amount": "1e3"}, "bad_amount"),
        ({"refund_fee": "-1.00"}, "bad_amount"),
        ({"trade_status": "TRADE_PENDING"}, "malformed"),
        ({"notify_time": "yesterday"}, "malformed"),
        ({"out_trade_no": ""}, "malformed"),
        ({"app_id": "2021000000009999"}, "wrong_merchant"),
    ],
)
def test_signed_but_unusable_notifications_are_poison(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    change: dict[str, str],
    reason: str,
) -> None:
    """A genuine signature does not make bad content acceptable."""
    body = alipay.sign_notification(channel_keys, {**_params(channel_keys), **change})

    with pytest.raises(PoisonError) as caught:
        _verify(body, verifier)

    assert _reason(caught) == reason
    assert not isinstance(caught.value, SignatureError)


def test_refusals_carry_no_personal_values(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A refusal message never repeats the buyer or any field value."""
    params = {**_params(channel_keys), "buyer_logon_id": "zhang.san@example.com"}
    body = alipay.sign_notification(channel_keys, params)
    tampered = body.replace(b"zhang.san", b"li.si")

    with pytest.raises(SignatureError) as caught:
        _verify(tampered, verifier)

    message = str(caught.value)
    assert "li.si" not in message
    assert "FEE-2024-0001" not in message
    assert "1795" not in message


def test_replies_are_what_alipay_expects() -> None:
    """Alipay stops resending only on exactly 'success'."""
    assert alipay.SUCCESS_REPLY == b"success"
    assert alipay.FAILURE_REPLY == b"fail"
