"""The person router: per-person state, facts addressed to students."""

from __future__ import annotations

import json

from aid_factories import Events

from edustream.aid.facts import LinkFact, StatusFact
from edustream.aid.intake import Intake
from edustream.aid.router import PersonState, person_key, route
from edustream.aid.vocabulary import Category, Holder
from edustream.pseudonym import retag


def test_status_goes_to_the_persons_own_student_entry(events: Events) -> None:
    """With no links, a status is addressed only to the person as a student."""
    intake = Intake(events.KEY)
    record = intake.status(events.status(events.student(1), at=1))
    state = PersonState()

    facts = route(state, record)

    assert facts == [
        StatusFact.addressed(retag(record.person_ref, "stu"), Holder.STUDENT, record)
    ]
    assert person_key(record) == record.person_ref


def test_status_after_link_reaches_the_linked_student(events: Events) -> None:
    """A guardian's status is also addressed to each student linked to them."""
    intake = Intake(events.KEY)
    guardian, student = events.person(1), events.student(1)
    link = intake.link(events.link(guardian, student, at=1))
    status = intake.status(events.status(guardian, at=2))
    state = PersonState()

    route(state, link)
    facts = route(state, status)

    targets = {(f.student_ref, f.holder) for f in facts if isinstance(f, StatusFact)}
    assert targets == {
        (retag(status.person_ref, "stu"), Holder.STUDENT),
        (link.student_ref, Holder.GUARDIAN),
    }


def test_link_after_status_carries_the_statuses(events: Events) -> None:
    """A link made after the guardian's statuses brings them along."""
    intake = Intake(events.KEY)
    guardian, student = events.person(1), events.student(1)
    first = intake.status(events.status(guardian, at=1, status_id="A"))
    second = intake.status(
        events.status(guardian, at=2, status_id="B", category=Category.DISABILITY)
    )
    link = intake.link(events.link(guardian, student, at=3))
    state = PersonState()

    route(state, second)
    route(state, first)
    facts = route(state, link)

    assert facts == [LinkFact.addressed(link, (first, second))]


def test_unlink_carries_no_statuses_and_stops_forwarding(events: Events) -> None:
    """After an unlink the student hears nothing more about the guardian."""
    intake = Intake(events.KEY)
    guardian, student = events.person(1), events.student(1)
    status = intake.status(events.status(guardian, at=1))
    state = PersonState()
    route(state, intake.link(events.link(guardian, student, at=2)))

    unlinked = route(
        state, intake.link(events.link(guardian, student, at=3, linked=False))
    )
    later = route(state, status)

    assert isinstance(unlinked[0], LinkFact)
    assert unlinked[0].guardian_statuses == ()
    assert [f.student_ref for f in later] == [retag(status.person_ref, "stu")]


def test_stale_link_resends_the_held_one(events: Events) -> None:
    """An older link version changes nothing and re-sends the newer one."""
    intake = Intake(events.KEY)
    guardian, student = events.person(1), events.student(1)
    older = intake.link(events.link(guardian, student, at=1))
    newer = intake.link(events.link(guardian, student, at=5, linked=False))
    state = PersonState()

    route(state, newer)
    facts = route(state, older)

    assert facts == [LinkFact.addressed(newer, ())]
    assert state.links[newer.student_ref] == newer


def test_redelivery_resends_identical_facts(events: Events) -> None:
    """The same record routed twice yields the same facts, same event ids."""
    intake = Intake(events.KEY)
    record = intake.status(events.status(events.person(1), at=1))
    state = PersonState()

    assert route(state, record) == route(state, record)


def test_revocation_replaces_the_grant(events: Events) -> None:
    """A later version of one status id replaces the earlier one."""
    intake = Intake(events.KEY)
    person = events.person(1)
    granted = intake.status(events.status(person, at=1))
    revoked = intake.status(events.status(person, at=2, granted=False))
    state = PersonState()

    route(state, revoked)
    facts = route(state, granted)

    assert [f.status for f in facts if isinstance(f, StatusFact)] == [revoked]
    assert state.statuses == {"MZ-0001": revoked}


def test_state_round_trips_through_json(events: Events) -> None:
    """Router state survives to_dict, JSON and from_dict unchanged."""
    intake = Intake(events.KEY)
    guardian = events.person(1)
    state = PersonState()
    route(state, intake.status(events.status(guardian, at=1, valid_to=None)))
    route(state, intake.link(events.link(guardian, events.student(1), at=2)))
    route(state, intake.link(events.link(guardian, events.student(2), linked=False)))

    restored = PersonState.from_dict(json.loads(json.dumps(state.to_dict())))

    assert restored == state
    assert restored.linked_students() == state.linked_students()
    assert len(restored.linked_students()) == 1
