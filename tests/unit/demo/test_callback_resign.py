"""A WeChat Pay callback posted long after it was built is signed again.

WeChat Pay stamps a notification when it sends it, and the ingress refuses
one older than its freshness window. A long run (the full fault harness
takes over a quarter of an hour) posts the city's last callbacks many
minutes after building them; each one the ingress must accept is signed
again as it is posted, as old as it was when built, and each one it must
refuse is posted as built.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

from edustream.channels import wechat
from edustream.channels.keys import VerifierConfig
from edustream.demo.billing import scenario
from edustream.demo.scenario import HttpCallback
from edustream.errors import SignatureError
from edustream.settings import Settings

LATER_S = 3_600


def test_wechat_callbacks_posted_an_hour_later_keep_their_age(tmp_path: Path) -> None:
    settings = Settings(channel_keys_dir=tmp_path / "keys")
    built = scenario(settings, 7, 1.0, date(2026, 9, 15))
    verifier = VerifierConfig.load(settings.channel_keys_dir)
    callbacks = [
        cb
        for phase in built.phases
        for cb in phase.callbacks
        if cb.path.endswith("/wechat")
    ]
    good = [cb for cb in callbacks if cb.expect_status < 300]
    assert good
    later = datetime.now(UTC) + timedelta(seconds=LATER_S)

    with mock.patch("time.time", return_value=later.timestamp()):
        sent = [cb.as_sent() for cb in callbacks]

    outcomes = [
        (original.expect_status < 300, _refusal(cb, verifier, later))
        for original, cb in zip(callbacks, sent, strict=True)
    ]
    assert outcomes.count((True, None)) == len(good)
    refused = [reason for expected_ok, reason in outcomes if not expected_ok]
    assert refused
    assert set(refused) <= {"stale_timestamp", "bad_signature"}
    # Those are posted byte for byte as built: their refusals count by body.
    assert all(
        cb is original
        for original, cb in zip(callbacks, sent, strict=True)
        if original.expect_status >= 300
    )
    # As built, the good ones are an hour too old by then.
    assert _refusal(good[0], verifier, later) == "stale_timestamp"


def _refusal(cb: HttpCallback, verifier: VerifierConfig, now: datetime) -> str | None:
    try:
        wechat.verify_notification(cb.headers, cb.body, verifier, now=now)
    except SignatureError as exc:
        return exc.reason
    return None
