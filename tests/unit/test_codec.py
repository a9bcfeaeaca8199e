"""The Avro codec: Confluent wire format, ids from the file registry, errors."""

from __future__ import annotations

import struct

import pytest

from avro_schemas import FileSchemaRegistry, default_codec
from edustream.errors import CodecError

DEAD = "edustream.common.DeadLetter"


def _dead_letter() -> dict[str, object]:
    return {
        "event_id": "0b1f7f5e-0000-4000-8000-000000000001",
        "occurred_at": 1_790_000_000_000,
        "flow": "aid",
        "reason": "undecodable",
        "message": "body does not decode",
        "source_topic": "aid.registry-changes",
        "source_partition": 3,
        "source_offset": 42,
        "original_key": b"k",
        "original_value": b"\x00\x01",
    }


def test_round_trip_keeps_every_field() -> None:
    """A record encoded then decoded comes back unchanged under its name."""
    codec = default_codec()
    name, record = codec.decode(codec.encode(DEAD, _dead_letter()))
    assert name == DEAD
    assert record["source_offset"] == 42
    assert record["original_value"] == b"\x00\x01"
    assert str(record["event_id"]) == "0b1f7f5e-0000-4000-8000-000000000001"


def test_wire_header_is_magic_zero_and_big_endian_id() -> None:
    """Byte 0 is 0 and bytes 1..4 are the registry's id for the schema."""
    codec = default_codec()
    data = codec.encode(DEAD, _dead_letter())
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == FileSchemaRegistry().id_for(DEAD)


def test_every_schema_file_loads_with_a_distinct_id() -> None:
    """All .avsc files parse and get distinct, stable ids."""
    registry = FileSchemaRegistry()
    names = registry.names()
    assert DEAD in names
    ids = {registry.id_for(n) for n in names}
    assert len(ids) == len(names)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "undecodable"),
        (b"", "undecodable"),
        (b"\x00\x00", "undecodable"),
        (b"\x01\x00\x00\x00\x01abc", "undecodable"),
        (b"\x00\x7f\xff\xff\xfe" + b"abc", "unknown_schema_id"),
    ],
)
def test_bad_bytes_raise_codec_error(data: bytes | None, reason: str) -> None:
    """Short, wrong-magic and unknown-id inputs raise CodecError with a reason."""
    with pytest.raises(CodecError) as err:
        default_codec().decode(data)
    assert err.value.reason == reason


def test_truncated_and_padded_bodies_are_undecodable() -> None:
    """A body cut short, or with bytes left over, is refused."""
    codec = default_codec()
    data = codec.encode(DEAD, _dead_letter())
    for bad in (data[:-3], data + b"\x00"):
        with pytest.raises(CodecError) as err:
            codec.decode(bad)
        assert err.value.reason == "undecodable"


def test_record_that_does_not_fit_is_invalid() -> None:
    """A wrong type or a missing field fails with invalid_record."""
    bad = _dead_letter() | {"source_offset": "forty-two"}
    with pytest.raises(CodecError) as err:
        default_codec().encode(DEAD, bad)
    assert err.value.reason == "invalid_record"
    missing = _dead_letter()
    del missing["flow"]
    with pytest.raises(CodecError):
        default_codec().encode(DEAD, missing)


def test_decode_as_insists_on_the_schema() -> None:
    """A topic's reader refuses a record of another type."""
    codec = default_codec()
    data = codec.encode(DEAD, _dead_letter())
    with pytest.raises(CodecError) as err:
        codec.decode_as("edustream.aid.Offer", data)
    assert err.value.reason == "wrong_schema"
