"""Form bodies as Alipay and UnionPay post them: charset, strictness, order."""

from __future__ import annotations

import pytest

from edustream.channels.forms import (
    encode_form,
    form_codec,
    parse_form,
    signing_string,
)
from edustream.errors import PoisonError


@pytest.mark.parametrize(
    ("body", "content_type", "codec"),
    [
        (b"a=1&charset=GBK", None, "gbk"),
        (
            b"charset=gb2312&a=1",
            "application/x-www-form-urlencoded; charset=utf-8",
            "gbk",
        ),
        (b"a=1", "application/x-www-form-urlencoded; charset=GBK", "gbk"),
        (b"a=1", 'application/x-www-form-urlencoded; charset="utf-8"', "utf-8"),
        (b"a=1", None, "utf-8"),
        (b"a=1&xcharset=gbk", None, "utf-8"),
    ],
)
def test_charset_field_wins_then_header_then_utf8(
    body: bytes, content_type: str | None, codec: str
) -> None:
    """The signed charset field beats the header; UTF-8 is the default."""
    assert form_codec(body, "charset", content_type) == codec


def test_unknown_charset_is_refused() -> None:
    """A charset we do not read is bad_charset, not a guess."""
    with pytest.raises(PoisonError) as caught:
        form_codec(b"charset=big5&a=1", "charset", None)

    assert caught.value.reason == "bad_charset"


def test_gbk_values_decode() -> None:
    """Percent-escaped GBK bytes decode to the right characters."""
    body = encode_form({"subject": "学费", "charset": "gbk"}, "gbk")

    assert parse_form(body, "gbk") == {"subject": "学费", "charset": "gbk"}


def test_gbk_bytes_read_as_utf8_are_bad_charset() -> None:
    """A form whose bytes do not match the declared charset is refused."""
    body = encode_form({"subject": "学费"}, "gbk")

    with pytest.raises(PoisonError) as caught:
        parse_form(body, "utf-8")

    assert caught.value.reason == "bad_charset"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"a=1&a=2", "duplicate_field"),
        (b"a=1&b=2&a=1", "duplicate_field"),
        (b"a=1&b", "malformed"),
        ("subject=学费".encode(), "malformed"),
    ],
)
def test_strict_parsing(body: bytes, reason: str) -> None:
    """Repeated keys, fields without '=' and raw non-ASCII bytes are refused."""
    with pytest.raises(PoisonError) as caught:
        parse_form(body, "utf-8")

    assert caught.value.reason == reason


def test_duplicate_error_names_the_field_not_the_value() -> None:
    """The message names the key, never the values it carried."""
    with pytest.raises(PoisonError) as caught:
        parse_form(b"buyer_name=Zhang&buyer_name=Li", "utf-8")

    assert "buyer_name" in str(caught.value)
    assert "Zhang" not in str(caught.value)
    assert "Li" not in str(caught.value)


def test_signing_string_sorts_and_keeps_empty_values() -> None:
    """Keys sort by code point; empty values stay; named keys are left out."""
    fields = {"b": "2", "a": "", "sign": "x", "A": "3", "c": "&quot;"}

    text = signing_string(fields, leave_out=frozenset({"sign"}))

    assert text == "A=3&a=&b=2&c=&quot;"
