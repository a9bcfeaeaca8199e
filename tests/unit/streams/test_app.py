"""The Faust app takes its broker settings from ``Settings``."""

from __future__ import annotations

from edustream.settings import Settings
from streams.app import make_app


def test_the_producer_lingers_as_the_settings_say() -> None:
    """Outputs wait ``broker_producer_linger_ms`` to share produce requests."""
    default = make_app(Settings(app_id="linger-default"))
    custom = make_app(Settings(app_id="linger-custom", broker_producer_linger_ms=25))

    assert default.conf.producer_linger == 0.01
    assert custom.conf.producer_linger == 0.025
