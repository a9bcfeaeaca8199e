"""Sealing the originals of dead letters whose inputs carry personal data."""

from __future__ import annotations

import pytest

from edustream.dead_letters import Source, open_original, seal, sealing_key
from edustream.errors import ConfigError

KEY = sealing_key("a dead-letter secret for tests")
SOURCE = Source("aid.registry-changes", 2, 41)
ID_NUMBER = b"34052419800101001X"


def _sealed_record(key: bytes = KEY, source: Source = SOURCE) -> dict[str, object]:
    return {
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "original_key": seal(key, b"G" + ID_NUMBER, source, "original_key"),
        "original_value": seal(key, b"\x00name " + ID_NUMBER, source, "original_value"),
        "sealed": True,
    }


def test_a_sealed_original_opens_with_the_key_and_hides_the_number() -> None:
    record = _sealed_record()

    assert ID_NUMBER not in record["original_key"]  # type: ignore[operator]
    assert ID_NUMBER not in record["original_value"]  # type: ignore[operator]
    assert open_original(KEY, record) == (b"G" + ID_NUMBER, b"\x00name " + ID_NUMBER)


def test_an_unsealed_record_is_returned_as_stored() -> None:
    record = {"original_key": b"k", "original_value": b"v", "sealed": False}

    assert open_original(KEY, record) == (b"k", b"v")


def test_an_absent_original_stays_absent() -> None:
    assert seal(KEY, None, SOURCE, "original_key") is None


def test_another_key_does_not_open_it() -> None:
    other = sealing_key("another dead-letter secret!")

    with pytest.raises(ValueError, match="does not open under this key"):
        open_original(other, _sealed_record())


def test_a_sealed_field_moved_to_another_dead_letter_does_not_open() -> None:
    record = _sealed_record()
    record["source_offset"] = SOURCE.offset + 1

    with pytest.raises(ValueError, match="@42 does not open"):
        open_original(KEY, record)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        sealing_key("short")
