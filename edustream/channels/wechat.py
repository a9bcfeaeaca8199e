"""WeChat Pay API v3 notifications (payments and refunds).

Duties, merchant side (production):

- check the ``Wechatpay-*`` headers: a platform serial we trust, a
  timestamp inside the window (both stale and future stamps are refused),
  and SHA256withRSA over ``timestamp\\nnonce\\nbody\\n`` using the *raw* body
  bytes. JSON that was parsed and dumped again no longer matches;
- decrypt the ``resource`` (AEAD_AES_256_GCM with the APIv3 key; the
  base64 ciphertext ends with the 16-byte tag);
- check the notification is for our merchant id;
- turn it into a ``NormalisedCallback``.

Duties, channel side (tests and the demo): build realistic resources,
encrypt and sign them the way WeChat Pay does.

A refund notification reports that one refund's amount, not the order's
running total, so ``refund_is_cumulative`` is false for this channel.

Replies: WeChat Pay takes 200 or 204 with an empty body as received. A
failure is 4xx/5xx with ``{"code": "FAIL", "message": ...}``; WeChat Pay then
retries for about 24 hours, after which the merchant must query the order.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.channels.normalised import Channel, NormalisedCallback, PaymentStatus
from edustream.channels.signatures import sign_sha256, verify_sha256
from edustream.channels.times import format_rfc3339, parse_rfc3339
from edustream.errors import PoisonError, SignatureError

ALGORITHM = "AEAD_AES_256_GCM"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
SUCCESS_REPLY: tuple[int, bytes] = (204, b"")
DEFAULT_WINDOW_S = 300

_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_REFUND_STATUSES = {
    "REFUND.SUCCESS": PaymentStatus.REFUNDED,
    "REFUND.ABNORMAL": PaymentStatus.REFUND_FAILED,
    "REFUND.CLOSED": PaymentStatus.REFUND_FAILED,
}
_SUMMARIES = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}
_NONCE_ALPHABET = string.ascii_letters + string.digits
_RESOURCE_NONCE_LENGTH = 12


class _SignedHeaders(NamedTuple):
    """The four ``Wechatpay-*`` headers a notification must carry."""

    serial: str
    timestamp: str
    nonce: str
    signature: str


def verify_notification(
    headers: Mapping[str, str],
    body: bytes,
    verifier: VerifierConfig,
    *,
    now: datetime,
    window_s: int = DEFAULT_WINDOW_S,
) -> NormalisedCallback:
    """Verify, decrypt and normalise one notification.

    ``now`` is an aware datetime; the ``Wechatpay-Timestamp`` must be within
    ``window_s`` seconds of it either way. Raises ``SignatureError``
    (``unknown_serial``, ``stale_timestamp``, ``bad_signature``,
    ``decrypt_failed``) or ``PoisonError`` (``malformed``, ``bad_amount``,
    ``wrong_merchant``).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    signed = _signed_headers(headers)
    key = verifier.wechat_platform_keys.get(signed.serial.upper())
    if key is None:
        raise SignatureError("unknown_serial", "platform serial is not trusted")
    _check_fresh(signed.timestamp, now, window_s)

    message = f"{signed.timestamp}\n{signed.nonce}\n".encode("ascii") + body + b"\n"
    verify_sha256(key, message, signed.signature)

    envelope = _json_object(body, "body")
    resource = _decrypt(_object(envelope, "resource"), verifier.wechat_apiv3_key)
    if _text(resource, "mchid") != verifier.wechat_mchid:
        raise PoisonError("wrong_merchant", "notification is for another merchant")

    return _normalise(envelope, resource)


def failure_reply(message: str, status: int = 500) -> tuple[int, bytes]:
    """Return the (status, body) that asks WeChat Pay to retry.

    ``message`` is shown in the merchant console: pass a reason code, never
    a value from the notification.
    """
    if not 400 <= status <= 599:
        raise ValueError("a failure reply needs a 4xx or 5xx status")

    body = {"code": "FAIL", "message": message}
    return status, json.dumps(body, ensure_ascii=False).encode("utf-8")


def _signed_headers(headers: Mapping[str, str]) -> _SignedHeaders:
    """Pick the ``Wechatpay-*`` headers, whatever their case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        return _SignedHeaders(
            serial=lowered["wechatpay-serial"],
            timestamp=lowered["wechatpay-timestamp"],
            nonce=lowered["wechatpay-nonce"],
            signature=lowered["wechatpay-signature"],
        )
    except KeyError as exc:
        raise PoisonError("malformed", f"header {exc.args[0]} is missing") from exc


def _check_fresh(timestamp: str, now: datetime, window_s: int) -> None:
    """Refuse a timestamp more than ``window_s`` seconds from ``now``.

    A future stamp is refused too: it is either a clock far off or a
    notification prepared to be replayed later.
    """
    if not _TIMESTAMP.fullmatch(timestamp):
        raise PoisonError("malformed", "Wechatpay-Timestamp is not epoch seconds")

    if abs(now.timestamp() - int(timestamp)) > window_s:
        raise SignatureError("stale_timestamp", "timestamp is outside the window")


def _decrypt(resource: Mapping[str, Any], apiv3_key: bytes) -> dict[str, Any]:
    """Decrypt the resource and parse the plaintext JSON object."""
    if resource.get("algorithm") != ALGORITHM:
        raise PoisonError("malformed", "resource algorithm is not AEAD_AES_256_GCM")
    nonce = _text(resource, "nonce").encode("utf-8")
    associated = str(resource.get("associated_data") or "").encode("utf-8")

    try:
        sealed = base64.b64decode(_text(resource, "ciphertext"), validate=True)
        plaintext = AESGCM(apiv3_key).decrypt(nonce, sealed, associated)
    except (binascii.Error, ValueError, InvalidTag) as exc:
        raise SignatureError("decrypt_failed", "resource does not decrypt") from exc

    return _json_object(plaintext, "resource plaintext")


def _normalise(
    envelope: Mapping[str, Any], resource: Mapping[str, Any]
) -> NormalisedCallback:
    """Map the decrypted resource onto the channel-neutral callback."""
    event_type = _text(envelope, "event_type")
    common = {
        "channel": Channel.WECHAT,
        "notify_id": _text(envelope, "id"),
        "channel_txn_id": _text(resource, "transaction_id"),
        "order_id": _text(resource, "out_trade_no"),
        "notified_at": parse_rfc3339(_text(envelope, "create_time"), "create_time"),
        "refund_is_cumulative": False,
    }
    amount = _object(resource, "amount")

    if event_type == "TRANSACTION.SUCCESS":
        return _transaction(resource, amount, common)
    if event_type in _REFUND_STATUSES:
        return _refund(resource, amount, _REFUND_STATUSES[event_type], common)
    raise PoisonError("malformed", "event_type is not one we handle")


def _transaction(
    resource: Mapping[str, Any], amount: Mapping[str, Any], common: dict[str, Any]
) -> NormalisedCallback:
    """Normalise a ``TRANSACTION.SUCCESS`` resource."""
    if _text(resource, "trade_state") != "SUCCESS":
        raise PoisonError("malformed", "trade_state is not SUCCESS")

    return NormalisedCallback(
        **common,
        status=PaymentStatus.PAID,
        amount_fen=_fen(amount, "total"),
        paid_fen=_fen(amount, "payer_total"),
        paid_at=parse_rfc3339(_text(resource, "success_time"), "success_time"),
    )


def _refund(
    resource: Mapping[str, Any],
    amount: Mapping[str, Any],
    status: PaymentStatus,
    common: dict[str, Any],
) -> NormalisedCallback:
    """Normalise a ``REFUND.*`` resource; ``refund_fen`` is this refund only."""
    refunded_at = None
    if status is PaymentStatus.REFUNDED:
        refunded_at = parse_rfc3339(_text(resource, "success_time"), "success_time")

    return NormalisedCallback(
        **common,
        status=status,
        amount_fen=_fen(amount, "total"),
        paid_fen=_fen(amount, "payer_total"),
        refund_fen=_fen(amount, "refund"),
        refund_id=_text(resource, "out_refund_no"),
        refunded_at=refunded_at,
    )


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse bytes that must hold one JSON object."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PoisonError("malformed", f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise PoisonError("malformed", f"{what} is not a JSON object")
    return value


def _object(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """Return a nested JSON object or raise ``malformed``."""
    value = parent.get(name)
    if not isinstance(value, dict):
        raise PoisonError("malformed", f"{name} is missing or not an object")
    return value


def _text(parent: Mapping[str, Any], name: str) -> str:
    """Return a non-empty JSON string or raise ``malformed``."""
    value = parent.get(name)
    if not isinstance(value, str) or not value:
        raise PoisonError("malformed", f"{name} is missing or not a string")
    return value


def _fen(amount: Mapping[str, Any], name: str) -> int:
    """Return a JSON integer amount in fen or raise ``bad_amount``."""
    value = amount.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PoisonError("bad_amount", f"amount.{name} is not a fen integer")
    return value


# Channel side: used by tests and the demo to play WeChat Pay.


def transaction_resource(
    keys: ChannelKeys,
    *,
    order_id: str,
    transaction_id: str,
    total_fen: int,
    paid_at: datetime,
) -> dict[str, Any]:
    """Build the plaintext of a ``TRANSACTION.SUCCESS`` resource."""
    return {
        "mchid": keys.wechat_mchid,
        "appid": "wx0000000000000001",
        "out_trade_no": order_id,
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": format_rfc3339(paid_at),
        "payer": {"openid": "o-test-payer"},
        "amount": {
            "total": total_fen,
            "payer_total": total_fen,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }


def refund_resource(
    keys: ChannelKeys,
    *,
    order_id: str,
    transaction_id: str,
    refund_request_id: str,
    refund_id: str,
    total_fen: int,
    refund_fen: int,
    refund_status: str,
    refunded_at: datetime | None,
) -> dict[str, Any]:
    """Build the plaintext of a ``REFUND.*`` resource.

    ``refund_status`` is ``SUCCESS``, ``ABNORMAL`` or ``CLOSED``; only a
    successful refund carries ``success_time``.
    """
    resource: dict[str, Any] = {
        "mchid": keys.wechat_mchid,
        "out_trade_no": order_id,
        "transaction_id": transaction_id,
        "out_refund_no": refund_request_id,
        "refund_id": refund_id,
        "refund_status": refund_status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": total_fen,
            "refund": refund_fen,
            "payer_total": total_fen,
            "payer_refund": refund_fen,
        },
    }
    if refunded_at is not None:
        resource["success_time"] = format_rfc3339(refunded_at)
    return resource


def sign_notification(
    keys: ChannelKeys,
    transaction: Mapping[str, Any],
    event_type: str,
    *,
    timestamp: int,
    nonce: str,
    notification_id: str,
) -> tuple[dict[str, str], bytes]:
    """Encrypt ``transaction`` into a notification and sign it.

    Returns the ``Wechatpay-*`` headers and the raw, compact JSON body.
    """
    original_type = "refund" if event_type.startswith("REFUND.") else "transaction"
    envelope = {
        "id": notification_id,
        "create_time": format_rfc3339(datetime.fromtimestamp(timestamp, UTC)),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": _SUMMARIES.get(event_type, ""),
        "resource": _encrypt(keys.wechat_apiv3_key, transaction, original_type),
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()

    message = f"{timestamp}\n{nonce}\n".encode("ascii") + body + b"\n"
    headers = {
        "Content-Type": "application/json",
        "Wechatpay-Serial": keys.wechat_serial,
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign_sha256(keys.wechat_platform_key, message),
        "Wechatpay-Signature-Type": SIGNATURE_TYPE,
    }
    return headers, body


def _encrypt(
    apiv3_key: bytes, plaintext: Mapping[str, Any], original_type: str
) -> dict[str, str]:
    """Seal ``plaintext`` the way WeChat Pay fills ``resource``."""
    nonce = "".join(
        secrets.choice(_NONCE_ALPHABET) for _ in range(_RESOURCE_NONCE_LENGTH)
    )
    data = json.dumps(plaintext, ensure_ascii=False, separators=(",", ":")).encode()
    sealed = AESGCM(apiv3_key).encrypt(
        nonce.encode("ascii"), data, original_type.encode("ascii")
    )

    return {
        "original_type": original_type,
        "algorithm": ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": original_type,
        "nonce": nonce,
    }
