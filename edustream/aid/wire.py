"""Field conversions between aid records and their wire form.

Duties: one place that decides how times, dates and ids look in a record's
dict form. ``to_dict`` output must suit both fastavro and JSON (Faust table
state), so times are epoch milliseconds, dates are days since 1970-01-01 and
ids are strings. ``from_dict`` input may come from either: fastavro hands back
``datetime``, ``date`` and ``UUID`` objects for the logical types, JSON hands
back the plain numbers and strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from edustream.errors import PoisonError

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

MILLIS_PER_DAY = 86_400_000

Fields = Mapping[str, Any]


def to_millis(value: object) -> int:
    """Return ``value`` (epoch millis or an aware datetime) as epoch millis."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PoisonError("invalid_record", "a timestamp has no time zone")
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PoisonError("invalid_record", "a timestamp is not a number of millis")


def to_date(value: object) -> date:
    """Return ``value`` (a date or days since the epoch) as a date."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return date.fromordinal(_EPOCH_ORDINAL + value)
    raise PoisonError("invalid_record", "a date is not a date or a day number")


def to_optional_date(value: object) -> date | None:
    """Return ``value`` as a date, keeping ``None``."""
    return None if value is None else to_date(value)


def day_number(value: date) -> int:
    """Return ``value`` as days since 1970-01-01, the Avro ``date`` form."""
    return value.toordinal() - _EPOCH_ORDINAL


def optional_day_number(value: date | None) -> int | None:
    """Return ``value`` as a day number, keeping ``None``."""
    return None if value is None else day_number(value)


def to_text(value: object) -> str:
    """Return an id field (a string or a ``UUID``) as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise PoisonError("invalid_record", "an id field is not a string")


def to_optional_text(value: object) -> str | None:
    """Return an optional id or text field as a string, keeping ``None``."""
    return None if value is None else to_text(value)


@contextmanager
def reading(record: str) -> Iterator[None]:
    """Turn a missing or malformed field of ``record`` into a ``PoisonError``.

    The message names the record and the field, never the value, since values
    may be ID numbers or names.
    """
    try:
        yield
    except KeyError as exc:
        message = f"{record}: field {exc.args[0]!r} is missing"
        raise PoisonError("invalid_record", message) from exc
    except (ValueError, TypeError, AttributeError) as exc:
        message = f"{record}: a field has a malformed value"
        raise PoisonError("invalid_record", message) from exc
