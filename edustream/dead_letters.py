"""Sealed originals in dead letters of inputs that carry personal data.

A dead letter keeps the input's original key and value so a person can fix
and replay it. Upstream topics that the registry and civil affairs own
carry ID numbers and names (``TopicSpec.personal_data``), and a dead-letter
topic is read by operators, who need none of that to see what went wrong.
So the original key and value of such an input are sealed with AES-256-GCM
under the dead-letter key, and the record says so (``sealed``). Whoever
holds the key opens them with ``open_original`` to fix and replay the
input; everyone else sees the reason and the source coordinates only.

Each sealed field is bound to its place (source topic, partition, offset
and field name) as associated data, so a sealed value copied onto another
dead letter does not open.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edustream.errors import ConfigError

_NONCE_BYTES = 12
_MIN_SECRET_BYTES = 16
_INFO = b"edustream:dead-letter-originals"


class Source(NamedTuple):
    """Where a dead-lettered input was read: what a sealed field is bound to."""

    topic: str
    partition: int
    offset: int


def sealing_key(secret: str) -> bytes:
    """The AES-256 key derived from the configured dead-letter secret."""
    raw = secret.encode()
    if len(raw) < _MIN_SECRET_BYTES:
        raise ConfigError(
            f"dead_letter_key must be at least {_MIN_SECRET_BYTES} bytes long"
        )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)


def seal(key: bytes, data: bytes | None, source: Source, field: str) -> bytes | None:
    """Seal one original field of the input read at source."""
    if data is None:
        return None
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, _place(source, field))


def open_original(
    key: bytes, record: dict[str, Any]
) -> tuple[bytes | None, bytes | None]:
    """The original key and value of a decoded dead-letter record.

    Returns them as stored when the record is not sealed. Raises
    ``ValueError`` when a sealed field does not open under this key.
    """
    if not record.get("sealed"):
        return record["original_key"], record["original_value"]
    source = Source(
        record["source_topic"], record["source_partition"], record["source_offset"]
    )
    return (
        _open(key, record["original_key"], source, "original_key"),
        _open(key, record["original_value"], source, "original_value"),
    )


def _open(key: bytes, sealed: bytes | None, source: Source, field: str) -> bytes | None:
    if sealed is None:
        return None
    nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _place(source, field))
    except InvalidTag as exc:
        raise ValueError(
            f"{field} of the dead letter from {source.topic}/{source.partition}"
            f"@{source.offset} does not open under this key"
        ) from exc


def _place(source: Source, field: str) -> bytes:
    return (
        f"{source.topic}\x00{source.partition}\x00{source.offset}\x00{field}".encode()
    )
