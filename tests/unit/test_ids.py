"""Resident ID numbers: check characters, validation and scanning."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.ids import (
    check_character,
    find_ids,
    is_valid_id,
    make_id,
    registry_number,
)


@pytest.mark.parametrize(
    ("body", "check"),
    [
        ("34052419800101001", "X"),
        ("11010519491231002", "X"),
        ("44052418800101001", "4"),
    ],
)
def test_check_character_matches_known_values(body: str, check: str) -> None:
    """The MOD 11-2 check character of known bodies is the published one."""
    assert check_character(body) == check


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("34052419800101001X", True),
        ("34052419800101001x", True),
        ("340524198001010011", False),  # wrong check character
        ("34052419801301001X", False),  # month 13
        ("3405241980010100", False),  # too short
        ("A4052419800101001X", False),
    ],
)
def test_is_valid_id(value: str, valid: bool) -> None:
    """Validation checks shape, birth date and check character."""
    assert is_valid_id(value) is valid


@given(
    st.sampled_from(["310101", "310115", "310151"]),
    st.dates(min_value=date(1950, 1, 1), max_value=date(2025, 12, 31)),
    st.integers(0, 999),
)
def test_made_ids_are_valid(area: str, birth: date, seq: int) -> None:
    """Every ID the synthetic city makes passes validation."""
    made = make_id(area, birth, seq)
    assert is_valid_id(made)
    assert made.startswith(area)


def test_registry_numbers() -> None:
    """G plus the ID, or J plus a constructed 18-digit number."""
    assert registry_number("34052419800101001X") == "G34052419800101001X"
    assert registry_number(None, "1" * 18) == "J" + "1" * 18
    with pytest.raises(ValueError, match="18-digit"):
        registry_number(None, "123")


def test_find_ids_in_text_ignores_invalid_and_longer_runs() -> None:
    """Only valid IDs standing alone are found."""
    text = "a 34052419800101001X b 340524198001010011 c 134052419800101001X"
    assert find_ids(text) == ["34052419800101001X"]
