"""Outputs of the order flow, numbered in groups and sent in decision order.

Duties:

- take an output as it is decided (a receipt or red-letter receipt to
  number, or a record with no number) and return at once with a future that
  resolves once the broker has stored what it became;
- number every receipt waiting, one Redis round trip per receipt series
  (``ReceiptNumberer.allocate_all``), then publish every waiting output in
  the order it was decided;
- remember which receipt ids this process numbered or is about to number,
  so a red-letter receipt can check its original without asking Redis.

Why. A receipt number costs one Redis round trip. Awaited inside every
callback, it was most of the time a callback took, and the flow decided one
callback per round trip. Here the flow decides on while the numbers of what
it decided are fetched together; numbers are still given in decision order,
so a red-letter receipt is numbered after its original, and each output is
sent after every output decided before it.

A group is gathered for ``GATHER_S`` before it is numbered. Without the
wait, callbacks arriving one by one were numbered one by one: a round trip
each, and on a busy machine every round trip also wakes Redis and gives up
the worker's core. Under load that cost a quarter of the worker's time; the
wait makes it one round trip per ``GATHER_S``, for that much latency.

A group's numbers are asked for again, whole, when Redis fails; an
allocation already made returns the same number, so the series keeps no gap.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edustream import metrics
from edustream.billing.numbering import Numbered, NumberRequest, ReceiptNumberer
from edustream.errors import RetriableError
from edustream.logs import get_logger

log = get_logger(component="issuing")

FLOW = "billing"

# What an output becomes once numbered: the sends it made, each a future that
# resolves when the broker stored the record. ``None`` for an output with no
# number, and for a red-letter receipt whose original has no number.
Publish = Callable[[Numbered | None], Awaitable[Sequence[Awaitable[Any]]]]

# Receipt ids remembered as numbered. A red-letter receipt whose original is
# not among them costs one Redis lookup; refunds come days after payments,
# so this only saves the lookup when both arrive close together (a replay,
# a backlog). At about 100 bytes each, 100,000 ids are 10 MB.
KNOWN_RECEIPTS = 100_000

_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

# How long outputs gather before a group is numbered (see the module).
GATHER_S = 0.01


@dataclass
class _Output:
    request: NumberRequest | None
    publish: Publish
    stored: asyncio.Future[None]


@dataclass
class ReceiptIssuer:
    """Numbers waiting receipts together and publishes outputs in order."""

    numberer: Callable[[], ReceiptNumberer]
    gather_s: float = GATHER_S
    _waiting: list[_Output] = field(default_factory=list)
    _known: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)
    _draining: asyncio.Task[None] | None = None

    def issue(self, request: NumberRequest | None, publish: Publish) -> Awaitable[None]:
        """Queue an output; the result resolves once its records are stored.

        ``request`` is the number the output needs, or ``None``. ``publish``
        gets the number (or ``None``) and sends the output's records.
        """
        loop = asyncio.get_running_loop()
        output = _Output(request, publish, loop.create_future())
        self._waiting.append(output)
        if request is not None and request.original_id is None:
            self._remember(request.series, request.receipt_id)
        if self._draining is None or self._draining.done():
            self._draining = loop.create_task(self._drain())
        return output.stored

    def numbered_here(self, series: str, receipt_id: str) -> bool:
        """Whether this process numbered the receipt, or queued it to be."""
        return (series, receipt_id) in self._known

    async def _drain(self) -> None:
        """Issue waiting outputs a group at a time until none is left."""
        while self._waiting:
            await asyncio.sleep(self.gather_s)
            group, self._waiting = self._waiting, []
            try:
                await self._issue(group)
            except Exception as exc:
                # Every waiter learns of it; the flow stops rather than
                # acknowledge inputs whose outputs were never sent.
                for output in group:
                    if not output.stored.done():
                        output.stored.set_exception(exc)

    async def _issue(self, group: list[_Output]) -> None:
        """Number the group, a round trip per series, then publish in order."""
        requests = [o.request for o in group if o.request is not None]
        numbers = await self._numbers(requests)
        given = iter(numbers)
        for output in group:
            numbered = next(given) if output.request is not None else None
            sends = await output.publish(numbered)
            _resolve_when_stored(output.stored, sends)

    async def _numbers(self, requests: list[NumberRequest]) -> list[Numbered | None]:
        """The requests' numbers; Redis failures are retried, never skipped."""
        attempt = 0
        while True:
            try:
                return await self.numberer().allocate_all(requests)
            except RetriableError as exc:
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                # Logged and counted as every flow's retries are, so the
                # retry alerts and dashboards see a Redis outage here too.
                metrics.RETRIES.labels(FLOW).inc()
                log.warning(
                    "retrying",
                    flow=FLOW,
                    step="receipt_numbering",
                    receipts=len(requests),
                    error=str(exc),
                    delay_s=delay,
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _remember(self, series: str, receipt_id: str) -> None:
        self._known[(series, receipt_id)] = None
        self._known.move_to_end((series, receipt_id))
        while len(self._known) > KNOWN_RECEIPTS:
            self._known.popitem(last=False)


def _resolve_when_stored(
    stored: asyncio.Future[None], sends: Sequence[Awaitable[Any]]
) -> None:
    """Resolve ``stored`` once every send resolved, or with the first error."""
    if not sends:
        stored.set_result(None)
        return

    def done(everything: asyncio.Future[list[Any]]) -> None:
        if stored.done():
            return
        if everything.cancelled():
            stored.cancel()
        elif (error := everything.exception()) is not None:
            stored.set_exception(error)
        else:
            stored.set_result(None)

    asyncio.gather(*sends).add_done_callback(done)
