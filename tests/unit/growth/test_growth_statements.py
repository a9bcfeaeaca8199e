"""Building statements, their identity and their xAPI form."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from growth_factories import (
    DISTRICT,
    MENTOR,
    MINUTE,
    ORGANISER,
    SCHOOL,
    STUDENT,
    activity,
    at,
    award,
    confirmation,
    enrolment,
    visit,
    void,
)
from hypothesis import given
from hypothesis import strategies as st

from edustream.growth.events import Activity, EnrolmentFact
from edustream.growth.identity import derive_id
from edustream.growth.rejections import Reason, Rejection
from edustream.growth.statements import (
    PLACE_TYPE,
    ObjectType,
    Statement,
    Verb,
    content_hash,
    duration_seconds,
    iso_duration,
    statement_for_award,
    statement_for_confirmation,
    statement_for_visit,
    statement_for_void,
    statements_for_confirmation,
)
from edustream.growth.vocabulary import Category

NOW = at("2024-09-10 12:00")
HOME = "https://growth.edustream.example"
BASE = f"{HOME}/xapi"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "PT0S"),
        (59, "PT59S"),
        (60, "PT1M"),
        (5400, "PT1H30M"),
        (3661, "PT1H1M1S"),
        (90000, "PT25H"),
    ],
)
def test_iso_duration_table(seconds: int, text: str) -> None:
    """Durations are written as ISO 8601 and read back."""
    assert iso_duration(seconds) == text
    assert duration_seconds(text) == seconds


@given(st.integers(min_value=0, max_value=10**7))
def test_iso_duration_round_trips(seconds: int) -> None:
    """Every whole number of seconds survives writing and reading."""
    assert duration_seconds(iso_duration(seconds)) == seconds


def test_iso_duration_refuses_negative_and_foreign_forms() -> None:
    """Negative lengths and forms this archive never writes are refused."""
    with pytest.raises(ValueError, match="negative"):
        iso_duration(-1)
    for text in ("PT", "P1D", "PT1.5S", "1H"):
        with pytest.raises(ValueError, match="not a duration"):
            duration_seconds(text)


def test_visit_statement_fields() -> None:
    """A visit becomes an attended statement whose id is the visit id."""
    stay = visit(at("2024-09-02 10:00"), 90)

    statement = statement_for_visit(stay, now=NOW)

    assert statement.id == stay.visit_id
    assert statement.archive_account == statement.actor_account == STUDENT
    assert (statement.verb_id, statement.verb_display) == (
        Verb.ATTENDED.value,
        "attended",
    )
    assert statement.object_id == f"{BASE}/venues/v-museum"
    assert statement.object_definition_type == PLACE_TYPE
    assert (statement.result_duration, statement.result_completion) == ("PT1H30M", True)
    assert statement.context_category is Category.AESTHETIC
    assert (statement.context_school_id, statement.context_district_code) == (
        SCHOOL,
        DISTRICT,
    )
    assert statement.context_flagged_auto_closed is False
    assert (statement.timestamp, statement.stored) == (stay.started_at, NOW)


def test_auto_closed_visit_is_flagged_and_not_completed() -> None:
    """An auto-closed visit says so in its context and result."""
    statement = statement_for_visit(
        visit(at("2024-09-02 10:00"), 240, auto_closed=True), now=NOW
    )

    assert statement.context_flagged_auto_closed is True
    assert statement.result_completion is False
    assert statement.result_duration == "PT4H"


def test_visit_statement_as_xapi_json() -> None:
    """The nested xAPI form carries account, verb, object, result, context."""
    stay = visit(at("2024-09-02 10:00"), 90)

    xapi = statement_for_visit(stay, now=NOW).to_xapi_json()

    ext = f"{BASE}/extensions"
    assert xapi == {
        "id": stay.visit_id,
        "actor": {
            "objectType": "Agent",
            "account": {"homePage": HOME, "name": STUDENT},
        },
        "verb": {
            "id": "http://adlnet.gov/expapi/verbs/attended",
            "display": {"en-US": "attended", "zh-CN": "参加"},
        },
        "object": {
            "objectType": "Activity",
            "id": f"{BASE}/venues/v-museum",
            "definition": {"name": {"zh-CN": "城市美术馆"}, "type": PLACE_TYPE},
        },
        "result": {"duration": "PT1H30M", "completion": True},
        "context": {
            "extensions": {
                f"{ext}/category": "AESTHETIC",
                f"{ext}/venue-id": "v-museum",
                f"{ext}/school-id": SCHOOL,
                f"{ext}/district-code": DISTRICT,
                f"{ext}/flagged-auto-closed": False,
            }
        },
        "timestamp": "2024-09-02T02:00:00.000Z",
        "stored": "2024-09-10T04:00:00.000Z",
    }
    json.dumps(xapi)


def test_confirmation_builds_one_statement_per_enrolled_student() -> None:
    """Each enrolled student gets a completed statement; others are refused."""
    given_ = confirmation(90, at("2024-09-05 16:00"), students=("s-1", "s-2", "s-3"))
    facts = {"s-1": enrolment("s-1"), "s-3": enrolment("s-3", enrolled=False)}

    statements, refused = statements_for_confirmation(
        given_, activity(), facts, now=NOW
    )

    (only,) = statements
    assert only.id == derive_id("confirmation-statement", given_.confirmation_id, "s-1")
    assert (only.verb_id, only.result_duration) == (Verb.COMPLETED.value, "PT1H30M")
    assert only.context_category is Category.LABOUR
    assert only.context_group_id == "g-1"
    assert only.context_registration == derive_id("group", "a-pottery", "g-1")
    assert only.object_id == f"{BASE}/activities/a-pottery"
    assert [(r.reason, r.message) for r in refused] == [
        (Reason.NOT_ENROLLED, "student at position 2 is not enrolled"),
        (Reason.NOT_ENROLLED, "student at position 3 is not enrolled"),
    ]


CONFIRMATION_FAULTS = [
    pytest.param(None, MENTOR, "2024-09-05 16:00", Reason.UNKNOWN_ACTIVITY, id="none"),
    pytest.param(
        activity(deleted=True),
        MENTOR,
        "2024-09-05 16:00",
        Reason.UNKNOWN_ACTIVITY,
        id="deleted",
    ),
    pytest.param(
        activity("a-other"),
        MENTOR,
        "2024-09-05 16:00",
        Reason.UNKNOWN_ACTIVITY,
        id="other activity",
    ),
    pytest.param(
        activity(),
        "mentor-impostor",
        "2024-09-05 16:00",
        Reason.NOT_MENTOR,
        id="not the mentor",
    ),
    pytest.param(
        activity(), MENTOR, "2024-09-10 12:01:01", Reason.FUTURE_TIME, id="future"
    ),
]


@pytest.mark.parametrize(("course", "mentor", "when", "reason"), CONFIRMATION_FAULTS)
def test_faulty_confirmation_is_refused_once(
    course: Activity | None, mentor: str, when: str, reason: Reason
) -> None:
    """A fault of the confirmation itself refuses it once, for all students."""
    given_ = confirmation(60, at(when), students=(STUDENT, "s-2"), mentor=mentor)
    facts = {STUDENT: enrolment(), "s-2": enrolment("s-2")}

    statements, refused = statements_for_confirmation(given_, course, facts, now=NOW)

    assert statements == []
    assert [(r.reason, r.source_event_id) for r in refused] == [
        (reason, given_.event_id)
    ]


def test_single_student_confirmation_checks_membership() -> None:
    """Building for a student the confirmation does not name is an error."""
    given_ = confirmation(60, at("2024-09-05 16:00"))

    built = statement_for_confirmation(
        given_, STUDENT, activity(), enrolment(), now=NOW
    )

    assert isinstance(built, Statement)
    with pytest.raises(ValueError, match="not named"):
        statement_for_confirmation(given_, "s-9", activity(), enrolment(), now=NOW)


def test_award_becomes_earned_statement() -> None:
    """An organiser's award is an earned statement with the issuer."""
    given_ = award(at("2024-09-06 09:00"))

    built = statement_for_award(given_, enrolment(), now=NOW)

    assert isinstance(built, Statement)
    assert built.id == derive_id("award-statement", given_.award_id)
    assert built.verb_id == "http://id.tincanapi.com/verb/earned"
    assert (built.object_name, built.context_issuer) == (
        "青少年书画比赛一等奖",
        "市青少年宫",
    )
    assert built.to_xapi_json()["verb"]["display"] == {
        "en-US": "earned",
        "zh-CN": "获得",
    }


@pytest.mark.parametrize(
    ("fact", "when", "reason"),
    [
        (None, "2024-09-06 09:00", Reason.NOT_ENROLLED),
        (enrolment(enrolled=False), "2024-09-06 09:00", Reason.NOT_ENROLLED),
        (enrolment(), "2024-09-11 09:00", Reason.FUTURE_TIME),
    ],
)
def test_award_refusals(fact: EnrolmentFact | None, when: str, reason: Reason) -> None:
    """Awards to students not enrolled, or dated ahead, are refused."""
    built = statement_for_award(award(at(when)), fact, now=NOW)

    assert isinstance(built, Rejection)
    assert built.reason is reason


def test_void_is_a_statement_ref_by_the_organiser() -> None:
    """A void names its target by StatementRef and its organiser as actor."""
    target = statement_for_visit(visit(at("2024-09-02 10:00"), 30), now=NOW)
    given_ = void(target.id, at("2024-09-08 09:00"))

    built = statement_for_void(given_, now=NOW)

    assert built.is_void
    assert (built.object_type, built.object_id) == (ObjectType.STATEMENT_REF, target.id)
    assert (built.actor_account, built.archive_account) == (ORGANISER, STUDENT)
    assert built.to_xapi_json()["object"] == {
        "objectType": "StatementRef",
        "id": target.id,
    }
    assert (
        built.to_xapi_json()["context"]["extensions"][
            f"{BASE}/extensions/archive-account"
        ]
        == STUDENT
    )


def test_content_hash_ignores_stored_only() -> None:
    """Storing again keeps the hash; any content change alters it."""
    statement = statement_for_visit(visit(at("2024-09-02 10:00"), 30), now=NOW)

    assert content_hash(replace(statement, stored=NOW + MINUTE)) == content_hash(
        statement
    )
    assert content_hash(replace(statement, result_duration="PT31M")) != content_hash(
        statement
    )


def test_statement_json_round_trip() -> None:
    """A statement survives its dict form through JSON."""
    statement = statement_for_void(void("x", at("2024-09-08 09:00")), now=NOW)

    assert Statement.from_dict(json.loads(json.dumps(statement.to_dict()))) == statement
