"""Signed payment callbacks, as each channel would POST them to the ingress.

Shared by the ingress tests at both levels. Every builder signs with the
channel's own key through ``edustream.channels`` and returns the path,
headers and raw body to send, plus the ids a test matches outputs on.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edustream.channels import alipay, unionpay, wechat
from edustream.channels.keys import ChannelKeys

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class SignedCallback:
    """One notification ready to send."""

    path: str
    headers: dict[str, str]
    body: bytes
    order_id: str
    notify_id: str
    channel: str


def new_order_id() -> str:
    """A fresh order id every channel accepts: 8-32 letters and digits."""
    return "T" + uuid.uuid4().hex[:24]


def alipay_paid(
    keys: ChannelKeys,
    order_id: str,
    total_fen: int = 12_300,
    *,
    charset: str = "utf-8",
    overrides: Mapping[str, str] | None = None,
    signed_by_app_key: bool = False,
    now: datetime | None = None,
) -> SignedCallback:
    """A ``TRADE_SUCCESS`` notification; ``overrides`` replace fields."""
    moment = now or datetime.now(UTC)
    notify_id = uuid.uuid4().hex
    params = alipay.trade_params(
        keys,
        notify_id=notify_id,
        trade_no="2025" + uuid.uuid4().hex[:24],
        order_id=order_id,
        trade_status="TRADE_SUCCESS",
        total_fen=total_fen,
        notified_at=moment,
        paid_at=moment,
    )
    params.update(overrides or {})

    signer = keys
    if signed_by_app_key:
        signer = dataclasses.replace(keys, alipay_channel_key=keys.alipay_app_key)
    body = alipay.sign_notification(signer, params, charset=charset)
    headers = {"Content-Type": f"{FORM}; charset={charset}"}
    return SignedCallback(
        "/callbacks/alipay", headers, body, order_id, notify_id, "alipay"
    )


def wechat_paid(
    keys: ChannelKeys,
    order_id: str,
    total_fen: int = 12_300,
    *,
    timestamp: int | None = None,
    amount: Mapping[str, Any] | None = None,
) -> SignedCallback:
    """A ``TRANSACTION.SUCCESS`` notification, stamped now unless told.

    ``amount`` replaces the resource's ``amount`` object before sealing.
    """
    moment = datetime.now(UTC)
    stamp = timestamp if timestamp is not None else int(moment.timestamp())
    notify_id = str(uuid.uuid4())
    resource = wechat.transaction_resource(
        keys,
        order_id=order_id,
        transaction_id="4200" + uuid.uuid4().hex[:24],
        total_fen=total_fen,
        paid_at=moment,
    )
    if amount is not None:
        resource["amount"] = dict(amount)
    headers, body = wechat.sign_notification(
        keys,
        resource,
        "TRANSACTION.SUCCESS",
        timestamp=stamp,
        nonce=secrets.token_hex(16),
        notification_id=notify_id,
    )
    return SignedCallback(
        "/callbacks/wechat", headers, body, order_id, notify_id, "wechat"
    )


def reserialised(callback: SignedCallback) -> SignedCallback:
    """The same WeChat notification after a parse and a pretty dump."""
    body = json.dumps(json.loads(callback.body), indent=2, ensure_ascii=True).encode()
    return dataclasses.replace(callback, body=body)


def unionpay_paid(
    keys: ChannelKeys,
    order_id: str,
    txn_fen: int = 12_300,
    *,
    overrides: Mapping[str, str] | None = None,
) -> SignedCallback:
    """A successful consume back notification; ``overrides`` replace fields."""
    query_id = str(uuid.uuid4().int)[:21]
    params = unionpay.consume_params(
        keys,
        order_id=order_id,
        query_id=query_id,
        txn_fen=txn_fen,
        txn_time=datetime.now(UTC),
    )
    params.update(overrides or {})
    body = unionpay.sign_notification(keys, params)
    headers = {"Content-Type": f"{FORM}; charset=UTF-8"}
    return SignedCallback(
        "/callbacks/unionpay", headers, body, order_id, query_id, "unionpay"
    )
