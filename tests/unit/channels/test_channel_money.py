"""Yuan strings from the channels become integer fen, strictly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.channels.money import fen_text_to_fen, fen_to_yuan, yuan_to_fen
from edustream.errors import PoisonError


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0.01", 1),
        ("0.1", 10),
        ("0", 0),
        ("0.00", 0),
        ("12", 1200),
        ("12.3", 1230),
        ("12.30", 1230),
        ("1795.00", 179500),
        ("3744800", 374480000),
        ("100000000.00", 10000000000),
    ],
)
def test_yuan_strings_become_fen(text: str, fen: int) -> None:
    """Plain yuan strings with up to two decimals convert exactly."""
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0.001",
        "-1",
        "+1",
        "1e3",
        "1E3",
        "NaN",
        "Infinity",
        "0x10",
        " 1",
        "1 ",
        "1.",
        ".5",
        "01",
        "1,000",
        "1_000",
        "１２",
        "١٢",
        "12.3.4",
        "12345678901",
    ],
)
def test_anything_else_is_bad_amount(text: str) -> None:
    """Signs, exponents, extra decimals and non-ASCII digits are refused."""
    with pytest.raises(PoisonError) as caught:
        yuan_to_fen(text)

    assert caught.value.reason == "bad_amount"
    assert text.strip() == "" or text not in str(caught.value)


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_fen_round_trips_through_yuan(fen: int) -> None:
    """Writing fen as yuan and reading it back gives the same fen."""
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@given(st.text(alphabet="0123456789.-+eE ", max_size=14))
def test_accepted_text_matches_decimal(text: str) -> None:
    """Whatever is accepted equals the exact decimal value times 100."""
    outcome = _fen_or_reason(text)

    if isinstance(outcome, str):
        assert outcome == "bad_amount"
    else:
        assert Decimal(outcome) == Decimal(text) * 100


def _fen_or_reason(text: str) -> int | str:
    """The parsed fen, or the refusal reason."""
    try:
        return yuan_to_fen(text)
    except PoisonError as exc:
        return exc.reason


@pytest.mark.parametrize(("fen", "text"), [(0, "0.00"), (1, "0.01"), (1230, "12.30")])
def test_fen_is_written_with_two_decimals(fen: int, text: str) -> None:
    """The signers write amounts the way Alipay does: always two decimals."""
    assert fen_to_yuan(fen) == text


def test_negative_fen_cannot_be_written() -> None:
    """A negative amount is a programming error on the signing side."""
    with pytest.raises(ValueError, match="negative"):
        fen_to_yuan(-1)


@pytest.mark.parametrize(("text", "fen"), [("1", 1), ("1200", 1200), ("000001", 1)])
def test_whole_fen_strings_convert(text: str, fen: int) -> None:
    """UnionPay's txnAmt is whole fen; zero padding is harmless."""
    assert fen_text_to_fen(text) == fen


@pytest.mark.parametrize("text", ["", "12.00", "-1", "1e3", "１", "1234567890123"])
def test_bad_fen_strings_are_refused(text: str) -> None:
    """Anything but 1-12 ASCII digits is a bad amount."""
    with pytest.raises(PoisonError) as caught:
        fen_text_to_fen(text)

    assert caught.value.reason == "bad_amount"
