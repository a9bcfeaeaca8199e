"""Every error edustream raises, rooted at one class.

The agent loop reads the branch to decide what to do with a failing input:

- ``RetriableError``: the input is fine but something it needs is not (Redis is
  down, the broker timed out). Retry with backoff; never skip the input.
- ``PoisonError``: the input itself is bad. Retrying cannot help, so the
  input goes to the flow's dead-letter topic with ``reason``.
- ``ConfigError``: the process cannot start as configured. Stop with a message
  that names the setting, file, line or field at fault.
"""

from __future__ import annotations


class EdustreamError(Exception):
    """Root of every error raised by edustream code."""

    retriable: bool = False


class ConfigError(EdustreamError):
    """Settings, a policy file or a rule file are invalid; start-up stops."""


class RetriableError(EdustreamError):
    """A dependency failed; the same input may succeed later."""

    retriable = True


class PoisonError(EdustreamError):
    """The input can never be processed; it belongs on a dead-letter topic.

    ``reason`` is a short machine-readable code (``undecodable``,
    ``unknown_schema_id``, ``invalid_record``, ``bad_signature``...). The
    message is the human explanation and must carry no personal data.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


class CodecError(PoisonError):
    """Bytes that are not a valid record under our schemas.

    Raised for undecodable bytes, unknown schema ids and records that fail
    validation, so callers catch one type for every codec failure.
    """


class SignatureError(PoisonError):
    """A payment callback whose signature, certificate or timestamp fails."""


class BrokerLostError(EdustreamError):
    """The broker no longer holds the topics our state was built from.

    The embedded broker keeps everything in memory. After it restarts, state
    rebuilt from changelogs would silently disagree with the topics, so the
    worker stops instead of carrying on.
    """
