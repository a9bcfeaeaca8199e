"""Alipay asynchronous trade notifications (``trade_status_sync``).

Duties, merchant side (production):

- verify a notification form body against the *Alipay* public key, never
  the app's own key: parse the form in its declared charset (GBK included),
  refuse repeated keys, drop ``sign`` and ``sign_type``, sort, join as
  ``k=v&...``, encode in that charset and check SHA256withRSA;
- check the notification is for our app;
- turn it into a ``NormalisedCallback``.

Duties, channel side (tests and the demo): build a realistic parameter set
and sign it the way Alipay does.

Values are verified exactly as they arrived. A field such as
``passback_params`` may hold HTML-escaped JSON (``{&quot;k&quot;:...}``);
unescaping it before verifying breaks the signature, so nothing here
unescapes. Whoever interprets such a field unescapes it afterwards.

The reply Alipay expects is exactly ``success``; anything else makes it
resend, about eight times over 25 hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from edustream.channels.forms import (
    codec_for,
    encode_form,
    form_codec,
    parse_form,
    required,
    signing_string,
)
from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.channels.money import fen_to_yuan, yuan_to_fen
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.channels.signatures import sign_sha256, verify_sha256
from edustream.channels.times import ALIPAY_FORMAT, format_beijing, parse_beijing
from edustream.errors import PoisonError, SignatureError

SUCCESS_REPLY = b"success"
FAILURE_REPLY = b"fail"
SIGN_TYPE = "RSA2"

_UNSIGNED = frozenset({"sign", "sign_type"})


def verify_notification(
    body: bytes, content_type: str | None, verifier: VerifierConfig
) -> NormalisedCallback:
    """Verify a raw notification body and return it normalised.

    Raises ``SignatureError`` (``bad_signature``) or ``PoisonError``
    (``malformed``, ``duplicate_field``, ``bad_charset``, ``bad_amount``,
    ``wrong_merchant``).
    """
    fields = _verified_fields(body, content_type, verifier)

    if required(fields, "app_id") != verifier.alipay_app_id:
        raise PoisonError("wrong_merchant", "notification is for another app")

    return _normalise(fields)


def _verified_fields(
    body: bytes, content_type: str | None, verifier: VerifierConfig
) -> dict[str, str]:
    """Parse the form and check its signature before any field is trusted."""
    codec = form_codec(body, "charset", content_type)
    fields = parse_form(body, codec)

    if fields.get("sign_type") != SIGN_TYPE:
        raise SignatureError("bad_signature", "sign_type is not RSA2")

    message = signing_string(fields, leave_out=_UNSIGNED).encode(codec)
    verify_sha256(verifier.alipay_public_key, message, required(fields, "sign"))
    return fields


def _normalise(fields: Mapping[str, str]) -> NormalisedCallback:
    """Map verified Alipay fields onto the channel-neutral callback.

    ``refund_fee`` is cumulative for the order. Alipay sends ``0.00`` on
    plain payments, so only a positive amount counts as a refund.
    ``TRADE_FINISHED`` (no more refunds possible) maps to ``PAID`` but keeps
    any ``refund_fee``, because Alipay sends it again after a partial refund
    and billing must not read it as a second payment.
    """
    refund_fen = _optional_fen(fields, "refund_fee") or None
    status = _status(required(fields, "trade_status"), refunded=refund_fen is not None)

    return NormalisedCallback(
        channel=Channel.ALIPAY,
        notify_id=required(fields, "notify_id"),
        channel_txn_id=required(fields, "trade_no"),
        order_id=required(fields, "out_trade_no"),
        status=status,
        amount_fen=yuan_to_fen(required(fields, "total_amount")),
        paid_fen=_optional_fen(fields, "receipt_amount"),
        refund_fen=refund_fen,
        refund_is_cumulative=True,
        refund_id=(fields.get("out_biz_no") or None) if refund_fen else None,
        paid_at=_optional_time(fields, "gmt_payment"),
        refunded_at=_optional_time(fields, "gmt_refund"),
        notified_at=parse_beijing(
            required(fields, "notify_time"), ALIPAY_FORMAT, "notify_time"
        ),
    )


def _status(trade_status: str, *, refunded: bool) -> PaymentStatus:
    """Map ``trade_status`` (and whether a refund is reported) to a status."""
    match trade_status:
        case "WAIT_BUYER_PAY":
            return PaymentStatus.PENDING
        case "TRADE_SUCCESS":
            return PaymentStatus.REFUNDED if refunded else PaymentStatus.PAID
        case "TRADE_FINISHED":
            return PaymentStatus.PAID
        case "TRADE_CLOSED":
            return PaymentStatus.REFUNDED if refunded else PaymentStatus.CLOSED
    raise PoisonError("malformed", "trade_status is not one Alipay sends")


def _optional_fen(fields: Mapping[str, str], name: str) -> int | None:
    """Return a yuan field in fen, or ``None`` when absent or empty."""
    value = fields.get(name)
    return yuan_to_fen(value) if value else None


def _optional_time(fields: Mapping[str, str], name: str) -> datetime | None:
    """Return a Beijing-time field as UTC, or ``None`` when absent or empty."""
    value = fields.get(name)
    return parse_beijing(value, ALIPAY_FORMAT, name) if value else None


# Channel side: used by tests and the demo to play Alipay.


def trade_params(
    keys: ChannelKeys,
    *,
    notify_id: str,
    trade_no: str,
    order_id: str,
    trade_status: str,
    total_fen: int,
    notified_at: datetime,
    paid_at: datetime | None = None,
    refund_fen: int | None = None,
    refunded_at: datetime | None = None,
    refund_request_id: str | None = None,
) -> dict[str, str]:
    """Build the unsigned fields of one notification, as Alipay fills them."""
    params = {
        "notify_time": format_beijing(notified_at, ALIPAY_FORMAT),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": keys.alipay_app_id,
        "version": "1.0",
        "trade_no": trade_no,
        "out_trade_no": order_id,
        "trade_status": trade_status,
        "total_amount": fen_to_yuan(total_fen),
    }
    if paid_at is not None:
        params["gmt_payment"] = format_beijing(paid_at, ALIPAY_FORMAT)
        params["receipt_amount"] = fen_to_yuan(total_fen)
    if refund_fen is not None:
        params["refund_fee"] = fen_to_yuan(refund_fen)
    if refunded_at is not None:
        params["gmt_refund"] = format_beijing(refunded_at, ALIPAY_FORMAT)
    if refund_request_id is not None:
        params["out_biz_no"] = refund_request_id
    return params


def sign_notification(
    keys: ChannelKeys, params: Mapping[str, str], charset: str = "utf-8"
) -> bytes:
    """Sign ``params`` with Alipay's private key and return the form body.

    Sets ``charset`` (unless ``params`` already names one) and
    ``sign_type=RSA2``; the body is URL-encoded in that charset.
    """
    fields = {"charset": charset, **params}
    codec = codec_for(fields["charset"])

    message = signing_string(fields, leave_out=_UNSIGNED).encode(codec)
    fields["sign"] = sign_sha256(keys.alipay_channel_key, message)
    fields["sign_type"] = SIGN_TYPE
    return encode_form(fields, codec)
