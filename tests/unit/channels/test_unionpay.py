"""UnionPay ACP 5.1.0 back notifications: hex-digest signatures and certIds."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from edustream.channels import unionpay
from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.errors import PoisonError, SignatureError

NOW = datetime(2024, 9, 2, 1, 30, tzinfo=UTC)
REFUNDED_AT = NOW + timedelta(days=1)
ORDER = "FEE20240902000003"
CONSUME_QUERY_ID = "782409020930001234567"
REFUND_QUERY_ID = "782409030930009876543"


def _consume(keys: ChannelKeys, resp_code: str = "00") -> dict[str, str]:
    """An 1,250-yuan boarding-fee consume."""
    return unionpay.consume_params(
        keys,
        order_id=ORDER,
        query_id=CONSUME_QUERY_ID,
        txn_fen=125000,
        txn_time=NOW,
        resp_code=resp_code,
    )


def _refund(keys: ChannelKeys, resp_code: str = "00") -> dict[str, str]:
    """A 250-yuan refund of that consume."""
    return unionpay.refund_params(
        keys,
        refund_request_id="RF20240903000001",
        query_id=REFUND_QUERY_ID,
        orig_query_id=CONSUME_QUERY_ID,
        order_id=ORDER,
        order_fen=125000,
        refund_fen=25000,
        txn_time=REFUNDED_AT,
        resp_code=resp_code,
    )


def _verify(body: bytes, verifier: VerifierConfig) -> NormalisedCallback:
    """Verify with the content type UnionPay sends."""
    return unionpay.verify_notification(
        body, "application/x-www-form-urlencoded; charset=UTF-8", verifier
    )


def _foreign_cert() -> x509.Certificate:
    """A self-signed certificate we were never given."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not ours")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_consume_round_trips(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A signed consume comes back as a PAID callback keyed by queryId."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))

    callback = _verify(body, verifier)

    assert callback == NormalisedCallback(
        channel=Channel.UNIONPAY,
        notify_id=CONSUME_QUERY_ID,
        channel_txn_id=CONSUME_QUERY_ID,
        order_id=ORDER,
        status=PaymentStatus.PAID,
        amount_fen=125000,
        paid_fen=125000,
        refund_is_cumulative=False,
        paid_at=NOW,
        notified_at=NOW,
    )


def test_signature_is_rsa_sha256_over_the_hex_digest(channel_keys: ChannelKeys) -> None:
    """Independent check: sorted k=v& minus signature, hex SHA-256, then RSA."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))
    fields = dict(parse_qsl(body.decode("ascii")))

    signature = base64.b64decode(fields.pop("signature"))
    joined = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()

    assert fields["signMethod"] == "01"
    assert fields["version"] == "5.1.0"
    assert fields["certId"] == channel_keys.unionpay_cert_id
    assert fields["txnAmt"] == "125000"
    assert fields["txnTime"] == "20240902093000"
    channel_keys.unionpay_sign_key.public_key().verify(
        signature, digest.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize(
    ("resp_code", "status"),
    [
        ("00", PaymentStatus.PAID),
        ("A6", PaymentStatus.PAID),
        ("12", PaymentStatus.CLOSED),
    ],
)
def test_resp_code_decides_success(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    resp_code: str,
    status: PaymentStatus,
) -> None:
    """00 and A6 are success; any other code leaves the order unpaid."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys, resp_code))

    callback = _verify(body, verifier)

    assert callback.status is status
    assert callback.paid_fen == (125000 if status is PaymentStatus.PAID else None)


def test_refund_links_the_original_consume(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A refund reports its own amount, the consume's queryId and our order."""
    body = unionpay.sign_notification(channel_keys, _refund(channel_keys))

    callback = _verify(body, verifier)

    assert callback == NormalisedCallback(
        channel=Channel.UNIONPAY,
        notify_id=REFUND_QUERY_ID,
        channel_txn_id=CONSUME_QUERY_ID,
        order_id=ORDER,
        status=PaymentStatus.REFUNDED,
        amount_fen=125000,
        refund_fen=25000,
        refund_is_cumulative=False,
        refund_id="RF20240903000001",
        refunded_at=REFUNDED_AT,
        notified_at=REFUNDED_AT,
    )


def test_failed_refund_is_refund_failed(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A refund with a failure respCode is REFUND_FAILED with no refund time."""
    body = unionpay.sign_notification(channel_keys, _refund(channel_keys, "03"))

    callback = _verify(body, verifier)

    assert callback.status is PaymentStatus.REFUND_FAILED
    assert callback.refunded_at is None


def test_tampered_amount_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Changing txnAmt after signing breaks the signature."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))

    with pytest.raises(SignatureError) as caught:
        _verify(body.replace(b"txnAmt=125000", b"txnAmt=125"), verifier)

    assert caught.value.reason == "bad_signature"


def test_unknown_cert_id_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A certId we do not hold is refused before any signature check."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))
    cert_id = channel_keys.unionpay_cert_id.encode()

    with pytest.raises(SignatureError) as caught:
        _verify(body.replace(b"certId=" + cert_id, b"certId=69629715588"), verifier)

    assert caught.value.reason == "unknown_cert"


def test_embedded_certificate_we_hold_verifies(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Live 5.1.0 traffic embeds signPubKeyCert; ours is pinned and accepted."""
    body = unionpay.sign_notification(
        channel_keys, _consume(channel_keys), embed_cert=True
    )

    callback = _verify(body, verifier)

    assert b"certId=" not in body
    assert callback.status is PaymentStatus.PAID


def test_embedded_foreign_certificate_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """An embedded certificate we were not given is unknown_cert, even if it signs."""
    foreign = dataclasses.replace(channel_keys, unionpay_sign_cert=_foreign_cert())
    body = unionpay.sign_notification(foreign, _consume(channel_keys), embed_cert=True)

    with pytest.raises(SignatureError) as caught:
        _verify(body, verifier)

    assert caught.value.reason == "unknown_cert"


def test_no_certificate_named_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Without certId or signPubKeyCert there is no key to check against."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))
    fields = dict(parse_qsl(body.decode("ascii")))
    del fields["certId"]

    with pytest.raises(SignatureError) as caught:
        _verify(urlencode(fields).encode("ascii"), verifier)

    assert caught.value.reason == "unknown_cert"


def test_duplicate_field_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """A repeated key is refused, as for Alipay."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))

    with pytest.raises(PoisonError) as caught:
        _verify(body + b"&respCode=00", verifier)

    assert caught.value.reason == "duplicate_field"


def test_other_sign_method_is_refused(
    channel_keys: ChannelKeys, verifier: VerifierConfig
) -> None:
    """Only signMethod 01 (RSA certificate) on version 5.1.0 is read."""
    body = unionpay.sign_notification(channel_keys, _consume(channel_keys))

    with pytest.raises(SignatureError) as caught:
        _verify(body.replace(b"signMethod=01", b"signMethod=11"), verifier)

    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"merId": "777290058119999"}, "wrong_merchant"),
        ({"txnType": "71"}, "malformed"),
        ({"txnAmt": "1250.00"}, "bad_amount"),
        ({"txnTime": "2024-09-02"}, "malformed"),
    ],
)
def test_signed_but_unusable_consumes_are_poison(
    channel_keys: ChannelKeys,
    verifier: VerifierConfig,
    change: dict[str, str],
    reason: str,
) -> None:
    """A genuine signature does not make bad content acceptable."""
    body = unionpay.sign_notification(
        channel_keys, {**_consume(channel_keys), **change}
    )

    with pytest.raises(PoisonError) as caught:
        _verify(body, verifier)

    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("reserved", "reason"),
    [
        ("", "malformed"),
        ("FEE1", "malformed"),
        ("|125000", "malformed"),
        ("FEE1|12|5", "malformed"),
        ("FEE1|", "bad_amount"),
        ("FEE1|12.50", "bad_amount"),
    ],
)
def test_refund_needs_order_and_total_in_req_reserved(
    channel_keys: ChannelKeys, verifier: VerifierConfig, reserved: str, reason: str
) -> None:
    """A refund must echo order|total in reqReserved to be linked to a bill."""
    params = {**_refund(channel_keys), "reqReserved": reserved}
    body = unionpay.sign_notification(channel_keys, params)

    with pytest.raises(PoisonError) as caught:
        _verify(body, verifier)

    assert caught.value.reason == reason


def test_refund_reserved_refuses_the_separator() -> None:
    """An order id containing '|' could not be read back, so it is refused."""
    assert unionpay.refund_reserved("FEE1", 125000) == "FEE1|125000"
    with pytest.raises(ValueError, match="'\\|'"):
        unionpay.refund_reserved("FEE|1", 1)


def test_replies() -> None:
    """UnionPay reads the HTTP status: 200 is received, anything else resends."""
    assert unionpay.SUCCESS_REPLY == (200, b"ok")
    assert unionpay.FAILURE_REPLY[0] != 200
