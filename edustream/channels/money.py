"""Money as the payment channels write it, turned into integer fen.

Duties:

- parse a yuan amount string (``"0.01"``, ``"12"``, ``"12.30"``) into fen,
  refusing anything a channel would never send;
- parse a fen amount string (UnionPay's ``txnAmt``) into an int;
- write fen back as a two-decimal yuan string for the channel-side signers.

Parsing is strict on purpose: a lenient parser that accepts ``"1e3"`` or
``"0.001"`` turns a forged or garbled callback into a wrong receipt.
"""

from __future__ import annotations

import re
from decimal import Decimal

from edustream.errors import PoisonError

# Ten integer digits is far above any channel's single-payment limit
# (Alipay caps one trade at 100,000,000 yuan) and keeps ints small.
_YUAN = re.compile(r"(?:0|[1-9][0-9]{0,9})(?:\.[0-9]{1,2})?", re.ASCII)
# Leading zeros are harmless in whole fen, and some channel files pad them.
_FEN = re.compile(r"[0-9]{1,12}", re.ASCII)
_FEN_PER_YUAN = 100


def yuan_to_fen(text: str) -> int:
    """Return the fen in a yuan string such as ``"0.01"`` or ``"12"``.

    Raises ``PoisonError(reason="bad_amount")`` for signs, exponents, more
    than two decimals, leading zeros, spaces, non-ASCII digits or an empty
    string. The message never repeats the value.
    """
    if not _YUAN.fullmatch(text):
        raise PoisonError("bad_amount", "amount is not a plain yuan string")

    return int(Decimal(text) * _FEN_PER_YUAN)


def fen_text_to_fen(text: str) -> int:
    """Return the fen in a string of whole fen such as UnionPay's ``"1200"``."""
    if not _FEN.fullmatch(text):
        raise PoisonError("bad_amount", "amount is not a plain fen string")

    return int(text)


def fen_to_yuan(fen: int) -> str:
    """Write ``fen`` as a yuan string with two decimals (``1`` -> ``"0.01"``)."""
    if fen < 0:
        raise ValueError("fen must not be negative")

    yuan, rest = divmod(fen, _FEN_PER_YUAN)
    return f"{yuan}.{rest:02d}"
