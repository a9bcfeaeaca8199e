"""The growth Avro schemas and the records that travel under them."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
from growth_factories import (
    STUDENT,
    activity,
    at,
    award,
    confirmation,
    enrolment,
    scan,
    venue,
    visit,
    void,
)

from edustream.errors import PoisonError
from edustream.growth.certificates import Certificate, CertificateStatus
from edustream.growth.events import (
    Activity,
    CertificateAward,
    EnrolmentFact,
    MentorConfirmation,
    Scan,
    Venue,
    Void,
)
from edustream.growth.identity import derive_id
from edustream.growth.statements import (
    Statement,
    statement_for_award,
    statement_for_confirmation,
    statement_for_visit,
    statement_for_void,
)
from edustream.growth.vocabulary import Category, Direction

SCHEMA_DIR = Path(__file__).parents[3] / "avro_schemas" / "growth"
NOW = at("2024-09-10 12:00")


def _schemas() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        found[raw["name"]] = raw
    return found


def _statements() -> list[Statement]:
    stay = statement_for_visit(visit(at("2024-09-02 10:00"), 90), now=NOW)
    confirmed = statement_for_confirmation(
        confirmation(60, at("2024-09-05 16:00")),
        STUDENT,
        activity(),
        enrolment(),
        now=NOW,
    )
    earned = statement_for_award(award(at("2024-09-06 09:00")), enrolment(), now=NOW)
    assert isinstance(confirmed, Statement)
    assert isinstance(earned, Statement)
    voided = statement_for_void(void(stay.id, at("2024-09-08 09:00")), now=NOW)
    return [stay, confirmed, earned, voided]


def _certificate(status: CertificateStatus) -> Certificate:
    withdrawn = status is CertificateStatus.WITHDRAWN
    return Certificate(
        certificate_id=derive_id("certificate", "labour-20-hours", STUDENT, "t"),
        student_account=STUDENT,
        rule_id="labour-20-hours",
        title="Labour education: 20 hours in a term",
        title_zh="劳动教育：一学期满20小时",
        term="2024-2025-autumn",
        category=Category.LABOUR,
        evidence=(derive_id("e", 1), derive_id("e", 2)),
        issued_at=at("2024-10-01 10:00"),
        status=status,
        revision=2 if withdrawn else 1,
        withdrawn_at=at("2024-10-09 10:00") if withdrawn else None,
    )


SAMPLES: list[tuple[str, object, Callable[[dict[str, Any]], object]]] = [
    ("Venue", venue(), Venue.from_dict),
    ("Venue", venue(opens_at=None, closes_at=None, deleted=True), Venue.from_dict),
    ("Activity", activity(), Activity.from_dict),
    ("Scan", scan(Direction.CHECK_IN, at("2024-09-02 10:00")), Scan.from_dict),
    (
        "Scan",
        scan(Direction.CHECK_OUT, at("2024-09-02 11:00"), activity_id="a-pottery"),
        Scan.from_dict,
    ),
    (
        "MentorConfirmation",
        confirmation(45, at("2024-09-05 16:00"), students=("s-1", "s-2")),
        MentorConfirmation.from_dict,
    ),
    ("CertificateAward", award(at("2024-09-06 09:00")), CertificateAward.from_dict),
    ("Void", void(derive_id("x", 1), at("2024-09-08 09:00")), Void.from_dict),
    ("EnrolmentFact", enrolment(), EnrolmentFact.from_dict),
    *(("Statement", s, Statement.from_dict) for s in _statements()),
    ("Certificate", _certificate(CertificateStatus.ISSUED), Certificate.from_dict),
    ("Certificate", _certificate(CertificateStatus.WITHDRAWN), Certificate.from_dict),
]


@pytest.mark.parametrize(
    ("name", "record", "read"),
    SAMPLES,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(SAMPLES)],
)
def test_record_round_trips_through_avro(
    name: str, record: Any, read: Callable[[dict[str, Any]], object]
) -> None:
    """A record written under its schema reads back equal."""
    schema = fastavro.parse_schema(_schemas()[name])
    buffer = io.BytesIO()

    fastavro.schemaless_writer(buffer, schema, record.to_dict())
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, None)

    assert read(decoded) == record  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "record", "read"),
    SAMPLES,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(SAMPLES)],
)
def test_record_round_trips_through_json(
    name: str, record: Any, read: Callable[[dict[str, Any]], object]
) -> None:
    """A record's dict form is plain JSON and reads back equal."""
    assert read(json.loads(json.dumps(record.to_dict()))) == record


def test_one_schema_per_event_type() -> None:
    """Every growth event type has exactly one schema file."""
    assert sorted(_schemas()) == [
        "Activity",
        "Certificate",
        "CertificateAward",
        "EnrolmentFact",
        "MentorConfirmation",
        "Scan",
        "Statement",
        "Venue",
        "Void",
    ]


@pytest.mark.parametrize("name", sorted(_schemas()))
def test_schema_conventions(name: str) -> None:
    """Namespace, envelope fields and a doc on every record and field."""
    raw = _schemas()[name]

    assert raw["namespace"] == "edustream.growth"
    assert raw["doc"]
    assert all(field.get("doc") for field in raw["fields"])
    first, second = raw["fields"][:2]
    assert (first["name"], first["type"]["logicalType"]) == ("event_id", "uuid")
    assert (second["name"], second["type"]["logicalType"]) == (
        "occurred_at",
        "timestamp-millis",
    )


def test_schemas_parse_together() -> None:
    """All growth schemas share one named-type table without clashes."""
    named: dict[str, Any] = {}
    for raw in _schemas().values():
        fastavro.parse_schema(raw, named_schemas=named)

    assert "edustream.growth.Category" in named


def test_dict_keys_match_schema_fields() -> None:
    """Every dict form writes exactly its schema's fields."""
    schemas = _schemas()
    for name, record, _ in SAMPLES:
        fields = [f["name"] for f in schemas[name]["fields"]]
        assert sorted(record.to_dict()) == sorted(fields), name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"categories": []}, "Venue has no category"),
        ({"opens_at": None}, "Venue has only one of its hours"),
        ({"closes_at": 1441}, "Venue hours are outside a day"),
        ({"capacity": -1}, "Venue capacity is negative"),
        ({"categories": ["SPORT"]}, "Venue has a malformed field"),
        ({"capacity": "200"}, "a number field is not an integer"),
    ],
)
def test_malformed_venue_is_poison(change: dict[str, Any], message: str) -> None:
    """An impossible venue is poison, with a message that names no value."""
    data = {**venue().to_dict(), **change}

    with pytest.raises(PoisonError, match=message) as caught:
        Venue.from_dict(data)

    assert caught.value.reason == "invalid_record"


def test_missing_field_names_the_field() -> None:
    """A missing field is poison naming the record and field."""
    data = scan(Direction.CHECK_IN, at("2024-09-02 10:00")).to_dict()
    del data["venue_id"]

    with pytest.raises(PoisonError, match="Scan lacks field venue_id"):
        Scan.from_dict(data)


def test_confirmation_without_minutes_is_poison() -> None:
    """A confirmation of zero minutes is refused as malformed."""
    data = {**confirmation(30, at("2024-09-05 16:00")).to_dict(), "minutes": 0}

    with pytest.raises(PoisonError, match="no minutes"):
        MentorConfirmation.from_dict(data)
