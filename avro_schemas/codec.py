"""Encode and decode records in the Confluent wire format with fastavro.

A message value is: magic byte 0, a 4-byte big-endian schema id, then the
Avro binary body. Every failure (bytes that are not this format, an unknown
schema id, a body that does not decode, a record that does not fit its
schema) raises ``CodecError`` with a reason, so the agent loop catches one
type and dead-letters the input.
"""

from __future__ import annotations

import io
import struct
from functools import lru_cache
from typing import Any

import fastavro

from avro_schemas.registry import FileSchemaRegistry, SchemaRegistry
from edustream.errors import CodecError

MAGIC = 0
_HEADER = struct.Struct(">bI")


class Codec:
    """Reads and writes records for the schemas of one registry."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def encode(self, full_name: str, record: dict[str, Any]) -> bytes:
        """Serialise record under the named schema, with the wire header."""
        schema_id = self.registry.id_for(full_name)
        _, schema = self.registry.schema_for(schema_id)
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC, schema_id))
        try:
            fastavro.schemaless_writer(out, schema, record, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # The library's message can quote the offending value, which may be
            # personal data, so only the schema and the error type are kept.
            raise CodecError(
                "invalid_record",
                f"record does not fit {full_name} ({type(exc).__name__})",
            ) from exc
        return out.getvalue()

    def decode(self, data: bytes | None) -> tuple[str, dict[str, Any]]:
        """Parse a wire-format value into (schema full name, record)."""
        data, schema_id = self._read_header(data)
        full_name, schema = self.registry.schema_for(schema_id)
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(body, schema, None)
        except Exception as exc:
            # fastavro raises anything from EOFError to UnicodeDecodeError on
            # corrupt input; all of it means poison.
            raise CodecError(
                "undecodable", f"body does not decode as {full_name}"
            ) from exc
        if body.tell() != len(data):
            raise CodecError("undecodable", f"trailing bytes after a {full_name}")
        if not isinstance(record, dict):
            raise CodecError("undecodable", f"{full_name} is not a record")
        return full_name, record

    def decode_as(self, full_name: str, data: bytes | None) -> dict[str, Any]:
        """Decode and insist on one schema (a topic carries one event type)."""
        found, record = self.decode(data)
        if found != full_name:
            raise CodecError("wrong_schema", f"expected {full_name}, found {found}")
        return record

    @staticmethod
    def _read_header(data: bytes | None) -> tuple[bytes, int]:
        if data is None or len(data) < _HEADER.size:
            raise CodecError("undecodable", "value shorter than the wire header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise CodecError("undecodable", f"magic byte {magic}, expected 0")
        return data, int(schema_id)


@lru_cache(maxsize=1)
def default_codec() -> Codec:
    """The codec over the schemas shipped in this package."""
    return Codec(FileSchemaRegistry())
