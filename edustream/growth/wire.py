"""Field conversions between growth records and their dict form.

Duties: one place that decides how times and ids look in a record's dict
form, and one guard that turns a malformed dict into a poison input.
``to_dict`` output must suit both fastavro and JSON (Faust table state), so
times are epoch milliseconds and ids are strings. ``from_dict`` input may come
from either: fastavro hands back ``datetime`` and ``UUID`` objects for the
logical types, JSON hands back plain numbers and strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from edustream.errors import PoisonError

Fields = Mapping[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MILLI = timedelta(milliseconds=1)


def to_millis(value: object) -> int:
    """Return ``value`` (epoch millis or an aware datetime) as epoch millis."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PoisonError("invalid_record", "a timestamp has no time zone")
        # Integer arithmetic: float seconds would round some millis away.
        return (value - _EPOCH) // _ONE_MILLI
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PoisonError("invalid_record", "a timestamp is not a number of millis")


def to_optional_millis(value: object) -> int | None:
    """Return ``value`` as epoch millis, keeping ``None``."""
    return None if value is None else to_millis(value)


def to_text(value: object) -> str:
    """Return an id or text field (a string or a ``UUID``) as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise PoisonError("invalid_record", "a text field is not a string")


def to_optional_text(value: object) -> str | None:
    """Return an optional id or text field as a string, keeping ``None``."""
    return None if value is None else to_text(value)


def to_int(value: object) -> int:
    """Return a whole-number field, refusing booleans and floats."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PoisonError("invalid_record", "a number field is not an integer")


def to_optional_int(value: object) -> int | None:
    """Return a whole-number field, keeping ``None``."""
    return None if value is None else to_int(value)


def to_bool(value: object) -> bool:
    """Return a flag field, refusing anything but a boolean."""
    if isinstance(value, bool):
        return value
    raise PoisonError("invalid_record", "a flag field is not a boolean")


def millis_to_datetime(millis: int) -> datetime:
    """Return epoch ``millis`` as an aware UTC datetime."""
    return _EPOCH + millis * _ONE_MILLI


@contextmanager
def reading(record: str) -> Iterator[None]:
    """Turn a missing or malformed field of ``record`` into a poison input.

    The message names the record and the missing key, never a value: a
    malformed value may be personal data.
    """
    try:
        yield
    except KeyError as exc:
        raise PoisonError(
            "invalid_record", f"{record} lacks field {exc.args[0]!s}"
        ) from exc
    except (ValueError, TypeError) as exc:
        raise PoisonError("invalid_record", f"{record} has a malformed field") from exc
