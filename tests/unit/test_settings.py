"""Settings from the environment, and a clear stop when one is invalid."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from edustream.errors import ConfigError
from edustream.settings import get_settings

PSEUDONYM_KEY = "do-not-print-this-key"
BAD = {
    "EDUSTREAM_PARTITIONS": "four",
    "EDUSTREAM_BROKER_PRODUCER_LINGER_MS": "-5",
    "EDUSTREAM_PSEUDONYM_KEY": PSEUDONYM_KEY,
}


def test_invalid_values_name_each_variable_and_show_no_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every invalid variable is named with its problem; no value is echoed."""
    for name, value in BAD.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        get_settings.__wrapped__()  # past the cache: read the environment now

    message = str(raised.value)
    assert "EDUSTREAM_PARTITIONS: Input should be a valid integer" in message
    assert "EDUSTREAM_BROKER_PRODUCER_LINGER_MS: Input should be greater" in message
    assert "four" not in message
    assert PSEUDONYM_KEY not in message


def test_the_cli_stops_with_the_message_and_no_traceback() -> None:
    """``edustream worker`` with an invalid setting exits 2 with one line."""
    done = subprocess.run(
        [sys.executable, "-m", "edustream", "worker"],
        env={**os.environ, **BAD},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.startswith("edustream: invalid settings: ")
    assert "Traceback" not in done.stderr
    assert PSEUDONYM_KEY not in done.stderr + done.stdout
