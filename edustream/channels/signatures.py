"""SHA256withRSA, the signature all three channels use.

Duties:

- sign a message and return the base64 signature (channel side);
- verify a base64 signature, turning every failure into
  ``SignatureError(reason="bad_signature")``.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from edustream.errors import SignatureError

_PADDING = padding.PKCS1v15()
_HASH = hashes.SHA256()


def sign_sha256(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Return the base64 SHA256withRSA signature of ``message``."""
    return base64.b64encode(key.sign(message, _PADDING, _HASH)).decode("ascii")


def verify_sha256(key: rsa.RSAPublicKey, message: bytes, signature: str) -> None:
    """Check a base64 SHA256withRSA signature; raise ``SignatureError`` if bad."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("bad_signature", "signature is not base64") from exc

    try:
        key.verify(raw, message, _PADDING, _HASH)
    except InvalidSignature as exc:
        raise SignatureError("bad_signature", "signature does not verify") from exc
