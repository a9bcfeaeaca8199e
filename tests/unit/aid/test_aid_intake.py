"""Intake: ID numbers become references, names become masks."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aid_factories import Events

from edustream.aid.intake import Intake
from edustream.aid.vocabulary import Category
from edustream.errors import ConfigError, PoisonError
from edustream.pseudonym import pseudonymise, retag


def test_registry_change_is_pseudonymised(events: Events) -> None:
    """The record carries the student reference and the masked name only."""
    intake = Intake(events.KEY)
    student = events.student(1)

    record = intake.registry(events.registry(student, name="王小红"))

    assert record.student_ref == pseudonymise(events.KEY, student, "stu")
    assert record.masked_name == "王*红"
    assert student not in str(record.to_dict())
    assert "王小红" not in str(record.to_dict())


def test_registry_number_and_id_number_give_one_student(events: Events) -> None:
    """A G registry number names the same student as the bare ID number."""
    intake = Intake(events.KEY)
    student = events.student(2)

    by_id = intake.registry(events.registry(student))
    by_registry_number = intake.registry(events.registry("G" + student))

    assert by_id.student_ref == by_registry_number.student_ref


def test_own_status_reaches_the_same_person_as_student(events: Events) -> None:
    """A person's status reference retags to the person's student reference."""
    intake = Intake(events.KEY)
    student = events.student(3)

    status = intake.status(events.status(student, category=Category.DISABILITY))
    registry = intake.registry(events.registry(student))

    assert status.person_ref.startswith("psn_")
    assert retag(status.person_ref, "stu") == registry.student_ref


def test_link_references_both_sides(events: Events) -> None:
    """A link carries the guardian reference, the account and the student ref."""
    intake = Intake(events.KEY)
    guardian, student = events.person(1), "J" + "2" * 18

    record = intake.link(events.link(guardian, student, account="acct-9"))

    assert record.guardian_ref == pseudonymise(events.KEY, guardian, "psn")
    assert record.student_ref == pseudonymise(events.KEY, student, "stu")
    assert record.guardian_account == "acct-9"


@pytest.mark.parametrize(
    "bad",
    [
        "34052419800101001",  # too short
        "340524198001010011",  # wrong check character
        "K" + "1" * 18,  # unknown prefix
        "J" + "1" * 17,  # constructed number too short
    ],
)
def test_malformed_student_numbers_are_poison(events: Events, bad: str) -> None:
    """A registry change without a usable number is poison, without echoing it."""
    intake = Intake(events.KEY)

    with pytest.raises(PoisonError) as caught:
        intake.registry(events.registry(bad))

    assert caught.value.reason == "invalid_record"
    assert bad not in str(caught.value)


def test_guardian_needs_a_real_id_number(events: Events) -> None:
    """A guardian's J number is refused: civil affairs knows ID numbers only."""
    intake = Intake(events.KEY)
    link = events.link(events.person(1), events.student(1))

    with pytest.raises(PoisonError, match="FamilyLink"):
        intake.link(replace(link, guardian_id="J" + "1" * 18))


def test_short_key_stops_intake() -> None:
    """An intake cannot be built with a key too short to protect ID numbers."""
    with pytest.raises(ConfigError):
        Intake(b"tiny")
