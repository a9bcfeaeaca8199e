"""Receipt numbers: consecutive within a receipt code, never reused.

Duties:

- allocate the number of a receipt, atomically in Redis: the number already
  given to that receipt id, or the next number of the series;
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


class ReceiptNumberer:
    """Hands out receipt numbers per series (receipt code) from Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._allocate = redis.register_script(_ALLOCATE)

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


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
