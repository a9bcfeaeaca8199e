"""Key material for the three payment channels.

Duties:

- ``ChannelKeys``: the test and demo key set. It holds the *channels'*
  private keys (so the project can sign callbacks the way each channel does)
  and the merchant's own Alipay app key (so tests can show that key is
  refused for verification);
- ``VerifierConfig``: only what the merchant side holds in production (the
  channels' public keys and certificates, the WeChat APIv3 key and the
  merchant ids), derivable from ``ChannelKeys`` or loaded from a directory;
- generate, save and load both as PEM files plus one small JSON file.

Keys are parsed once here, never per callback: verification runs at
thousands of callbacks a second.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from edustream.errors import ConfigError

_RSA_BITS = 2048
_RSA_EXPONENT = 65537
_CERT_YEARS = 10
_APIV3_KEY_LENGTH = 32

_IDS_FILE = "channels.json"
_ID_NAMES = ("alipay_app_id", "wechat_mchid", "wechat_apiv3_key", "unionpay_mer_id")
_ALIPAY_CHANNEL_KEY = "alipay_channel_private.pem"
_ALIPAY_APP_KEY = "alipay_app_private.pem"
_ALIPAY_PUBLIC_KEY = "alipay_public.pem"
_WECHAT_PLATFORM_KEY = "wechat_platform_private.pem"
_WECHAT_PLATFORM_CERT = "wechat_platform_cert.pem"
_UNIONPAY_SIGN_KEY = "unionpay_sign_private.pem"
_UNIONPAY_SIGN_CERT = "unionpay_verify_cert.pem"

# A verifier directory may hold several certificates per channel while a
# channel rotates its key; every file matching these patterns is trusted.
_WECHAT_CERT_GLOB = "wechat_platform_cert*.pem"
_UNIONPAY_CERT_GLOB = "unionpay_verify_cert*.pem"


def wechat_serial(cert: x509.Certificate) -> str:
    """Return the serial WeChat sends in ``Wechatpay-Serial`` (upper hex)."""
    return f"{cert.serial_number:040X}"


def unionpay_cert_id(cert: x509.Certificate) -> str:
    """Return the ``certId`` UnionPay sends: the serial number in decimal."""
    return str(cert.serial_number)


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """What the merchant side needs to verify callbacks, and nothing more.

    Holds no private key. ``wechat_platform_keys`` maps a platform serial to
    its public key and ``unionpay_certs`` maps a ``certId`` to its
    certificate, so a channel rotating its key is a matter of adding a file.
    """

    alipay_app_id: str
    alipay_public_key: rsa.RSAPublicKey
    wechat_mchid: str
    wechat_platform_keys: Mapping[str, rsa.RSAPublicKey]
    wechat_apiv3_key: bytes
    unionpay_mer_id: str
    unionpay_certs: Mapping[str, x509.Certificate]

    @classmethod
    def load(cls, directory: Path) -> VerifierConfig:
        """Read the public files and ids ``ChannelKeys.save`` wrote."""
        ids = _read_ids(directory)
        wechat_certs = [
            _read_cert(path) for path in sorted(directory.glob(_WECHAT_CERT_GLOB))
        ]
        unionpay_certs = [
            _read_cert(path) for path in sorted(directory.glob(_UNIONPAY_CERT_GLOB))
        ]
        if not wechat_certs or not unionpay_certs:
            raise ConfigError(f"{directory}: a channel certificate file is missing")

        return cls(
            alipay_app_id=ids["alipay_app_id"],
            alipay_public_key=_read_public_key(directory / _ALIPAY_PUBLIC_KEY),
            wechat_mchid=ids["wechat_mchid"],
            wechat_platform_keys=_keys_by_serial(wechat_certs),
            wechat_apiv3_key=ids["wechat_apiv3_key"].encode("ascii"),
            unionpay_mer_id=ids["unionpay_mer_id"],
            unionpay_certs=_certs_by_id(unionpay_certs),
        )


@dataclass(frozen=True, slots=True)
class ChannelKeys:
    """Every key the tests and the demo need, channel side included.

    - Alipay: the channel's key pair (signs notifications) and, separately,
      the merchant app's key pair. Only the channel's public key may verify.
    - WeChat Pay: the platform key, its self-signed certificate (the serial
      goes in ``Wechatpay-Serial``) and the 32-character APIv3 key.
    - UnionPay: the signing key and its self-signed certificate; the
      certificate's decimal serial number is the ``certId``.
    """

    alipay_app_id: str
    alipay_channel_key: rsa.RSAPrivateKey
    alipay_app_key: rsa.RSAPrivateKey
    wechat_mchid: str
    wechat_platform_key: rsa.RSAPrivateKey
    wechat_platform_cert: x509.Certificate
    wechat_apiv3_key: bytes
    unionpay_mer_id: str
    unionpay_sign_key: rsa.RSAPrivateKey
    unionpay_sign_cert: x509.Certificate

    @property
    def wechat_serial(self) -> str:
        """The platform certificate serial, as sent in ``Wechatpay-Serial``."""
        return wechat_serial(self.wechat_platform_cert)

    @property
    def unionpay_cert_id(self) -> str:
        """The signing certificate's ``certId``."""
        return unionpay_cert_id(self.unionpay_sign_cert)

    def verifier(self) -> VerifierConfig:
        """Return the merchant-side view: public material and the APIv3 key."""
        return VerifierConfig(
            alipay_app_id=self.alipay_app_id,
            alipay_public_key=self.alipay_channel_key.public_key(),
            wechat_mchid=self.wechat_mchid,
            wechat_platform_keys=_keys_by_serial([self.wechat_platform_cert]),
            wechat_apiv3_key=self.wechat_apiv3_key,
            unionpay_mer_id=self.unionpay_mer_id,
            unionpay_certs=_certs_by_id([self.unionpay_sign_cert]),
        )

    def save(self, directory: Path) -> None:
        """Write every key as PEM plus ``channels.json`` into ``directory``.

        Private keys and the JSON (it holds the APIv3 key) are owner-only.
        The public files are what ``VerifierConfig.load`` reads.
        """
        directory.mkdir(parents=True, exist_ok=True)

        _write_private(directory / _ALIPAY_CHANNEL_KEY, self.alipay_channel_key)
        _write_private(directory / _ALIPAY_APP_KEY, self.alipay_app_key)
        _write_private(directory / _WECHAT_PLATFORM_KEY, self.wechat_platform_key)
        _write_private(directory / _UNIONPAY_SIGN_KEY, self.unionpay_sign_key)

        public = self.alipay_channel_key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        (directory / _ALIPAY_PUBLIC_KEY).write_bytes(public)
        _write_cert(directory / _WECHAT_PLATFORM_CERT, self.wechat_platform_cert)
        _write_cert(directory / _UNIONPAY_SIGN_CERT, self.unionpay_sign_cert)

        _write_secret(directory / _IDS_FILE, json.dumps(self._ids(), indent=2))

    @classmethod
    def load(cls, directory: Path) -> ChannelKeys:
        """Read a key set written by ``save``."""
        ids = _read_ids(directory)
        return cls(
            alipay_app_id=ids["alipay_app_id"],
            alipay_channel_key=_read_private(directory / _ALIPAY_CHANNEL_KEY),
            alipay_app_key=_read_private(directory / _ALIPAY_APP_KEY),
            wechat_mchid=ids["wechat_mchid"],
            wechat_platform_key=_read_private(directory / _WECHAT_PLATFORM_KEY),
            wechat_platform_cert=_read_cert(directory / _WECHAT_PLATFORM_CERT),
            wechat_apiv3_key=ids["wechat_apiv3_key"].encode("ascii"),
            unionpay_mer_id=ids["unionpay_mer_id"],
            unionpay_sign_key=_read_private(directory / _UNIONPAY_SIGN_KEY),
            unionpay_sign_cert=_read_cert(directory / _UNIONPAY_SIGN_CERT),
        )

    def _ids(self) -> dict[str, str]:
        """The non-PEM part of the key set, as written to ``channels.json``."""
        return {
            "alipay_app_id": self.alipay_app_id,
            "wechat_mchid": self.wechat_mchid,
            "wechat_apiv3_key": self.wechat_apiv3_key.decode("ascii"),
            "unionpay_mer_id": self.unionpay_mer_id,
        }


def generate_test_keys() -> ChannelKeys:
    """Make a fresh key set with test merchant ids.

    Four RSA-2048 keys take a noticeable fraction of a second: generate once
    per test session or demo run, not per test.
    """
    wechat_key = _new_rsa_key()
    unionpay_key = _new_rsa_key()
    alphabet = string.ascii_letters + string.digits

    return ChannelKeys(
        alipay_app_id="2021000000000001",
        alipay_channel_key=_new_rsa_key(),
        alipay_app_key=_new_rsa_key(),
        wechat_mchid="1900000001",
        wechat_platform_key=wechat_key,
        wechat_platform_cert=_self_signed(wechat_key, "edustream test WeChat Pay"),
        # Merchants set the APIv3 key as 32 printable characters; its ASCII
        # bytes are the AES-256 key.
        wechat_apiv3_key="".join(
            secrets.choice(alphabet) for _ in range(_APIV3_KEY_LENGTH)
        ).encode("ascii"),
        unionpay_mer_id="777290058110048",
        unionpay_sign_key=unionpay_key,
        unionpay_sign_cert=_self_signed(unionpay_key, "edustream test UnionPay"),
    )


def _new_rsa_key() -> rsa.RSAPrivateKey:
    """Return a fresh RSA-2048 private key."""
    return rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=_RSA_BITS)


def _self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    """Return a ten-year self-signed certificate for ``key``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)

    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * _CERT_YEARS))
    )
    return builder.sign(key, hashes.SHA256())


def _keys_by_serial(
    certs: list[x509.Certificate],
) -> Mapping[str, rsa.RSAPublicKey]:
    """Index WeChat platform public keys by their serial."""
    return MappingProxyType({wechat_serial(c): _rsa_public(c) for c in certs})


def _certs_by_id(certs: list[x509.Certificate]) -> Mapping[str, x509.Certificate]:
    """Index UnionPay certificates by ``certId``, checking each holds RSA."""
    for cert in certs:
        _rsa_public(cert)
    return MappingProxyType({unionpay_cert_id(c): c for c in certs})


def _rsa_public(cert: x509.Certificate) -> rsa.RSAPublicKey:
    """Return the certificate's RSA public key, refusing any other kind."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("a channel certificate does not hold an RSA key")
    return key


def _write_private(path: Path, key: rsa.RSAPrivateKey) -> None:
    """Write an unencrypted PKCS#8 PEM readable by the owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_secret(path, pem.decode("ascii"))


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a file created owner-only from the start."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a certificate as PEM."""
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _read_ids(directory: Path) -> dict[str, str]:
    """Read ``channels.json``, naming the file and key when something is off."""
    path = directory / _IDS_FILE
    try:
        ids: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read channel ids") from exc

    if not isinstance(ids, dict):
        raise ConfigError(f"{path}: not a JSON object")
    for name in _ID_NAMES:
        if not isinstance(ids.get(name), str):
            raise ConfigError(f"{path}: {name} is missing or not a string")

    apiv3_key = ids["wechat_apiv3_key"]
    if len(apiv3_key) != _APIV3_KEY_LENGTH or not apiv3_key.isascii():
        raise ConfigError(f"{path}: wechat_apiv3_key must be 32 ASCII characters")
    return {name: ids[name] for name in _ID_NAMES}


def _read_private(path: Path) -> rsa.RSAPrivateKey:
    """Read an RSA private key PEM."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path}: not an RSA private key")
    return key


def _read_public_key(path: Path) -> rsa.RSAPublicKey:
    """Read an RSA public key PEM."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read public key") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"{path}: not an RSA public key")
    return key


def _read_cert(path: Path) -> x509.Certificate:
    """Read a PEM certificate."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read certificate") from exc
