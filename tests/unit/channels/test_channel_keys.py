"""The test key set, its saved form, and the merchant-side verifier view."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from edustream.channels import alipay
from edustream.channels.keys import ChannelKeys, VerifierConfig
from edustream.errors import ConfigError

NOW = datetime(2024, 9, 2, 1, 30, tzinfo=UTC)
PRIVATE_FILES = [
    "alipay_channel_private.pem",
    "alipay_app_private.pem",
    "wechat_platform_private.pem",
    "unionpay_sign_private.pem",
    "channels.json",
]


def _public_numbers(key: rsa.RSAPrivateKey) -> rsa.RSAPublicNumbers:
    """The comparable part of a key."""
    return key.public_key().public_numbers()


def _field_values(config: VerifierConfig) -> list[object]:
    """The field values of a slotted dataclass."""
    return [getattr(config, name) for name in config.__slots__]


def test_identifiers_follow_the_channels_conventions(channel_keys: ChannelKeys) -> None:
    """WeChat serials are 40 upper hex digits; UnionPay certIds are decimal."""
    serial_number = channel_keys.wechat_platform_cert.serial_number

    assert channel_keys.wechat_serial == f"{serial_number:040X}"
    assert len(channel_keys.wechat_serial) == 40
    assert channel_keys.unionpay_cert_id == str(
        channel_keys.unionpay_sign_cert.serial_number
    )
    assert channel_keys.unionpay_cert_id.isdigit()
    assert len(channel_keys.wechat_apiv3_key) == 32


def test_alipay_app_key_is_not_the_channel_key(channel_keys: ChannelKeys) -> None:
    """The merchant app key pair is distinct, so tests can show it refused."""
    assert _public_numbers(channel_keys.alipay_app_key) != _public_numbers(
        channel_keys.alipay_channel_key
    )


def test_verifier_holds_only_public_material(channel_keys: ChannelKeys) -> None:
    """The verifier view carries public keys, certificates and the APIv3 key."""
    config = channel_keys.verifier()

    assert isinstance(config.alipay_public_key, rsa.RSAPublicKey)
    assert list(config.wechat_platform_keys) == [channel_keys.wechat_serial]
    assert list(config.unionpay_certs) == [channel_keys.unionpay_cert_id]
    assert config.alipay_public_key.public_numbers() == _public_numbers(
        channel_keys.alipay_channel_key
    )
    assert config.wechat_apiv3_key == channel_keys.wechat_apiv3_key
    assert not any(
        isinstance(value, rsa.RSAPrivateKey) for value in _field_values(config)
    )


def test_save_then_load_gives_the_same_keys(
    channel_keys: ChannelKeys, tmp_path: Path
) -> None:
    """A saved key set loads back with the same keys, certificates and ids."""
    channel_keys.save(tmp_path)
    loaded = ChannelKeys.load(tmp_path)

    assert _public_numbers(loaded.alipay_channel_key) == _public_numbers(
        channel_keys.alipay_channel_key
    )
    assert _public_numbers(loaded.alipay_app_key) == _public_numbers(
        channel_keys.alipay_app_key
    )
    assert loaded.wechat_platform_cert == channel_keys.wechat_platform_cert
    assert loaded.unionpay_sign_cert == channel_keys.unionpay_sign_cert
    assert loaded.wechat_apiv3_key == channel_keys.wechat_apiv3_key
    assert loaded.alipay_app_id == channel_keys.alipay_app_id


def test_secret_files_are_owner_only(channel_keys: ChannelKeys, tmp_path: Path) -> None:
    """Private keys and the JSON holding the APIv3 key are mode 0600."""
    channel_keys.save(tmp_path)

    modes = {
        name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in PRIVATE_FILES
    }

    assert modes == dict.fromkeys(PRIVATE_FILES, 0o600)


def test_loaded_verifier_checks_what_the_channel_signed(
    channel_keys: ChannelKeys, tmp_path: Path
) -> None:
    """VerifierConfig.load reads only public files and still verifies."""
    channel_keys.save(tmp_path)
    for name in PRIVATE_FILES[:-1]:
        (tmp_path / name).unlink()
    config = VerifierConfig.load(tmp_path)
    params = alipay.trade_params(
        channel_keys,
        notify_id="n-keys",
        trade_no="T-keys",
        order_id="BILL-keys",
        trade_status="TRADE_SUCCESS",
        total_fen=100,
        notified_at=NOW,
        paid_at=NOW,
    )

    callback = alipay.verify_notification(
        alipay.sign_notification(channel_keys, params), None, config
    )

    assert callback.order_id == "BILL-keys"
    assert list(config.unionpay_certs) == [channel_keys.unionpay_cert_id]


def test_missing_directory_is_config_error(tmp_path: Path) -> None:
    """Loading from nowhere names the file instead of crashing."""
    with pytest.raises(ConfigError, match=r"channels\.json"):
        VerifierConfig.load(tmp_path / "absent")


def test_short_apiv3_key_is_config_error(
    channel_keys: ChannelKeys, tmp_path: Path
) -> None:
    """An APIv3 key that is not 32 ASCII characters stops start-up."""
    channel_keys.save(tmp_path)
    ids_path = tmp_path / "channels.json"
    ids = json.loads(ids_path.read_text(encoding="utf-8"))
    ids_path.write_text(
        json.dumps({**ids, "wechat_apiv3_key": "short"}), encoding="utf-8"
    )

    with pytest.raises(ConfigError, match="wechat_apiv3_key"):
        ChannelKeys.load(tmp_path)
