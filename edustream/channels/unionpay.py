"""UnionPay online (ACP 5.1.0) back notifications: consumes and refunds.

Duties, merchant side (production):

- verify a back-notification form: parse it strictly in its ``encoding``,
  sort the fields minus ``signature``, join as ``k=v&...``, take the
  lowercase hex SHA-256 of that string and check SHA256withRSA over the hex
  text (``signMethod=01``, ``version=5.1.0``);
- choose the certificate: by ``certId`` (the certificate's decimal serial)
  from the certificates we hold, or, when the notification embeds its
  certificate in ``signPubKeyCert`` as live 5.1.0 traffic does, only if that
  certificate is byte-for-byte one we hold. Pinning stands in for the CFCA
  chain check UnionPay's SDK does; a certificate we were not given is
  refused with ``unknown_cert``;
- check the notification is for our merchant id;
- turn it into a ``NormalisedCallback``: ``txnType`` 01 (consume) pays,
  04 (refund) and 31 (same-day consume cancellation) refund; ``respCode``
  00 or A6 means success.

A refund notification's ``orderId`` is the refund request's own number and
``txnAmt`` that refund's amount; ``origQryId`` names the consume it
reverses. It carries neither our order number nor the order total, so our
refund request puts both in ``reqReserved`` (see ``refund_reserved``), which
UnionPay echoes in the notification, the query answer and the bill file.

Duties, channel side (tests and the demo): build and sign notifications the
way UnionPay does.

Replies: UnionPay treats HTTP 200 (or 302) within 10 seconds as received and
ignores the body; we answer ``ok``. Any other status makes it resend, five
times in all, at growing intervals of a few minutes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from edustream.channels.forms import (
    encode_form,
    form_codec,
    parse_form,
    required,
    signing_string,
)
from edustream.channels.keys import ChannelKeys, VerifierConfig, unionpay_cert_id
from edustream.channels.money import fen_text_to_fen
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.channels.signatures import sign_sha256, verify_sha256
from edustream.channels.times import UNIONPAY_FORMAT, format_beijing, parse_beijing
from edustream.errors import PoisonError, SignatureError

VERSION = "5.1.0"
SIGN_METHOD = "01"
SUCCESS_REPLY: tuple[int, bytes] = (200, b"ok")
FAILURE_REPLY: tuple[int, bytes] = (500, b"fail")

_UNSIGNED = frozenset({"signature"})
_SUCCESS_CODES = frozenset({"00", "A6"})
_CONSUME = "01"
_REVERSALS = frozenset({"04", "31"})
_RESERVED_SEPARATOR = "|"
_CODEC = "utf-8"


def verify_notification(
    body: bytes, content_type: str | None, verifier: VerifierConfig
) -> NormalisedCallback:
    """Verify a raw back-notification body and return it normalised.

    Raises ``SignatureError`` (``unknown_cert``, ``bad_signature``) or
    ``PoisonError`` (``malformed``, ``duplicate_field``, ``bad_charset``,
    ``bad_amount``, ``wrong_merchant``).
    """
    fields = _verified_fields(body, content_type, verifier)

    if required(fields, "merId") != verifier.unionpay_mer_id:
        raise PoisonError("wrong_merchant", "notification is for another merchant")

    return _normalise(fields)


def refund_reserved(order_id: str, order_fen: int) -> str:
    """Return the ``reqReserved`` our refund request sends: ``order|total``.

    UnionPay's own guidance is letters, digits and ``|`` in this field; other
    symbols can break its query answers.
    """
    if _RESERVED_SEPARATOR in order_id:
        raise ValueError("order id must not contain '|'")
    return f"{order_id}{_RESERVED_SEPARATOR}{order_fen}"


def _verified_fields(
    body: bytes, content_type: str | None, verifier: VerifierConfig
) -> dict[str, str]:
    """Parse the form and check its signature before any field is trusted."""
    codec = form_codec(body, "encoding", content_type)
    fields = parse_form(body, codec)

    if fields.get("signMethod") != SIGN_METHOD or fields.get("version") != VERSION:
        raise SignatureError("bad_signature", "only signMethod 01 on 5.1.0 is read")
    key = _signing_key(fields, verifier)

    verify_sha256(key, _digest(fields, codec), required(fields, "signature"))
    return fields


def _digest(fields: Mapping[str, str], codec: str) -> bytes:
    """Return the lowercase hex SHA-256 of the signing string, as ASCII."""
    text = signing_string(fields, leave_out=_UNSIGNED)
    return hashlib.sha256(text.encode(codec)).hexdigest().encode("ascii")


def _signing_key(
    fields: Mapping[str, str], verifier: VerifierConfig
) -> rsa.RSAPublicKey:
    """Return the public key of the certificate the notification names."""
    cert_id = fields.get("certId")
    embedded = fields.get("signPubKeyCert")
    if cert_id:
        cert = verifier.unionpay_certs.get(cert_id)
    elif embedded:
        cert = _pinned(embedded, verifier)
    else:
        cert = None
    if cert is None:
        raise SignatureError("unknown_cert", "signing certificate is not trusted")

    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("unknown_cert", "signing certificate is not RSA")
    return key


def _pinned(pem: str, verifier: VerifierConfig) -> x509.Certificate | None:
    """Return our copy of an embedded certificate, or ``None`` if we lack it."""
    try:
        embedded = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (UnicodeEncodeError, ValueError):
        return None

    ours = verifier.unionpay_certs.get(unionpay_cert_id(embedded))
    return ours if ours == embedded else None


def _normalise(fields: Mapping[str, str]) -> NormalisedCallback:
    """Map verified UnionPay fields onto the channel-neutral callback."""
    txn_type = required(fields, "txnType")
    if txn_type == _CONSUME:
        return _consume(fields)
    if txn_type in _REVERSALS:
        return _reversal(fields)
    raise PoisonError("malformed", "txnType is not a consume or a refund")


def _consume(fields: Mapping[str, str]) -> NormalisedCallback:
    """Normalise a consume; a failed one closes the order unpaid."""
    succeeded = required(fields, "respCode") in _SUCCESS_CODES
    query_id = required(fields, "queryId")
    txn_fen = fen_text_to_fen(required(fields, "txnAmt"))
    txn_time = parse_beijing(required(fields, "txnTime"), UNIONPAY_FORMAT, "txnTime")

    return NormalisedCallback(
        channel=Channel.UNIONPAY,
        notify_id=query_id,
        channel_txn_id=query_id,
        order_id=required(fields, "orderId"),
        status=PaymentStatus.PAID if succeeded else PaymentStatus.CLOSED,
        amount_fen=txn_fen,
        paid_fen=txn_fen if succeeded else None,
        paid_at=txn_time if succeeded else None,
        notified_at=txn_time,
        refund_is_cumulative=False,
    )


def _reversal(fields: Mapping[str, str]) -> NormalisedCallback:
    """Normalise a refund or cancellation; ``refund_fen`` is this one only."""
    succeeded = required(fields, "respCode") in _SUCCESS_CODES
    order_id, order_fen = _read_reserved(required(fields, "reqReserved"))
    txn_time = parse_beijing(required(fields, "txnTime"), UNIONPAY_FORMAT, "txnTime")

    return NormalisedCallback(
        channel=Channel.UNIONPAY,
        notify_id=required(fields, "queryId"),
        channel_txn_id=required(fields, "origQryId"),
        order_id=order_id,
        status=PaymentStatus.REFUNDED if succeeded else PaymentStatus.REFUND_FAILED,
        amount_fen=order_fen,
        refund_fen=fen_text_to_fen(required(fields, "txnAmt")),
        refund_id=required(fields, "orderId"),
        refunded_at=txn_time if succeeded else None,
        notified_at=txn_time,
        refund_is_cumulative=False,
    )


def _read_reserved(reserved: str) -> tuple[str, int]:
    """Read ``order|total`` back from ``reqReserved``."""
    order_id, separator, order_fen = reserved.partition(_RESERVED_SEPARATOR)
    if not order_id or not separator or _RESERVED_SEPARATOR in order_fen:
        raise PoisonError("malformed", "reqReserved is not order|total")
    return order_id, fen_text_to_fen(order_fen)


# Channel side: used by tests and the demo to play UnionPay.


def consume_params(
    keys: ChannelKeys,
    *,
    order_id: str,
    query_id: str,
    txn_fen: int,
    txn_time: datetime,
    resp_code: str = "00",
) -> dict[str, str]:
    """Build the unsigned fields of a consume back notification."""
    return {
        **_common_params(keys, query_id, txn_time, resp_code),
        "txnType": _CONSUME,
        "txnSubType": "01",
        "orderId": order_id,
        "txnAmt": str(txn_fen),
        "settleAmt": str(txn_fen),
    }


def refund_params(
    keys: ChannelKeys,
    *,
    refund_request_id: str,
    query_id: str,
    orig_query_id: str,
    order_id: str,
    order_fen: int,
    refund_fen: int,
    txn_time: datetime,
    resp_code: str = "00",
) -> dict[str, str]:
    """Build the unsigned fields of a refund back notification."""
    return {
        **_common_params(keys, query_id, txn_time, resp_code),
        "txnType": "04",
        "txnSubType": "00",
        "orderId": refund_request_id,
        "origQryId": orig_query_id,
        "reqReserved": refund_reserved(order_id, order_fen),
        "txnAmt": str(refund_fen),
        "settleAmt": str(refund_fen),
    }


def sign_notification(
    keys: ChannelKeys, params: Mapping[str, str], *, embed_cert: bool = False
) -> bytes:
    """Sign ``params`` with UnionPay's key and return the UTF-8 form body.

    Names the certificate by ``certId``, or embeds it in ``signPubKeyCert``
    when ``embed_cert`` is set, as live 5.1.0 notifications do.
    """
    fields = {"version": VERSION, "signMethod": SIGN_METHOD, **params}
    if embed_cert:
        pem = keys.unionpay_sign_cert.public_bytes(Encoding.PEM)
        fields["signPubKeyCert"] = pem.decode("ascii")
    else:
        fields["certId"] = keys.unionpay_cert_id

    fields["signature"] = sign_sha256(keys.unionpay_sign_key, _digest(fields, _CODEC))
    return encode_form(fields, _CODEC)


def _common_params(
    keys: ChannelKeys, query_id: str, txn_time: datetime, resp_code: str
) -> dict[str, str]:
    """Fields every back notification carries."""
    succeeded = resp_code in _SUCCESS_CODES
    return {
        "accessType": "0",
        "bizType": "000201",
        "currencyCode": "156",
        "encoding": "UTF-8",
        "merId": keys.unionpay_mer_id,
        "queryId": query_id,
        "respCode": resp_code,
        "respMsg": "成功[0000000]" if succeeded else "交易失败",
        "settleCurrencyCode": "156",
        "settleDate": format_beijing(txn_time, "%m%d"),
        "traceNo": query_id[-6:].rjust(6, "0"),
        "traceTime": format_beijing(txn_time, "%m%d%H%M%S"),
        "txnTime": format_beijing(txn_time, UNIONPAY_FORMAT),
    }
