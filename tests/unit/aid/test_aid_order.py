"""Arrival order of upstream facts does not change where the offers end up.

Hypothesis writes a small history (students, guardians, registry changes
including transfers and leaving, links and unlinks, assistance grants and
revocations), then delivers it in random orders. Whatever the order:

- the standing of every offer (its latest record, withdrawn offers left out)
  is the same, content and addressee included;
- answers given afterwards (accepts, declines, strangers, late answers)
  produce the same grants, closures and rejections;
- no output holds an ID number or a full name.

Withdrawals themselves are not compared: an offer made and withdrawn again
before anyone answered depends on the order by nature, since in one order
the guardian saw it and in another never did.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aid_factories import Events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.outputs import Offer
from edustream.aid.pipeline import AidInput, Outputs, run_pipeline
from edustream.aid.policy import Policy, load_default_policy
from edustream.aid.vocabulary import Answer, Category, Change, Stage
from edustream.ids import find_ids

POLICY: Policy = load_default_policy()
NAMES = ("张三明", "李四", "欧阳小红")
HOURS = st.integers(min_value=0, max_value=40)
VALIDITY = st.sampled_from(
    [
        (date(2026, 1, 1), None),
        (date(2026, 1, 1), date(2026, 8, 31)),
        (date(2026, 6, 1), date(2027, 6, 30)),
        (date(2026, 10, 1), None),
    ]
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Events, list[AidInput]]:
    """Draw upstream events about a few students and guardians."""
    events = Events()
    students = [
        events.student(n) if draw(st.booleans()) else f"J{n:018d}"
        for n in range(draw(st.integers(1, 3)))
    ]
    guardians = [events.person(n) for n in range(draw(st.integers(1, 3)))]

    history: list[AidInput] = []
    for index, student in enumerate(students):
        history.extend(draw(_registry_changes(events, student, NAMES[index])))
    history.extend(draw(_links(events, guardians, students)))
    holders = guardians + [s for s in students if not s.startswith("J")]
    history.extend(draw(_statuses(events, holders)))
    return events, history


def _registry_changes(
    events: Events, student: str, name: str
) -> st.SearchStrategy[list[RegistryChange]]:
    """Return a strategy for one student's registry changes."""
    change = st.builds(
        lambda at, kind, stage, boarding, school: events.registry(
            student,
            at=at,
            change=kind,
            stage=stage,
            boarding=boarding,
            school=school,
            name=name,
        ),
        HOURS,
        st.sampled_from(
            [Change.ENROL, Change.TRANSFER, Change.CORRECTION, Change.GRADUATE]
        ),
        st.sampled_from([Stage.PRIMARY, Stage.SENIOR, Stage.UNDERGRADUATE]),
        st.booleans(),
        st.sampled_from(["SCH-1", "SCH-2"]),
    )
    return st.lists(change, min_size=1, max_size=3)


def _links(
    events: Events, guardians: list[str], students: list[str]
) -> st.SearchStrategy[list[FamilyLink]]:
    """Return a strategy for links and unlinks between guardians and students."""
    link = st.builds(
        lambda at, guardian, student, linked: events.link(
            guardian, student, at=at, linked=linked
        ),
        HOURS,
        st.sampled_from(guardians),
        st.sampled_from(students),
        st.sampled_from([True, True, False]),
    )
    return st.lists(link, min_size=0, max_size=5)


def _statuses(
    events: Events, holders: list[str]
) -> st.SearchStrategy[list[AssistanceStatus]]:
    """Return a strategy for assistance grants and revocations."""

    def build(
        *,
        at: int,
        person: str,
        category: Category,
        granted: bool,
        validity: tuple[date, date | None],
        status_id: str,
    ) -> AssistanceStatus:
        return events.status(
            person,
            at=at,
            category=category,
            granted=granted,
            valid_from=validity[0],
            valid_to=validity[1],
            status_id=status_id,
        )

    status = st.builds(
        build,
        at=HOURS,
        person=st.sampled_from(holders),
        category=st.sampled_from(list(Category)),
        granted=st.sampled_from([True, True, False]),
        validity=VALIDITY,
        status_id=st.sampled_from(["MZ-1", "MZ-2"]),
    )
    return st.lists(status, min_size=0, max_size=6)


def answers_for(
    events: Events, offers: list[Offer], choices: list[int]
) -> list[GuardianAnswer]:
    """Return one answer per offer: accept, decline, stranger, late or none."""
    answers: list[GuardianAnswer] = []
    for offer, choice in zip(offers, choices, strict=False):
        if choice == 0:
            answers.append(events.answer(offer, at=5))
        elif choice == 1:
            answers.append(events.answer(offer, at=5, answer=Answer.DECLINE))
        elif choice == 2:
            answers.append(events.answer(offer, at=5, account="acct-stranger"))
        elif choice == 3:
            answers.append(events.answer(offer, at=31 * 24))
    return answers


def run(history: list[AidInput]) -> Outputs:
    """Run ``history`` through both stages."""
    return run_pipeline(history, POLICY, Events.KEY)


def settled(outputs: Outputs) -> dict[str, Any]:
    """Return what must not depend on arrival order, in comparable form."""
    return {
        "standing": {k: v.to_dict() for k, v in outputs.standing().items()},
        "grants": {k: v.to_dict() for k, v in outputs.grants().items()},
        "closures": {k: v.to_dict() for k, v in outputs.closures().items()},
        "rejections": {k: v.to_dict() for k, v in outputs.rejections().items()},
    }


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), drawn=histories())
def test_outcome_does_not_depend_on_arrival_order(
    data: st.DataObject, drawn: tuple[Events, list[AidInput]]
) -> None:
    """Any two arrival orders of one history settle every offer the same way."""
    events, history = drawn
    first = data.draw(st.permutations(history), label="first order")
    second = data.draw(st.permutations(history), label="second order")

    reference = run(first)
    offers = sorted(reference.open_offers().values(), key=lambda o: o.offer_id)
    choices = data.draw(
        st.lists(st.integers(0, 4), min_size=len(offers), max_size=len(offers)),
        label="answers",
    )
    answers = answers_for(events, offers, choices)

    one = run([*first, *answers])
    other = run([*second, *answers])

    assert settled(run(second))["standing"] == settled(reference)["standing"]
    assert settled(one) == settled(other)
    assert_names_no_one(one, history)


def assert_names_no_one(outputs: Outputs, history: list[AidInput]) -> None:
    """No output carries an ID number, a registry number or a full name."""
    text = json.dumps([r.to_dict() for r in outputs.records], ensure_ascii=False)

    assert find_ids(text) == []
    for event in history:
        if isinstance(event, RegistryChange):
            assert event.student_id not in text
            assert event.student_name not in text


@settings(max_examples=100, deadline=None)
@given(drawn=histories())
def test_every_answer_settles_at_most_one_grant_per_term_and_kind(
    drawn: tuple[Events, list[AidInput]],
) -> None:
    """Accepting every open offer twice yields one grant per offer, no more."""
    events, history = drawn
    offers = list(run(history).open_offers().values())
    answers = [events.answer(o, at=1) for o in offers]

    outputs = run([*history, *answers, *answers])

    grants = list(outputs.grants().values())
    keys = [(g.student_ref, g.term, g.aid_kind) for g in grants]
    assert len(keys) == len(set(keys)) == len(offers)
