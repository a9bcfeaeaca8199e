"""The issuer: outputs numbered in groups and published in decision order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest

from edustream.billing.issuing import ReceiptIssuer
from edustream.billing.numbering import Numbered, NumberRequest
from edustream.errors import RetriableError


class Numberer:
    """Numbers in memory; fails the first ``failures`` calls like Redis down."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.groups: list[list[str]] = []

    async def allocate_all(
        self, requests: Sequence[NumberRequest]
    ) -> list[Numbered | None]:
        if self.failures:
            self.failures -= 1
            raise RetriableError("redis down")
        self.groups.append([r.receipt_id for r in requests])
        start = sum(len(group) for group in self.groups[:-1])
        return [Numbered(start + i + 1) for i in range(len(requests))]


def recorder(log: list[tuple[str, int | None]], name: str) -> Any:
    """A publish function that records what it was given and sends nothing."""

    async def publish(numbered: Numbered | None) -> Sequence[Awaitable[Any]]:
        log.append((name, None if numbered is None else numbered.number))
        return []

    return publish


async def test_outputs_queued_together_are_numbered_once_in_order() -> None:
    """Outputs queued before the issuer runs share one numbering call and are
    published in the order queued, unnumbered ones in their place."""
    numberer = Numberer()
    issuer = ReceiptIssuer(numberer=lambda: numberer)
    log: list[tuple[str, int | None]] = []

    stored = [
        issuer.issue(NumberRequest("S", "r1"), recorder(log, "r1")),
        issuer.issue(None, recorder(log, "exception")),
        issuer.issue(NumberRequest("S", "r2"), recorder(log, "r2")),
    ]
    await asyncio.gather(*stored)

    assert numberer.groups == [["r1", "r2"]]
    assert log == [("r1", 1), ("exception", None), ("r2", 2)]
    assert issuer.numbered_here("S", "r1")
    assert not issuer.numbered_here("S", "r3")


async def test_outputs_decided_within_the_gathering_wait_share_a_group() -> None:
    """An output queued while the first one's group is still gathering is
    numbered in the same call, not in a round trip of its own."""
    numberer = Numberer()
    issuer = ReceiptIssuer(numberer=lambda: numberer, gather_s=0.05)
    log: list[tuple[str, int | None]] = []

    first = issuer.issue(NumberRequest("S", "r1"), recorder(log, "r1"))
    await asyncio.sleep(0.01)  # the issuer has started, and is gathering
    second = issuer.issue(NumberRequest("S", "r2"), recorder(log, "r2"))
    await asyncio.gather(first, second)

    assert numberer.groups == [["r1", "r2"]]
    assert log == [("r1", 1), ("r2", 2)]


async def test_a_redis_failure_is_retried_and_nothing_is_skipped() -> None:
    """Numbering that fails with a retriable error is asked again; the
    output is published once, with its number."""
    numberer = Numberer(failures=1)
    issuer = ReceiptIssuer(numberer=lambda: numberer)
    log: list[tuple[str, int | None]] = []

    await issuer.issue(NumberRequest("S", "r1"), recorder(log, "r1"))

    assert log == [("r1", 1)]


async def test_a_failed_publish_reaches_every_waiter_of_its_group() -> None:
    """An output that cannot be published fails its group's futures, so no
    input behind them is acknowledged."""
    numberer = Numberer()
    issuer = ReceiptIssuer(numberer=lambda: numberer)

    async def broken(_: Numbered | None) -> Sequence[Awaitable[Any]]:
        raise ValueError("cannot encode")

    first = issuer.issue(NumberRequest("S", "r1"), broken)
    second = issuer.issue(NumberRequest("S", "r2"), recorder([], "r2"))

    with pytest.raises(ValueError, match="cannot encode"):
        await first
    with pytest.raises(ValueError, match="cannot encode"):
        await second
