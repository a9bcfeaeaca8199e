"""Resident ID numbers (GB 11643-1999) and student registry numbers.

An ID number has 18 characters: a 6-digit area code, an 8-digit birth date,
a 3-digit sequence (odd for men, even for women) and an ISO 7064 MOD 11-2
check character. A national student registry number is "G" plus the ID
number, or "J" plus a constructed 18-digit number for a student without one.

These functions validate and build identifiers. They never log them: an ID
number is personal data and stays on the upstream topics that need it.
"""

from __future__ import annotations

import re
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")

# Candidates for scanning free text: 17 digits then a digit or X, not part
# of a longer run of digits. The check digit then filters false positives.
ID_CANDIDATE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def check_character(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits of an ID."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an ID body is exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def is_valid_id(value: str) -> bool:
    """Whether value is a well-formed ID number with a correct check char."""
    value = value.upper()
    if not _SHAPE.match(value):
        return False
    if not _birth_date_is_real(value[6:14]):
        return False
    return check_character(value[:17]) == value[17]


def make_id(area_code: str, birth: date, sequence: int) -> str:
    """Build a syntactically valid ID number (used by the synthetic city)."""
    if len(area_code) != 6 or not area_code.isdigit():
        raise ValueError("an area code is 6 digits")
    if not 0 <= sequence <= 999:
        raise ValueError("a sequence is 3 digits")
    body = f"{area_code}{birth:%Y%m%d}{sequence:03d}"
    return body + check_character(body)


def registry_number(id_number: str | None, constructed: str | None = None) -> str:
    """The national student registry number: G+ID, or J+constructed digits."""
    if id_number is not None:
        return "G" + id_number
    if constructed is None or len(constructed) != 18 or not constructed.isdigit():
        raise ValueError("a student without an ID needs an 18-digit number")
    return "J" + constructed


def find_ids(text: str) -> list[str]:
    """Every valid ID number inside free text (for privacy scans)."""
    return [m for m in ID_CANDIDATE.findall(text) if is_valid_id(m)]


def _birth_date_is_real(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return False
    return True
