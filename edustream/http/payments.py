"""Payment callback ingress: the channels' notification endpoints.

Duties:

- serve ``POST /callbacks/alipay`` (form), ``/callbacks/wechat`` (raw JSON
  with the ``Wechatpay-*`` headers) and ``/callbacks/unionpay`` (form);
- read the body up to ``settings.ingress_max_body_bytes`` and refuse a
  larger one with 413 before parsing anything;
- verify it with the channel's own verifier (``edustream.channels``) against
  the material loaded once at start-up from ``settings.channel_keys_dir``;
- publish the verified callback as a ``PaymentCallback`` on
  ``topics.billing.CALLBACKS``, keyed by order id, and only once the broker
  has acknowledged it reply success the way the channel expects (Alipay
  ``success``, WeChat Pay 204, UnionPay 200 ``ok``);
- record every refusal on ``topics.billing.REJECTED_CALLBACKS`` with its
  reason, then give the channel's failure reply.

Success is never replied for a callback that is not on the topic: when the
broker does not acknowledge within ``PUBLISH_TIMEOUT_S`` the reply is 503
and the channel resends. The send may still complete after the timeout, so
the topic can hold a callback twice; both copies carry the same event id
and notify id, and dropping resends is the billing flow's job.

Logs name the channel, the outcome and the reason, never a value from the
body: no order number, no amount, no signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from avro_schemas import default_codec
from edustream.billing.orders import PaymentEvent, PaymentSource
from edustream.billing.orders import PaymentStatus as EventStatus
from edustream.channels import alipay, unionpay, wechat
from edustream.channels.keys import VerifierConfig
from edustream.channels.normalised import Channel, NormalisedCallback
from edustream.errors import CodecError, ConfigError, PoisonError, RetriableError
from edustream.http.context import Context
from edustream.logs import get_logger
from edustream.settings import Settings
from topics import billing
from topics.spec import TopicSpec

log = get_logger(component="ingress")

CALLBACK_SCHEMA = "edustream.billing.PaymentCallback"
REJECTED_SCHEMA = "edustream.billing.RejectedCallback"
OVERSIZED = "oversized_body"

# UnionPay gives up on a reply after 10 s and the others soon after; a reply
# well inside that lets the channel count our 503 instead of a timeout.
PUBLISH_TIMEOUT_S = 5.0

_CALLBACK_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:billing:callbacks")
_REJECTION_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:billing:rejections")

# The headers verification reads; a refusal keeps these and no others, so a
# person can check the signature again by hand.
_KEPT_HEADERS = (
    "Content-Type",
    "Wechatpay-Serial",
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Wechatpay-Signature-Type",
)


def callback_event_id(channel: str, notify_id: str) -> str:
    """The event id of a callback: the same for every resend of it."""
    return str(uuid.uuid5(_CALLBACK_IDS, f"{channel}:{notify_id}"))


def payment_event(
    callback: NormalisedCallback, source: PaymentSource = PaymentSource.INGRESS
) -> PaymentEvent:
    """The billing flow's view of a verified callback.

    Raises ``PoisonError("invalid_record")`` for a callback the order state
    machine could misread, such as a zero order total.
    """
    return PaymentEvent(
        channel=str(callback.channel),
        notify_id=callback.notify_id,
        channel_txn_id=callback.channel_txn_id,
        order_id=callback.order_id,
        status=EventStatus(str(callback.status)),
        amount_fen=callback.amount_fen,
        notified_at=callback.notified_at,
        refund_is_cumulative=callback.refund_is_cumulative,
        paid_fen=callback.paid_fen,
        refund_fen=callback.refund_fen,
        refund_id=callback.refund_id,
        paid_at=callback.paid_at,
        refunded_at=callback.refunded_at,
        source=source,
    )


def callback_record(event: PaymentEvent, received_at: datetime) -> dict[str, Any]:
    """The ``PaymentCallback`` record of an event, with its stable id."""
    event_id = callback_event_id(event.channel, event.notify_id)
    return event.as_record(event_id=event_id, occurred_at=received_at)


def load_verifier(directory: Path) -> VerifierConfig | None:
    """Read the channels' verification material, or ``None`` if it is absent.

    The service also serves views that need no keys, so missing keys do not
    stop it; the callback endpoints then answer 503 and channels resend.
    """
    try:
        return VerifierConfig.load(directory)
    except ConfigError as exc:
        log.error("channel_keys_unavailable", directory=str(directory), error=str(exc))
        return None


def routes(app: web.Application, ctx: Context) -> None:
    """Add the three callback endpoints."""
    verifier = load_verifier(ctx.settings.channel_keys_dir)
    ingress = CallbackIngress(ctx.producer, ctx.settings, verifier)

    app.router.add_post("/callbacks/alipay", ingress.alipay)
    app.router.add_post("/callbacks/wechat", ingress.wechat)
    app.router.add_post("/callbacks/unionpay", ingress.unionpay)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a callback was refused, and what of it is kept."""

    reason: str
    message: str
    body_length: int
    body: bytes | None
    headers: dict[str, str]

    def as_record(self, channel: str, received_at: datetime) -> dict[str, Any]:
        """The ``RejectedCallback`` record; its id is stable per body."""
        body = self.body
        digest = hashlib.sha256(body).hexdigest() if body is not None else None
        identity = f"{channel}:{self.reason}:{digest or self.body_length}"
        return {
            "event_id": str(uuid.uuid5(_REJECTION_IDS, identity)),
            "occurred_at": received_at,
            "channel": channel,
            "reason": self.reason,
            "message": self.message,
            "body_length": self.body_length,
            "body_sha256": digest,
            "body": self.body,
            "headers": self.headers,
        }


class _OversizedError(Exception):
    """The body is larger than the ingress reads; ``length`` as far as known."""

    def __init__(self, length: int) -> None:
        super().__init__("body too large")
        self.length = length


Verify = Callable[[web.Request, bytes, VerifierConfig], NormalisedCallback]
Reply = Callable[[str, int], web.Response]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """One channel's verification and replies."""

    channel: Channel
    verify: Verify
    success: Callable[[], web.Response]
    failure: Reply


class CallbackIngress:
    """The request handlers, with what they share: producer, keys, limits."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        settings: Settings,
        verifier: VerifierConfig | None,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        self._producer = producer
        self._verifier = verifier
        self._max_body = settings.ingress_max_body_bytes
        self._window_s = settings.wechat_timestamp_window_s
        self._publish_timeout_s = publish_timeout_s
        self._codec = default_codec()
        self._wechat = _Endpoint(
            channel=Channel.WECHAT,
            verify=self._verify_wechat,
            success=_wechat_success,
            failure=_wechat_failure,
        )

    async def alipay(self, request: web.Request) -> web.Response:
        """``POST /callbacks/alipay``: a form body, replied ``success``."""
        return await self._handle(request, _ALIPAY)

    async def wechat(self, request: web.Request) -> web.Response:
        """``POST /callbacks/wechat``: raw JSON body, replied 204."""
        return await self._handle(request, self._wechat)

    async def unionpay(self, request: web.Request) -> web.Response:
        """``POST /callbacks/unionpay``: a form body, replied 200 ``ok``."""
        return await self._handle(request, _UNIONPAY)

    def _verify_wechat(
        self, request: web.Request, body: bytes, verifier: VerifierConfig
    ) -> NormalisedCallback:
        """Check the headers against the clock now, then the body."""
        return wechat.verify_notification(
            request.headers,
            body,
            verifier,
            now=datetime.now(UTC),
            window_s=self._window_s,
        )

    async def _handle(self, request: web.Request, endpoint: _Endpoint) -> web.Response:
        """Read, verify, publish, then reply; refuse and record on any fault."""
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        channel = str(endpoint.channel)
        if self._verifier is None:
            _log_outcome(channel, "keys_unavailable", 503, started)
            return endpoint.failure("unavailable", 503)

        try:
            body = await _read_body(request, self._max_body)
        except _OversizedError as big:
            refusal = Refusal(
                OVERSIZED,
                f"body over {self._max_body} bytes",
                big.length,
                None,
                _kept_headers(request.headers),
            )
            return await self._refuse(endpoint, refusal, 413, received_at, started)

        try:
            event = payment_event(endpoint.verify(request, body, self._verifier))
        except PoisonError as exc:
            refusal = Refusal(
                exc.reason, str(exc), len(body), body, _kept_headers(request.headers)
            )
            return await self._refuse(endpoint, refusal, 400, received_at, started)

        return await self._accept(endpoint, event, received_at, started)

    async def _accept(
        self,
        endpoint: _Endpoint,
        event: PaymentEvent,
        received_at: datetime,
        started: float,
    ) -> web.Response:
        """Publish a verified callback, then reply success."""
        channel = str(endpoint.channel)
        try:
            value = self._codec.encode(
                CALLBACK_SCHEMA, callback_record(event, received_at)
            )
        except CodecError:
            # Every field was already checked, so this is our bug, not the
            # channel's: ask for a resend rather than record a refusal.
            log.exception("callback_not_encodable", channel=channel)
            return endpoint.failure("internal_error", 500)

        try:
            await self._publish(billing.CALLBACKS, event.order_id.encode(), value)
        except RetriableError as exc:
            _log_outcome(channel, "unpublished", 503, started, error=str(exc))
            return endpoint.failure("unavailable", 503)

        reply = endpoint.success()
        _log_outcome(channel, "published", reply.status, started, payment=event.status)
        return reply

    async def _refuse(
        self,
        endpoint: _Endpoint,
        refusal: Refusal,
        status: int,
        received_at: datetime,
        started: float,
    ) -> web.Response:
        """Record a refusal on the rejected topic, then reply failure."""
        channel = str(endpoint.channel)
        record = refusal.as_record(channel, received_at)
        value = self._codec.encode(REJECTED_SCHEMA, record)

        try:
            await self._publish(billing.REJECTED_CALLBACKS, channel.encode(), value)
        except RetriableError as exc:
            # Unrecorded, the refusal would leave no trace; a 503 makes the
            # channel resend, and the resend is refused and recorded then.
            _log_outcome(
                channel,
                "refusal_unrecorded",
                503,
                started,
                reason=refusal.reason,
                error=str(exc),
            )
            return endpoint.failure("unavailable", 503)

        _log_outcome(channel, "rejected", status, started, reason=refusal.reason)
        return endpoint.failure(refusal.reason, status)

    async def _publish(self, spec: TopicSpec, key: bytes, value: bytes) -> None:
        """Send and wait for the broker's acknowledgement, within the timeout."""
        send = self._producer.send_and_wait(spec.name, value=value, key=key)
        try:
            await asyncio.wait_for(send, self._publish_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise RetriableError(f"publish failed: {type(exc).__name__}") from exc


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read the whole body, giving up as soon as it passes ``limit`` bytes.

    The declared ``Content-Length`` is checked first, so a large body is
    refused without reading it; a chunked one is cut off at ``limit + 1``.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _OversizedError(declared)

    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _OversizedError(size)


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers a refusal keeps, under their usual spelling."""
    return {name: headers[name] for name in _KEPT_HEADERS if name in headers}


def _log_outcome(
    channel: str, outcome: str, status: int, started: float, **fields: str
) -> None:
    """One line per callback: refusals as errors, the rest as debug."""
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    emit = log.debug if outcome == "published" else log.error
    emit(
        "callback_handled",
        channel=channel,
        outcome=outcome,
        http_status=status,
        duration_ms=elapsed_ms,
        **fields,
    )


def _verify_alipay(
    request: web.Request, body: bytes, verifier: VerifierConfig
) -> NormalisedCallback:
    return alipay.verify_notification(
        body, request.headers.get("Content-Type"), verifier
    )


def _verify_unionpay(
    request: web.Request, body: bytes, verifier: VerifierConfig
) -> NormalisedCallback:
    return unionpay.verify_notification(
        body, request.headers.get("Content-Type"), verifier
    )


def _alipay_success() -> web.Response:
    return web.Response(body=alipay.SUCCESS_REPLY, content_type="text/plain")


def _alipay_failure(reason: str, status: int) -> web.Response:
    # Alipay reads only the body: anything but "success" makes it resend.
    return web.Response(
        status=status, body=alipay.FAILURE_REPLY, content_type="text/plain"
    )


def _wechat_success() -> web.Response:
    status, body = wechat.SUCCESS_REPLY
    return web.Response(status=status, body=body or None)


def _wechat_failure(reason: str, status: int) -> web.Response:
    status, body = wechat.failure_reply(reason, status)
    return web.Response(status=status, body=body, content_type="application/json")


def _unionpay_success() -> web.Response:
    status, body = unionpay.SUCCESS_REPLY
    return web.Response(status=status, body=body, content_type="text/plain")


def _unionpay_failure(reason: str, status: int) -> web.Response:
    # UnionPay reads only the status: anything but 200 makes it resend.
    return web.Response(status=status, body=b"fail", content_type="text/plain")


_ALIPAY = _Endpoint(
    channel=Channel.ALIPAY,
    verify=_verify_alipay,
    success=_alipay_success,
    failure=_alipay_failure,
)
_UNIONPAY = _Endpoint(
    channel=Channel.UNIONPAY,
    verify=_verify_unionpay,
    success=_unionpay_success,
    failure=_unionpay_failure,
)
