"""Schema ids: an interface and the default registry that reads this package.

The wire format names a schema by a 4-byte id. ``SchemaRegistry`` is what the
codec needs from a registry; ``FileSchemaRegistry`` implements it over the
``.avsc`` files shipped here, so no registry service is needed to run. A
Confluent-compatible registry client can implement the same protocol later.

Ids in the file registry are derived from the schema's full name (CRC-32), so
they are stable across processes and machines without a shared store. A
collision is detected at load. The file registry holds one version per name:
an incompatible change to a schema means a new record name, exactly as a
registry with compatibility checks would force a new subject version.
"""

from __future__ import annotations

import json
import zlib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.types import Schema

from edustream.errors import CodecError, ConfigError


class SchemaRegistry(Protocol):
    """What the codec needs: ids for names and parsed schemas for ids."""

    def id_for(self, full_name: str) -> int: ...

    def schema_for(self, schema_id: int) -> tuple[str, Schema]: ...


class FileSchemaRegistry:
    """Schemas read from ``.avsc`` files under a directory."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root or Path(str(resources.files("avro_schemas")))

    def id_for(self, full_name: str) -> int:
        try:
            return self._ids[full_name]
        except KeyError:
            raise CodecError("unknown_schema", "no schema named " + full_name) from None

    def schema_for(self, schema_id: int) -> tuple[str, Schema]:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise CodecError(
                "unknown_schema_id", f"no schema with id {schema_id}"
            ) from None

    def names(self) -> list[str]:
        """Every schema full name, sorted."""
        return sorted(self._ids)

    def raw(self, full_name: str) -> dict[str, Any]:
        """The schema as written in its file (for docs and a real registry)."""
        return self._raw[full_name]

    @cached_property
    def _raw(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(self._root.rglob("*.avsc")):
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{exc.lineno}: {exc.msg}") from exc
            full_name = f"{schema['namespace']}.{schema['name']}"
            found[full_name] = schema
        return found

    @cached_property
    def _parsed(self) -> dict[str, Schema]:
        # Parse in dependency order by letting fastavro resolve names lazily:
        # every file is parsed with the shared named-schema table, retrying
        # ones that reference a type defined in a later file.
        named: dict[str, Any] = {}
        parsed: dict[str, Schema] = {}
        pending = dict(self._raw)
        while pending:
            progressed = False
            for full_name, raw in list(pending.items()):
                try:
                    parsed[full_name] = fastavro.parse_schema(raw, named_schemas=named)
                except fastavro.schema.UnknownType:
                    continue
                del pending[full_name]
                progressed = True
            if not progressed:
                raise ConfigError(
                    "unresolvable schema references: " + ", ".join(pending)
                )
        return parsed

    @cached_property
    def _ids(self) -> dict[str, int]:
        ids: dict[str, int] = {}
        for full_name in self._parsed:
            schema_id = zlib.crc32(full_name.encode()) & 0x7FFFFFFF
            if schema_id in ids.values():
                raise ConfigError(f"schema id collision for {full_name}")
            ids[full_name] = schema_id
        return ids

    @cached_property
    def _by_id(self) -> dict[int, tuple[str, Schema]]:
        return {i: (name, self._parsed[name]) for name, i in self._ids.items()}
