"""The privacy guard on every log line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from edustream import logs
from edustream.logs import REDACTED, redact_personal_data

ID = "34052419800101001X"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"student_id": ID}, {"student_id": REDACTED}),
        ({"name": "张三明"}, {"name": REDACTED}),
        (
            {"detail": f"bad record for {ID} here"},
            {"detail": f"bad record for {REDACTED} here"},
        ),
        ({"ids": [ID, "x"]}, {"ids": [REDACTED, "x"]}),
        (
            {"ctx": {"guardian_name": "李四", "n": 3}},
            {"ctx": {"guardian_name": REDACTED, "n": 3}},
        ),
        ({"offset": 17, "topic": "aid.offers"}, {"offset": 17, "topic": "aid.offers"}),
        ({"note": "340524198001010011"}, {"note": "340524198001010011"}),  # not valid
    ],
)
def test_redaction_table(
    fields: dict[str, object], expected: dict[str, object]
) -> None:
    """Personal fields are replaced and valid ID numbers masked anywhere."""
    assert dict(redact_personal_data(None, "info", dict(fields))) == expected


@pytest.fixture
def reset_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were."""
    handlers = logging.getLogger().handlers[:]
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("reset_logging")
def test_rendered_json_line_carries_no_id(capsys: pytest.CaptureFixture[str]) -> None:
    """A real log call renders one JSON line with the ID masked."""
    logs.configure("DEBUG", "json")
    logs.get_logger(flow="aid").info("offer_made", detail=f"for {ID}", guardian_id=ID)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert ID not in line
    assert record["event"] == "offer_made"
    assert record["flow"] == "aid"
    assert record["guardian_id"] == REDACTED
