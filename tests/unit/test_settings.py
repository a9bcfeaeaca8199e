"""Settings from the environment, and a clear stop when one is invalid."""

from __future__ import annotations

import os
import re
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


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("EDUSTREAM_LOG_LEVEL", "BOGUS", "Input should be 'DEBUG'"),
        ("EDUSTREAM_LOG_FORMAT", "xml", "Input should be 'auto'"),
        ("EDUSTREAM_PARTITIONS", "0", "greater than or equal to 1"),
        ("EDUSTREAM_INGRESS_PORT", "99999", "less than or equal to 65535"),
        ("EDUSTREAM_BROKER_COMMIT_INTERVAL_S", "nan", "a finite number"),
        ("EDUSTREAM_BROKER_SESSION_TIMEOUT_S", "-1", "greater than 0"),
        ("EDUSTREAM_INGRESS_MAX_BODY_BYTES", "-5", "greater than or equal to 1"),
        ("EDUSTREAM_RECEIPT_CHECK_KEY", "", "at least 16 characters"),
        ("REDIS_URL", "notaurl", "must start with redis://"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    """Out-of-range or unknown values stop start-up, not a later step."""
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match=f"{variable}: .*{re.escape(problem)}"):
        get_settings.__wrapped__()


def test_the_log_level_may_be_written_in_small_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``debug`` means DEBUG, as it does for the logging module."""
    monkeypatch.setenv("EDUSTREAM_LOG_LEVEL", "debug")

    assert get_settings.__wrapped__().log_level == "DEBUG"
