"""The aid Avro schemas: conventions, and every record through the codec."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import avro_schemas
from avro_schemas.codec import default_codec
from edustream.aid.facts import (
    LinkFact,
    StatusFact,
    person_fact_from_dict,
    person_fact_to_dict,
    student_fact_from_dict,
    student_fact_to_dict,
)
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.outputs import (
    Basis,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import (
    Answer,
    Category,
    Change,
    Holder,
    Outcome,
    RejectionReason,
    Relation,
    Stage,
    WithdrawalReason,
)
from edustream.errors import PoisonError

SCHEMA_DIR = Path(avro_schemas.__file__).parent / "aid"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
T0 = 1_788_220_800_000
EID = "0c323175-524f-5526-af85-75e98c6821c7"
OID = "306f6fd4-473c-5a8a-befb-d02690f68bc3"

STATUS = StatusRecord(
    event_id=EID,
    occurred_at=T0,
    person_ref="psn_abc",
    status_id="MZ-1",
    category=Category.DISABILITY,
    granted=True,
    valid_from=date(2026, 1, 1),
    valid_to=date(2026, 12, 31),
)
LINK = LinkRecord(
    event_id=EID,
    occurred_at=T0,
    guardian_ref="psn_abc",
    guardian_account="acct-1",
    student_ref="stu_def",
    relation=Relation.GRANDPARENT,
    linked=True,
)
REGISTRY = RegistryRecord(
    event_id=EID,
    occurred_at=T0,
    student_ref="stu_def",
    change=Change.TRANSFER,
    masked_name="张*明",
    school_id="SCH-1",
    school_name="第一小学",
    district_code="310104",
    stage=Stage.JUNIOR,
    grade=2,
    boarding=False,
)
OFFER = Offer(
    event_id=EID,
    occurred_at=T0,
    offer_id=OID,
    student_ref="stu_def",
    guardian_account="acct-1",
    child_name="张*明",
    school_id="SCH-1",
    school_name="第一小学",
    district_code="310104",
    stage=Stage.SENIOR,
    grade=1,
    aid_kind="NATIONAL_GRANT",
    amount_fen=115000,
    term="2026-autumn",
    rule_id="grant-senior",
    policy_version="2026.2",
    basis=Basis(Category.LOW_INCOME, Holder.GUARDIAN, date(2026, 1, 1), None),
    expires_at=T0 + 30 * 86_400_000,
)

RECORDS: list[tuple[str, Any]] = [
    (
        "RegistryChange",
        RegistryChange(
            event_id=EID,
            occurred_at=T0,
            change=Change.ENROL,
            student_id="J" + "1" * 18,
            student_name="张三明",
            school_id="SCH-1",
            school_name="第一小学",
            district_code="310104",
            stage=Stage.PRIMARY,
            grade=1,
            boarding=True,
        ),
    ),
    (
        "FamilyLink",
        FamilyLink(
            event_id=EID,
            occurred_at=T0,
            guardian_id="34052419800101001X",
            guardian_account="acct-1",
            student_id="J" + "1" * 18,
            relation=Relation.FATHER,
            linked=False,
        ),
    ),
    (
        "AssistanceStatus",
        AssistanceStatus(
            event_id=EID,
            occurred_at=T0,
            person_id="34052419800101001X",
            category=Category.ORPHAN_OR_UNCARED,
            granted=False,
            valid_from=date(2025, 3, 1),
            valid_to=None,
            status_id="MZ-9",
        ),
    ),
    (
        "GuardianAnswer",
        GuardianAnswer(
            event_id=EID,
            occurred_at=T0,
            offer_id=OID,
            student_ref="stu_def",
            guardian_account="acct-1",
            answer=Answer.ACCEPT,
            signature_ref="esign-1",
        ),
    ),
    ("RegistryRecord", REGISTRY),
    ("StatusRecord", STATUS),
    ("LinkRecord", LINK),
    ("Offer", OFFER),
    (
        "OfferWithdrawal",
        OfferWithdrawal(
            EID, T0, OID, "stu_def", "acct-1", WithdrawalReason.READDRESSED
        ),
    ),
    ("OfferClosed", OfferClosed(EID, T0, OID, "stu_def", "acct-1", Outcome.EXPIRED)),
    (
        "Grant",
        Grant(
            EID,
            T0,
            OID,
            OID,
            "stu_def",
            "SCH-1",
            "310104",
            "FEE_WAIVER",
            90000,
            "2026-autumn",
            "waiver-senior",
            "2026.2",
            "esign-1",
        ),
    ),
    (
        "RejectedAnswer",
        RejectedAnswer(EID, T0, OID, EID, "acct-1", RejectionReason.WRONG_GUARDIAN),
    ),
]


def _fields(schema: Any) -> list[dict[str, Any]]:
    """Every field of every record inside ``schema``, nested ones included."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, list):
        for branch in schema:
            found.extend(_fields(branch))
    elif isinstance(schema, dict):
        for field in schema.get("fields", []):
            found.append(field)
            found.extend(_fields(field["type"]))
        if "items" in schema:
            found.extend(_fields(schema["items"]))
    return found


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_conventions(path: Path) -> None:
    """Every schema is in edustream.aid, documents every field and has event ids."""
    schema = json.loads(path.read_text(encoding="utf-8"))

    assert schema["namespace"] == "edustream.aid"
    assert schema["doc"]
    assert all(field.get("doc") for field in _fields(schema))

    top = {field["name"]: field["type"] for field in schema["fields"]}
    assert top["event_id"] == {"type": "string", "logicalType": "uuid"}
    assert top["occurred_at"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_one_schema_per_event_type() -> None:
    """Each record type has exactly one schema file, and there are no others."""
    names = {json.loads(p.read_text(encoding="utf-8"))["name"] for p in SCHEMA_FILES}
    assert names == {name for name, _ in RECORDS} | {"PersonFact", "StudentFact"}


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=[n for n, _ in RECORDS])
def test_record_round_trips_through_codec_and_json(name: str, record: Any) -> None:
    """to_dict fits the schema exactly and from_dict reads codec and JSON forms."""
    codec = default_codec()
    full_name = f"edustream.aid.{name}"

    decoded = codec.decode_as(full_name, codec.encode(full_name, record.to_dict()))
    via_json = json.loads(json.dumps(record.to_dict()))

    assert type(record).from_dict(decoded) == record
    assert type(record).from_dict(via_json) == record


@pytest.mark.parametrize(
    "fact",
    [
        REGISTRY,
        StatusFact.addressed("stu_def", Holder.GUARDIAN, STATUS),
        LinkFact.addressed(LINK, (STATUS,)),
        LinkFact.addressed(LINK, ()),
    ],
    ids=["registry", "status", "link", "unlink"],
)
def test_student_fact_envelope_round_trips(fact: Any) -> None:
    """A student fact survives the StudentFact envelope through the codec."""
    codec = default_codec()
    name = "edustream.aid.StudentFact"

    decoded = codec.decode_as(name, codec.encode(name, student_fact_to_dict(fact)))

    assert student_fact_from_dict(decoded) == fact


@pytest.mark.parametrize("record", [STATUS, LINK], ids=["status", "link"])
def test_person_fact_envelope_round_trips(record: Any) -> None:
    """A person record survives the PersonFact envelope through the codec."""
    codec = default_codec()
    name = "edustream.aid.PersonFact"

    envelope = person_fact_to_dict(record)
    decoded = codec.decode_as(name, codec.encode(name, envelope))

    assert envelope["person_ref"] == "psn_abc"
    assert person_fact_from_dict(decoded) == record


def test_sensitive_fields_stay_out_of_repr() -> None:
    """An upstream event's repr shows neither the ID number nor the name."""
    change = RECORDS[0][1]
    status = RECORDS[2][1]

    assert "张三明" not in repr(change)
    assert "J111" not in repr(change)
    assert "34052419800101001X" not in repr(status)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {**OFFER.to_dict(), "stage": "NURSERY"},
            "Offer: a field has a malformed value",
        ),
        (
            {k: v for k, v in OFFER.to_dict().items() if k != "term"},
            "Offer: field 'term' is missing",
        ),
        ({**OFFER.to_dict(), "occurred_at": "soon"}, "not a number of millis"),
    ],
)
def test_malformed_record_is_poison(data: dict[str, Any], message: str) -> None:
    """A record with a missing or bad field raises PoisonError naming the field."""
    with pytest.raises(PoisonError, match=message) as caught:
        Offer.from_dict(data)
    assert caught.value.reason == "invalid_record"


def test_unsigned_acceptance_is_poison() -> None:
    """An ACCEPT without a signature reference is refused on decode."""
    data = {**RECORDS[3][1].to_dict(), "signature_ref": None}

    with pytest.raises(PoisonError, match="no signature_ref"):
        GuardianAnswer.from_dict(data)


def test_unsigned_decline_is_fine() -> None:
    """A DECLINE needs no signature."""
    data = {**RECORDS[3][1].to_dict(), "signature_ref": None, "answer": "DECLINE"}

    assert GuardianAnswer.from_dict(data).answer is Answer.DECLINE
