"""Keyed pseudonyms and masked names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.errors import ConfigError
from edustream.pseudonym import (
    PERSON_PREFIX,
    STUDENT_PREFIX,
    mask_name,
    normalise_id_number,
    pseudonymise,
    retag,
)

KEY = b"k" * 32
ID_NUMBER = "34052419800101001X"


def test_pseudonym_is_stable_and_opaque() -> None:
    """The same key and number give the same reference, which hides the number."""
    first = pseudonymise(KEY, ID_NUMBER)
    second = pseudonymise(KEY, ID_NUMBER)

    assert first == second
    assert re.fullmatch(r"stu_[0-9a-f]{32}", first)
    assert ID_NUMBER not in first
    assert "19800101" not in first


def test_pseudonym_depends_on_the_key() -> None:
    """Another key gives another reference, so the key alone links them."""
    assert pseudonymise(KEY, ID_NUMBER) != pseudonymise(b"q" * 32, ID_NUMBER)


@pytest.mark.parametrize(
    "spelling",
    [
        "34052419800101001X",
        "34052419800101001x",
        " 34052419800101001X ",
        "G34052419800101001X",
    ],
)
def test_every_spelling_of_one_number_gives_one_reference(spelling: str) -> None:
    """Case, spaces and the G registry prefix do not change the reference."""
    assert pseudonymise(KEY, spelling) == pseudonymise(KEY, ID_NUMBER)


def test_constructed_registry_numbers_are_kept_whole() -> None:
    """A J number is not an ID number and is pseudonymised as written."""
    constructed = "J" + "1" * 18
    assert normalise_id_number(constructed) == constructed
    assert pseudonymise(KEY, constructed) != pseudonymise(KEY, "1" * 18)


def test_prefixes_share_one_digest() -> None:
    """A person and a student reference of one number differ only by prefix."""
    person = pseudonymise(KEY, ID_NUMBER, PERSON_PREFIX)
    student = pseudonymise(KEY, ID_NUMBER, STUDENT_PREFIX)

    assert person.startswith("psn_")
    assert retag(person, STUDENT_PREFIX) == student
    assert retag(student, PERSON_PREFIX) == person


def test_short_key_is_refused() -> None:
    """A key under 16 bytes stops start-up, and the message names no data."""
    with pytest.raises(ConfigError, match="at least 16 bytes") as caught:
        pseudonymise(b"short", ID_NUMBER)
    assert ID_NUMBER not in str(caught.value)


@given(st.text(alphabet="0123456789", min_size=18, max_size=18))
def test_distinct_numbers_give_distinct_references(number: str) -> None:
    """Two different numbers never share a reference (128-bit digests)."""
    other = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert pseudonymise(KEY, number) != pseudonymise(KEY, other)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三明", "张*明"),
        ("李四", "李*"),
        ("王", "*"),
        ("", "*"),
        ("欧阳小明", "欧*明"),
        ("司马相如之", "司*之"),
        ("阿卜杜·热合曼", "阿*曼"),
        (" 张 三 明 ", "张*明"),
        ("Anna Lee", "A*e"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    """Only the first and last characters show, and one star hides the length."""
    assert mask_name(name) == masked
