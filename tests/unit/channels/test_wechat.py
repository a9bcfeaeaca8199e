"""WeChat Pay v3 notifications: headers, raw-body signatures, decryption."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edustream.channels import wechat
from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.errors import PoisonError, SignatureError

NOW = datetime(2024, 9, 2, 1, 30, tzinfo=UTC)
TIMESTAMP = int(NOW.timestamp())
PAID_AT = NOW - timedelta(seconds=5)
ORDER = "FEE-2024-0002"
TRANSACTION = "4200002024090200000000000002"


def _payment(keys: ChannelKeys) -> tuple[dict[str, str], bytes]:
    """A signed TRANSACTION.SUCCESS for a 2,300-yuan fee."""
    resource = wechat.transaction_resource(
        keys,
        order_id=ORDER,
        transaction_id=TRANSACTION,
        total_fen=230000,
        paid_at=PAID_AT,
    )
    return _sign(keys, resource, "TRANSACTION.SUCCESS")


def _refund(
    keys: ChannelKeys, event_type: str, refund_status: str
) -> tuple[dict[str, str], bytes]:
    """A signed REFUND.* notification for a 500-yuan refund."""
    resource = wechat.refund_resource(
        keys,
        order_id=ORDER,
        transaction_id=TRANSACTION,
        refund_request_id="RF-0002",
        refund_id="50300000002024090200000000001",
        total_fen=230000,
        refund_fen=50000,
        refund_status=refund_status,
        refunded_at=NOW if refund_status == "SUCCESS" else None,
    )
    return _sign(keys, resource, event_type)


def _sign(
    keys: ChannelKeys, resource: dict[str, Any], event_type: str
) -> tuple[dict[str, str], bytes]:
    """Sign with the fixed timestamp and a notification id per event."""
    return wechat.sign_notification(
        keys,
        resource,
        event_type,
        timestamp=TIMESTAMP,
        nonce="5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        notification_id=f"EV-{event_type}",
    )


def _verify(
    headers: dict[str, str], body: bytes, verifier: VerifierConfig, now: datetime = NOW
) -> NormalisedCallback:
    """Verify at ``now`` with the default five-minute window."""
    return wechat.verify_notification(headers, body, verifier, now=now)


def test_payment_round_trips(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A signed, encrypted payment comes back as a PAID callback."""
    headers, body = _payment(channel_keys)

    callback = _verify(headers, body, verifier)

    assert callback == NormalisedCallback(
        channel=Channel.WECHAT,
        notify_id="EV-TRANSACTION.SUCCESS",
        channel_txn_id=TRANSACTION,
        order_id=ORDER,
        status=PaymentStatus.PAID,
        amount_fen=230000,
        paid_fen=230000,
        refund_is_cumulative=False,
        paid_at=PAID_AT,
        notified_at=NOW,
    )


def test_wire_format_matches_wechat_pay(channel_keys: ChannelKeys) -> None:
    """Headers, envelope and resource use the v3 names; the body is compact."""
    headers, body = _payment(channel_keys)
    envelope = json.loads(body)
    resource = envelope["resource"]
    sealed = base64.b64decode(resource["ciphertext"])

    plaintext = AESGCM(channel_keys.wechat_apiv3_key).decrypt(
        resource["nonce"].encode(), sealed, resource["associated_data"].encode()
    )

    assert set(headers) >= {
        "Wechatpay-Signature",
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Serial",
    }
    assert headers["Wechatpay-Serial"] == channel_keys.wechat_serial
    assert envelope["create_time"] == "2024-09-02T09:30:00+08:00"
    assert envelope["resource_type"] == "encrypt-resource"
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    assert len(resource["nonce"]) == 12
    assert json.loads(plaintext)["amount"]["total"] == 230000
    compact = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    assert body == compact.encode()


def test_successful_refund_reports_that_refund_only(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """REFUND.SUCCESS carries this refund's amount, marked not cumulative."""
    headers, body = _refund(channel_keys, "REFUND.SUCCESS", "SUCCESS")

    callback = _verify(headers, body, verifier)

    assert callback.status is PaymentStatus.REFUNDED
    assert callback.refund_fen == 50000
    assert callback.refund_is_cumulative is False
    assert callback.refund_id == "RF-0002"
    assert callback.amount_fen == 230000
    assert callback.refunded_at == NOW
    assert callback.channel_txn_id == TRANSACTION


@pytest.mark.parametrize(
    ("event_type", "refund_status"),
    [("REFUND.ABNORMAL", "ABNORMAL"), ("REFUND.CLOSED", "CLOSED")],
)
def test_failed_refunds_are_refund_failed(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    event_type: str,
    refund_status: str,
) -> None:
    """Abnormal and closed refunds map to REFUND_FAILED with no refund time."""
    headers, body = _refund(channel_keys, event_type, refund_status)

    callback = _verify(headers, body, verifier)

    assert callback.status is PaymentStatus.REFUND_FAILED
    assert callback.refunded_at is None
    assert callback.refund_id == "RF-0002"


def test_reserialised_json_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Parsing and dumping the body again (new spacing) breaks the signature."""
    headers, body = _payment(channel_keys)
    reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()

    with pytest.raises(SignatureError) as caught:
        _verify(headers, reserialised, verifier)

    assert reserialised != body
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("offset_s", "accepted"),
    [(-301, False), (-300, True), (0, True), (300, True), (301, False)],
)
def test_timestamp_window(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    offset_s: int,
    accepted: bool,
) -> None:
    """Stale and future timestamps outside five minutes are refused."""
    headers, body = _payment(channel_keys)
    now = NOW + timedelta(seconds=offset_s)

    if accepted:
        assert _verify(headers, body, verifier, now).order_id == ORDER
        return
    with pytest.raises(SignatureError) as caught:
        _verify(headers, body, verifier, now)
    assert caught.value.reason == "stale_timestamp"


def test_unknown_serial_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A platform serial we do not hold is refused before any crypto."""
    headers, body = _payment(channel_keys)
    headers["Wechatpay-Serial"] = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"

    with pytest.raises(SignatureError) as caught:
        _verify(headers, body, verifier)

    assert caught.value.reason == "unknown_serial"


def test_other_key_under_our_serial_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A signature by a different key, claiming our serial, does not verify."""
    impostor = dataclasses.replace(
        channel_keys, wechat_platform_key=channel_keys.alipay_app_key
    )
    headers, body = _payment(impostor)

    with pytest.raises(SignatureError) as caught:
        _verify(headers, body, verifier)

    assert caught.value.reason == "bad_signature"


def test_tampered_body_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Changing any byte of the signed body breaks the signature."""
    headers, body = _payment(channel_keys)

    with pytest.raises(SignatureError) as caught:
        _verify(
            headers, body.replace(b"TRANSACTION.SUCCESS", b"REFUND.SUCCESS"), verifier
        )

    assert caught.value.reason == "bad_signature"


def test_wrong_apiv3_key_fails_to_decrypt(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A verified body whose resource does not open is decrypt_failed."""
    headers, body = _payment(channel_keys)
    wrong_key = dataclasses.replace(verifier, wechat_apiv3_key=b"0" * 32)

    with pytest.raises(SignatureError) as caught:
        _verify(headers, body, wrong_key)

    assert caught.value.reason == "decrypt_failed"


def test_header_names_are_case_insensitive(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """HTTP servers lowercase header names; verification still works."""
    headers, body = _payment(channel_keys)
    lowered = {name.lower(): value for name, value in headers.items()}

    assert _verify(lowered, body, verifier).order_id == ORDER


def test_missing_signature_header_is_malformed(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A request without the signature header is not a notification."""
    headers, body = _payment(channel_keys)
    del headers["Wechatpay-Signature"]

    with pytest.raises(PoisonError) as caught:
        _verify(headers, body, verifier)

    assert caught.value.reason == "malformed"


def test_other_merchant_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A genuine notification for another merchant id is wrong_merchant."""
    headers, body = _payment(channel_keys)
    other = dataclasses.replace(verifier, wechat_mchid="1900000999")

    with pytest.raises(PoisonError) as caught:
        _verify(headers, body, other)

    assert caught.value.reason == "wrong_merchant"


def test_non_integer_amount_is_bad_amount(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Amounts must be JSON integers in fen, never yuan strings."""
    resource = wechat.transaction_resource(
        channel_keys,
        order_id=ORDER,
        transaction_id=TRANSACTION,
        total_fen=230000,
        paid_at=PAID_AT,
    )
    resource["amount"]["total"] = "2300.00"
    headers, body = _sign(channel_keys, resource, "TRANSACTION.SUCCESS")

    with pytest.raises(PoisonError) as caught:
        _verify(headers, body, verifier)

    assert caught.value.reason == "bad_amount"
    assert "2300" not in str(caught.value)


def test_replies() -> None:
    """Success is 204 with no body; failure is 5xx with code FAIL."""
    status, body = wechat.failure_reply("bad_signature")

    assert wechat.SUCCESS_REPLY == (204, b"")
    assert status == 500
    assert json.loads(body) == {"code": "FAIL", "message": "bad_signature"}
    with pytest.raises(ValueError, match="4xx or 5xx"):
        wechat.failure_reply("x", status=200)
