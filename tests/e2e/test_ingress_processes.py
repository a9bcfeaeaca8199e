"""The ingress served by several processes sharing one port.

With ``ingress_processes`` at two, a helper process binds the same port
(``SO_REUSEPORT``); every connection, whichever process takes it, gets its
callback verified and published, and the helper stops with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from avro_schemas import default_codec
from edustream.channels.keys import ChannelKeys, generate_test_keys
from edustream.errors import CodecError, ConfigError
from edustream.http.server import serve
from edustream.settings import Settings, get_settings
from infra.broker import free_port
from tests.e2e.signed_callbacks import (
    SignedCallback,
    alipay_paid,
    new_order_id,
    unionpay_paid,
    wechat_paid,
)
from topics import billing

pytestmark = pytest.mark.e2e

CALLBACKS = 12


@pytest.fixture
def keys() -> ChannelKeys:
    """A fresh channel key set."""
    return generate_test_keys()


@pytest.fixture
def settings(keys: ChannelKeys, tmp_path: Path) -> Settings:
    """Two ingress processes on a fixed free port, loading ``keys``."""
    keys.save(tmp_path / "keys")
    return get_settings().model_copy(
        update={
            "channel_keys_dir": tmp_path / "keys",
            "ingress_port": free_port(),
            "ingress_processes": 2,
        }
    )


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` on this machine."""
    wanted = f":{port:04X}"
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()]
    return sum(1 for row in rows[1:] if row[1].endswith(wanted) and row[3] == "0A")


async def _until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def _post_fresh(base: str, callback: SignedCallback) -> int:
    """POST on a connection of its own, so the kernel picks a process anew."""
    headers = {**callback.headers, "Connection": "close"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + callback.path, data=callback.body, headers=headers) as resp,
    ):
        await resp.read()
        return resp.status


async def _published(bootstrap: str, orders: set[str]) -> set[str]:
    """Which of ``orders`` are on the callbacks topic."""
    codec = default_codec()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: set[str] = set()
    try:
        name = billing.CALLBACKS.name
        parts = [
            TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + 20
        while found != orders and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    with contextlib.suppress(CodecError):
                        _schema, record = codec.decode(message.value)
                        if record.get("order_id") in orders:
                            found.add(record["order_id"])
    finally:
        await consumer.stop()
    return found


async def test_two_processes_share_the_port_and_stop_together(
    bootstrap: str, redis_url: str, keys: ChannelKeys, settings: Settings
) -> None:
    """Both bind the port; every callback is published; both stop on cancel."""
    port = settings.ingress_port
    builders = (alipay_paid, wechat_paid, unionpay_paid)
    callbacks = [builders[i % 3](keys, new_order_id()) for i in range(CALLBACKS)]
    service = asyncio.create_task(serve(settings, bootstrap, redis_url))

    try:
        await _until(lambda: _listeners(port) == 2)
        base = f"http://{settings.ingress_host}:{port}"
        statuses = [await _post_fresh(base, c) for c in callbacks]
    finally:
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service

    assert all(status in {200, 204} for status in statuses), statuses
    orders = {c.order_id for c in callbacks}
    assert await _published(bootstrap, orders) == orders
    await _until(lambda: _listeners(port) == 0, timeout_s=15)


async def test_several_processes_without_a_fixed_port_are_refused(
    settings: Settings,
) -> None:
    """Port 0 would give each process a port of its own: start-up stops."""
    unfixed = settings.model_copy(update={"ingress_port": 0})

    with pytest.raises(ConfigError, match="fixed ingress_port"):
        await serve(unfixed, "127.0.0.1:1", "redis://127.0.0.1:1/0")
