"""structlog configuration and the privacy guard every log line passes.

One event per unit of work, with key/value fields; JSON when stderr is not a
terminal. The ``redact_personal_data`` processor runs last before rendering,
so no call site can leak an ID number or a name by accident: fields whose
names mean personal data are dropped to a marker, and any valid ID number
inside any string value is masked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO, cast

import structlog

from edustream.ids import find_ids

REDACTED = "[redacted]"

# Field names that carry names or ID numbers on upstream topics. A log call
# that passes one of them gets a marker instead of the value.
PERSONAL_FIELDS = frozenset(
    {
        "id_number",
        "student_id",
        "guardian_id",
        "person_id",
        "student_name",
        "guardian_name",
        "payer_name",
        "name",
        "full_name",
    }
)


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """Drop personal fields and mask ID numbers found in any value."""
    for key in list(event_dict):
        if key in PERSONAL_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _mask(event_dict[key])
    return event_dict


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        for found in find_ids(value):
            value = value.replace(found, REDACTED)
        return value
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, dict):
        return {
            k: REDACTED if k in PERSONAL_FIELDS else _mask(v) for k, v in value.items()
        }
    return value


class _CurrentStderr:
    """Whatever sys.stderr is at the moment of writing.

    Binding the stream object at configure time would keep writing to a
    stream a test runner or a CLI harness has since replaced and closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure structlog and route stdlib logging (Faust, aiokafka) through it."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            redact_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(
            file=cast(TextIO, _CurrentStderr())
        ),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level, shared, renderer)


def _route_stdlib(level: str, shared: list[Any], renderer: Any) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter at INFO (every fetch, every rebalance step) would drown
    # the one-line-per-unit-of-work log; warnings and errors still show.
    for noisy in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(**bound: Any) -> Any:
    """A structlog logger with the given fields bound.

    The logger is a lazy proxy, so one created at import time still follows
    the configuration made later by ``configure``.
    """
    return structlog.get_logger(**bound)
