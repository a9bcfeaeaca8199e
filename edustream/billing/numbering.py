"""Receipt numbers: consecutive within a receipt code, never reused.

Duties:

- allocate the number of a receipt, atomically in Redis: the number already
  given to that receipt id, or the next number of the series;
- allocate many receipts' numbers in one round trip, in the order asked; a
  red-letter receipt's together with reading its original's number, and
  only when the original has one;
- read back every allocation of a series, for checks and reconciliation.

Why one Lua script. Receipts are issued at least once: a worker can crash
after allocating and before its output is committed, and the replay asks
again for the same receipt id. Looking the id up and incrementing the
counter in one script means a replay gets its old number back and the
counter moves only for receipts never numbered, so the series has no gap
and no number twice, however many workers ask at once.

Keys, for a series ``S``: ``edustream:receipts:{S}:next`` (the last number
given) and ``edustream:receipts:{S}:numbers`` (receipt id -> number). The
braces are a Redis Cluster hash tag, so both keys of a series live in one
slot and the script may touch them together.

Capacity: a number has 10 digits and a receipt code names one year, so a
series cannot run out at the scale of one city.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from edustream.errors import RetriableError

_SERIES = re.compile(r"[0-9A-Za-z_-]{1,64}", re.ASCII)

_ALLOCATE = """
local given = redis.call('HGET', KEYS[2], ARGV[1])
if given then
    return tonumber(given)
end
local number = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], number)
return number
"""


# One series, many receipts, in the order given. ARGV holds pairs: a receipt
# id, then its original's id for a red-letter receipt or '' for a blue one.
# The reply holds a pair per receipt: its number, and its original's number
# (0 for a blue receipt). A red-letter receipt whose original has no number
# gets 0 and no number is used up: a number given to a receipt that is never
# printed would leave a gap in the series. Numbers start at 1.
_ALLOCATE_GROUP = """
local replies = {}
for i = 1, #ARGV, 2 do
    local number, original = 0, 0
    local found = true
    if ARGV[i + 1] ~= '' then
        found = redis.call('HGET', KEYS[2], ARGV[i + 1])
        if found then
            original = tonumber(found)
        end
    end
    if found then
        local given = redis.call('HGET', KEYS[2], ARGV[i])
        if given then
            number = tonumber(given)
        else
            number = redis.call('INCR', KEYS[1])
            redis.call('HSET', KEYS[2], ARGV[i], number)
        end
    end
    replies[#replies + 1] = number
    replies[#replies + 1] = original
end
return replies
"""


@dataclass(frozen=True)
class NumberRequest:
    """One receipt to number; a red-letter receipt names its original."""

    series: str
    receipt_id: str
    original_id: str | None = None


@dataclass(frozen=True)
class Numbered:
    """A receipt's number; a red-letter receipt's also carries its original's."""

    number: int
    original: int | None = None


class ReceiptNumberer:
    """Hands out receipt numbers per series (receipt code) from Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._allocate = redis.register_script(_ALLOCATE)
        self._allocate_group = redis.register_script(_ALLOCATE_GROUP)

    async def allocate(self, series: str, receipt_id: str) -> int:
        """The number of ``receipt_id`` in ``series``, given once for ever.

        Raises ``RetriableError`` when Redis fails; retrying is safe because
        the allocation either happened whole or not at all.
        """
        keys = series_keys(series)
        try:
            number = await self._allocate(keys=list(keys), args=[receipt_id])
        except RedisError as exc:
            raise RetriableError(f"receipt number allocation failed: {exc}") from exc

        return int(number)

    async def allocate_all(
        self, requests: Sequence[NumberRequest]
    ) -> list[Numbered | None]:
        """Every request's number, one script call per series, in order asked.

        Within a series the receipts are numbered one after another, so a
        red-letter receipt asked for after its original finds the original
        numbered. ``None`` for a red-letter receipt whose original has no
        number: it is not numbered either. Raises ``RetriableError`` when
        Redis fails; each script ran whole or not at all, so asking again
        is safe.
        """
        by_series: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            by_series.setdefault(request.series, []).append(index)

        numbered: list[Numbered | None] = [None] * len(requests)
        for series, indexes in by_series.items():
            given = await self._group(series, [requests[i] for i in indexes])
            for index, one in zip(indexes, given, strict=True):
                numbered[index] = one
        return numbered

    async def _group(
        self, series: str, requests: list[NumberRequest]
    ) -> list[Numbered | None]:
        """One script call numbering requests of one series, in order."""
        args: list[str] = []
        for request in requests:
            args += [request.receipt_id, request.original_id or ""]
        keys = list(series_keys(series))
        try:
            replies = await self._allocate_group(keys=keys, args=args)
        except RedisError as exc:
            raise RetriableError(f"receipt number allocation failed: {exc}") from exc

        pairs = zip(replies[::2], replies[1::2], strict=True)
        return [_numbered(int(number), int(original)) for number, original in pairs]

    async def lookup(self, series: str, receipt_id: str) -> int | None:
        """The number already given to ``receipt_id``, or ``None``."""
        _, numbers_key = series_keys(series)
        try:
            given: Any = await self._redis.hget(numbers_key, receipt_id)
        except RedisError as exc:
            raise RetriableError(f"receipt number lookup failed: {exc}") from exc

        return None if given is None else int(given)

    async def numbers(self, series: str) -> dict[str, int]:
        """Every receipt id numbered in ``series``, with its number."""
        _, numbers_key = series_keys(series)
        try:
            given: Any = await self._redis.hgetall(numbers_key)
        except RedisError as exc:
            raise RetriableError(f"receipt number listing failed: {exc}") from exc

        return {_text(receipt_id): int(number) for receipt_id, number in given.items()}


def series_keys(series: str) -> tuple[str, str]:
    """The Redis keys of a series: (last number given, id -> number)."""
    if not _SERIES.fullmatch(series):
        raise ValueError("a series is 1-64 letters, digits, '-' or '_'")

    prefix = f"edustream:receipts:{{{series}}}"
    return f"{prefix}:next", f"{prefix}:numbers"


def _numbered(number: int, original: int) -> Numbered | None:
    """A script's pair: 0 for no number, 0 for no original."""
    if number == 0:
        return None
    return Numbered(number=number, original=original or None)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
