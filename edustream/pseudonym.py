"""Keyed pseudonyms for people and masked names for display.

Duties:

- Turn a resident ID number or a registry number into an opaque reference
  (``stu_…``, ``psn_…``) with keyed HMAC-SHA256, so records can be joined
  per person without carrying the number itself. The key lives apart from the
  data; without it a reference cannot be tied back to a person.
- Give one person the same digest under every prefix, so a person reference
  can be turned into the student reference of the same person (``retag``)
  without the number.
- Mask a name for display to a guardian ("张三明" becomes "张*明").

A pseudonym is still personal data: it identifies a person to anyone holding
the key, so it belongs only on topics whose consumers need it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from edustream.errors import ConfigError

STUDENT_PREFIX = "stu"
PERSON_PREFIX = "psn"

# 16 bytes of key give 128 bits against guessing; ID numbers have little
# entropy of their own (area, birth date, sequence), so the key carries it.
MIN_KEY_BYTES = 16

# 16 digest bytes (128 bits) give 32 hex characters: short enough for a Kafka
# key, far beyond any collision risk at city scale.
_DIGEST_BYTES = 16

_NAME_DOMAIN = b"edustream:student-name\x00"
# Names with a separator dot (minority and transliterated names) are typed
# with whichever dot the keyboard offers; all of them mean the same name.
_NAME_DOTS = re.compile("[·•・．.‧﹒]")

# A national student registry number is "G" followed by the ID number; both
# name the same person, so they must give the same reference.
_REGISTRY_ID_LENGTH = 19


def pseudonymise(key: bytes, id_number: str, prefix: str = STUDENT_PREFIX) -> str:
    """Return the keyed reference of ``id_number``, such as ``stu_k3…``.

    The number is normalised first (trimmed, upper-case ``x``, a ``G``
    registry prefix dropped), so every spelling of one person's number gives
    one reference.
    """
    check_key(key)
    normalised = normalise_id_number(id_number)

    digest = hmac.digest(key, normalised.encode("ascii", "replace"), "sha256")
    return f"{prefix}_{digest[:_DIGEST_BYTES].hex()}"


def normalise_id_number(id_number: str) -> str:
    """Return ``id_number`` trimmed, upper-cased and without a ``G`` prefix."""
    text = id_number.strip().upper()
    if len(text) == _REGISTRY_ID_LENGTH and text.startswith("G"):
        return text[1:]
    return text


def retag(reference: str, prefix: str) -> str:
    """Return ``reference`` with its prefix replaced by ``prefix``.

    Both references name the same person: ``retag("psn_abc", "stu")`` is the
    student reference of the person ``psn_abc``.
    """
    _, _, digest = reference.partition("_")
    return f"{prefix}_{digest}"


def mask_name(name: str) -> str:
    """Return ``name`` with all but its first and last characters hidden.

    One ``*`` stands for the hidden part whatever its length, so the mask does
    not reveal how long the name is. Two-character names keep only the
    surname ("李四" becomes "李*"); one character or none becomes "*".
    """
    text = "".join(name.split())
    if len(text) <= 1:
        return "*"
    if len(text) == 2:
        return text[0] + "*"
    return text[0] + "*" + text[-1]


def check_key(key: bytes) -> None:
    """Refuse a key too short to protect low-entropy ID numbers."""
    if len(key) < MIN_KEY_BYTES:
        message = f"pseudonym key must be at least {MIN_KEY_BYTES} bytes"
        raise ConfigError(message)


def name_digest(key: bytes, student_ref: str, name: str) -> str:
    """The keyed digest of a child's name, bound to the student reference.

    HMAC-SHA256 under the pseudonym key over a domain tag, the reference
    and the normalised name (NFKC, no whitespace, one kind of separator
    dot); 32 hex characters. Bills carry it so a parent's lookup can check
    the child's name while no name is stored anywhere.
    """
    normal = normalise_name(name)
    message = _NAME_DOMAIN + student_ref.encode("ascii") + b"\x00" + normal.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def normalise_name(name: str) -> str:
    """The name as compared: NFKC, no whitespace, ``·`` for every dot."""
    text = "".join(unicodedata.normalize("NFKC", name).split())
    return _NAME_DOTS.sub("·", text)
