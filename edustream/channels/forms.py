"""URL-encoded form bodies, as Alipay and UnionPay post them.

Duties:

- work out the charset a form was encoded in (a field inside the form wins
  over the ``Content-Type`` header, because the channel signs the field);
- parse the body strictly into one string per key, refusing a key that
  appears twice, raw non-ASCII bytes, and bytes that do not decode;
- fetch a field the caller cannot do without;
- build the sorted ``k=v&...`` string both channels sign;
- encode a form body for the channel-side signers.

Parsing yields ``dict[str, str]`` and never lists: a framework that hands
over ``{"k": ["a", "b"]}`` and a verifier that joins or picks one of them is
how a forged value slips past a valid signature.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote_plus, urlencode

from edustream.errors import PoisonError

# Charset labels the channels use, mapped to Python codecs. GB2312 is read
# as GBK, its superset, because real forms labelled GB2312 carry GBK bytes.
_CODECS = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "gbk": "gbk",
    "gb2312": "gbk",
    "gb18030": "gb18030",
}
_DEFAULT_CODEC = "utf-8"
# Real notifications carry a few dozen fields; the cap bounds the work a
# hostile body can cause before the signature is checked.
_MAX_FIELDS = 200
_CONTENT_TYPE_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9_-]+)", re.ASCII)
_PRINTABLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}", re.ASCII)


def form_codec(body: bytes, charset_field: str, content_type: str | None) -> str:
    """Return the Python codec for a form body.

    The body's own ``charset_field`` (Alipay ``charset``, UnionPay
    ``encoding``) wins, then the ``Content-Type`` charset, then UTF-8.
    Raises ``PoisonError(reason="bad_charset")`` for a label we do not read.
    """
    label = _field_before_decoding(body, charset_field)
    if label is None and content_type is not None:
        match = _CONTENT_TYPE_CHARSET.search(content_type)
        label = match.group(1) if match else None
    if label is None:
        return _DEFAULT_CODEC

    return codec_for(label)


def codec_for(label: str) -> str:
    """Return the Python codec for a channel's charset label (``GBK``...)."""
    codec = _CODECS.get(label.strip().lower())
    if codec is None:
        raise PoisonError("bad_charset", "form declares a charset we do not read")
    return codec


def parse_form(body: bytes, codec: str) -> dict[str, str]:
    """Parse a form body into one value per key.

    Raises ``PoisonError`` with reason ``malformed`` (not a form),
    ``bad_charset`` (bytes that do not decode) or ``duplicate_field``.
    """
    pairs = _pairs(body, codec)

    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise PoisonError("duplicate_field", f"{_describe(key)} appears twice")
        fields[key] = value
    return fields


def required(fields: Mapping[str, str], name: str) -> str:
    """Return a non-empty field or raise ``PoisonError(reason="malformed")``."""
    value = fields.get(name, "")
    if not value:
        raise PoisonError("malformed", f"field {name!r} is missing or empty")
    return value


def signing_string(fields: Mapping[str, str], *, leave_out: frozenset[str]) -> str:
    """Join the fields sorted by key as ``k=v&...``, skipping ``leave_out``.

    Values are used exactly as received: no trimming, no unescaping, and
    empty values stay in, as both channels' own verifiers do.
    """
    kept = sorted(key for key in fields if key not in leave_out)
    return "&".join(f"{key}={fields[key]}" for key in kept)


def encode_form(fields: Mapping[str, str], codec: str) -> bytes:
    """URL-encode ``fields`` with values in ``codec``, as a channel posts them."""
    return urlencode(fields, encoding=codec).encode("ascii")


def _pairs(body: bytes, codec: str) -> list[tuple[str, str]]:
    """Split and percent-decode the body, strictly."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise PoisonError("malformed", "form body holds raw non-ASCII bytes") from exc

    try:
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            encoding=codec,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise PoisonError("bad_charset", "form value does not decode") from exc
    except ValueError as exc:
        raise PoisonError("malformed", "body is not a URL-encoded form") from exc


def _field_before_decoding(body: bytes, name: str) -> str | None:
    """Find one ASCII field's value without knowing the charset yet.

    A byte-level search, not a second full parse: the label is plain ASCII
    and the other fields' GBK or UTF-8 escapes do not matter here.
    """
    match = _field_pattern(name).search(body)
    if match is None:
        return None
    return unquote_plus(match.group(1).decode("latin-1"), encoding="latin-1")


@functools.cache
def _field_pattern(name: str) -> re.Pattern[bytes]:
    """Match ``name=value`` at a field boundary of a form body."""
    return re.compile(rb"(?:^|&)" + re.escape(name.encode("ascii")) + rb"=([^&]*)")


def _describe(key: str) -> str:
    """Name a field in an error only if it looks like a field name."""
    return f"field {key!r}" if _PRINTABLE_KEY.fullmatch(key) else "a field"
