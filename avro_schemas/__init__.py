"""The Avro schemas of every event, and the codec that reads and writes them.

The ``.avsc`` files in this package, one per event type and grouped by flow,
are the single source of truth for record shapes. ``registry`` gives each
schema an id; ``codec`` writes and reads records in the Confluent wire format.
"""

from avro_schemas.codec import Codec, default_codec
from avro_schemas.registry import FileSchemaRegistry, SchemaRegistry

__all__ = ["Codec", "FileSchemaRegistry", "SchemaRegistry", "default_codec"]
