"""Channel timestamps, turned into UTC-aware datetimes.

Duties:

- read the offset-less Beijing-time stamps Alipay (``2024-09-01 08:30:00``)
  and UnionPay (``20240901083000``) send;
- read WeChat Pay's RFC 3339 stamps (``2024-09-01T08:30:00+08:00``);
- write both kinds back for the channel-side signers.

A stamp that does not parse is ``PoisonError(reason="malformed")``; the
message names the field, never the value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from edustream.errors import PoisonError

BEIJING = ZoneInfo("Asia/Shanghai")
ALIPAY_FORMAT = "%Y-%m-%d %H:%M:%S"
UNIONPAY_FORMAT = "%Y%m%d%H%M%S"


def parse_beijing(text: str, layout: str, field: str) -> datetime:
    """Read an offset-less Beijing-time stamp in ``layout`` as UTC."""
    try:
        local = datetime.strptime(text, layout)
    except ValueError as exc:
        raise PoisonError("malformed", f"{field} is not a valid time") from exc

    return local.replace(tzinfo=BEIJING).astimezone(UTC)


def parse_rfc3339(text: str, field: str) -> datetime:
    """Read an RFC 3339 stamp that carries its offset, as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PoisonError("malformed", f"{field} is not a valid time") from exc

    if moment.tzinfo is None:
        raise PoisonError("malformed", f"{field} has no UTC offset")
    return moment.astimezone(UTC)


def format_beijing(moment: datetime, layout: str) -> str:
    """Write an aware datetime as Beijing local time in ``layout``."""
    return moment.astimezone(BEIJING).strftime(layout)


def format_rfc3339(moment: datetime) -> str:
    """Write an aware datetime as RFC 3339 with the Beijing offset."""
    return moment.astimezone(BEIJING).isoformat(timespec="seconds")
