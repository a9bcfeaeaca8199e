"""Field conversions between aid records and their wire form.

Duties: one place that decides how times, dates and ids look in a record's
dict form. ``to_dict`` output must suit both fastavro and JSON (Faust table
state), so times are epoch milliseconds, dates are days since 1970-01-01 and
ids are strings. ``from_dict`` input may come from either: fastavro hands back
``datetime``, ``date`` and ``UUID`` objects for the logical types, JSON hands
back the plain numbers and strings.

``WireRecord`` gives a frozen dataclass both methods from its field types
(``Millis``, ``str``, ``int``, ``bool``, an enum, ``date``, their optional
forms, and a nested ``WireRecord`` flattened under its field name), so each
record states its fields once and the Avro schema mirrors them.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Annotated, Any, Self

from edustream.errors import PoisonError

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

MILLIS_PER_DAY = 86_400_000

Fields = Mapping[str, Any]

# A point in time as epoch milliseconds; fastavro may hand back a datetime.
Millis = Annotated[int, "timestamp-millis"]


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


class _Field(typing.NamedTuple):
    """How one field of a record is written and read."""

    name: str
    write: Callable[[Any], Any]
    read: Callable[[Any], Any]
    optional: bool = False
    # A nested record, flattened into the parent as ``{name}_{field}``.
    nested: type[WireRecord] | None = None


class WireRecord:
    """``to_dict`` and ``from_dict`` for a frozen dataclass, from its types."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the record as an Avro/JSON-ready dict."""
        out: dict[str, Any] = {}
        for field in _fields(type(self)):
            value = getattr(self, field.name)
            if field.nested is None:
                out[field.name] = field.write(value)
                continue
            for inner, item in value.to_dict().items():
                out[f"{field.name}_{inner}"] = item
        return out

    @classmethod
    def from_dict(cls, data: Fields) -> Self:
        """Build the record from a decoded Avro or JSON dict."""
        with reading(cls.__name__):
            return cls.read_fields(data, "")

    @classmethod
    def read_fields(cls, data: Fields, prefix: str) -> Self:
        """Build the record from the fields of data whose names start with prefix."""
        values: dict[str, Any] = {}
        for field in _fields(cls):
            key = prefix + field.name
            if field.nested is not None:
                values[field.name] = field.nested.read_fields(data, f"{key}_")
            elif field.optional:
                values[field.name] = field.read(data.get(key))
            else:
                values[field.name] = field.read(data[key])
        return cls(**values)


_FIELDS: dict[type, tuple[_Field, ...]] = {}


def _fields(cls: type) -> tuple[_Field, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = dataclasses.fields(cls)
        found = _FIELDS[cls] = tuple(_field(f.name, hints[f.name]) for f in fields)
    return found


def _field(name: str, hint: Any) -> _Field:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        plain = _field(name, inner)
        return _Field(name, _keeping_none(plain.write), _keeping_none(plain.read), True)
    if hint == Millis:
        return _Field(name, _same, to_millis)
    if isinstance(hint, type) and issubclass(hint, WireRecord):
        return _Field(name, _same, _same, nested=hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _Field(name, _enum_value, hint)
    if hint not in _SIMPLE:
        raise TypeError(f"{name}: no wire form for {hint!r}")
    write, read = _SIMPLE[hint]
    return _Field(name, write, read)


def _same(value: Any) -> Any:
    return value


def _enum_value(value: enum.Enum) -> Any:
    return value.value


def _keeping_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


_SIMPLE: dict[Any, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    str: (_same, to_text),
    int: (_same, int),
    bool: (_same, bool),
    date: (day_number, to_date),
}
