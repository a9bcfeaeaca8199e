"""Builders for aid-flow tests.

``Events`` builds upstream events with valid ID numbers, fresh event ids and
times counted from the start of the 2026 autumn term, so a test reads as a
short story of what happened.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.outputs import Offer
from edustream.aid.vocabulary import Answer, Category, Change, Relation, Stage
from edustream.ids import make_id

KEY = b"test-pseudonym-key-0123456789abcdef"


class Events:
    """Builds upstream events with fresh ids; ``at`` is hours after term start."""

    HOUR = 3_600_000
    DAY = 24 * HOUR
    TERM_START = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp() * 1000)
    KEY = KEY

    def __init__(self) -> None:
        self._count = 0

    @staticmethod
    def person(sequence: int, area: str = "310104") -> str:
        """Return a valid resident ID number for test adult ``sequence``."""
        return make_id(area, date(1980, 1, 1 + sequence % 28), sequence % 1000)

    @staticmethod
    def student(sequence: int) -> str:
        """Return a valid resident ID number for test child ``sequence``."""
        return make_id("310115", date(2014, 3, 1 + sequence % 28), sequence % 1000)

    @staticmethod
    def account(guardian: str) -> str:
        """Return the portal account of test guardian ``guardian``."""
        return "acct-" + str(uuid.uuid5(uuid.NAMESPACE_OID, guardian))[:8]

    def at(self, hours: int) -> int:
        """Return epoch millis ``hours`` after term start."""
        return self.TERM_START + hours * self.HOUR

    def event_id(self) -> str:
        """Return a new, deterministic event id."""
        self._count += 1
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"test-event-{self._count}"))

    def registry(
        self,
        student: str,
        *,
        at: int = 0,
        change: Change = Change.ENROL,
        stage: Stage = Stage.PRIMARY,
        boarding: bool = True,
        school: str = "SCH-001",
        district: str = "310104",
        name: str = "张三明",
        grade: int = 3,
    ) -> RegistryChange:
        """Return a registry change for ``student``."""
        return RegistryChange(
            event_id=self.event_id(),
            occurred_at=self.at(at),
            change=change,
            student_id=student,
            student_name=name,
            school_id=school,
            school_name=f"{school} school",
            district_code=district,
            stage=stage,
            grade=grade,
            boarding=boarding,
        )

    def link(
        self,
        guardian: str,
        student: str,
        *,
        at: int = 0,
        linked: bool = True,
        account: str | None = None,
        relation: Relation = Relation.MOTHER,
    ) -> FamilyLink:
        """Return a family link between ``guardian`` and ``student``."""
        return FamilyLink(
            event_id=self.event_id(),
            occurred_at=self.at(at),
            guardian_id=guardian,
            guardian_account=account or self.account(guardian),
            student_id=student,
            relation=relation,
            linked=linked,
        )

    def status(
        self,
        person: str,
        *,
        at: int = 0,
        category: Category = Category.MINIMUM_LIVING,
        granted: bool = True,
        valid_from: date = date(2026, 1, 1),
        valid_to: date | None = None,
        status_id: str = "MZ-0001",
    ) -> AssistanceStatus:
        """Return an assistance record of ``person``."""
        return AssistanceStatus(
            event_id=self.event_id(),
            occurred_at=self.at(at),
            person_id=person,
            category=category,
            granted=granted,
            valid_from=valid_from,
            valid_to=valid_to,
            status_id=status_id,
        )

    def answer(
        self,
        offer: Offer,
        *,
        at: int = 0,
        answer: Answer = Answer.ACCEPT,
        account: str | None = None,
        event_id: str | None = None,
    ) -> GuardianAnswer:
        """Return an answer to ``offer``, ``at`` hours after it was made."""
        signature = "esign-0001" if answer is Answer.ACCEPT else None
        return GuardianAnswer(
            event_id=event_id or self.event_id(),
            occurred_at=offer.occurred_at + at * self.HOUR,
            offer_id=offer.offer_id,
            student_ref=offer.student_ref,
            guardian_account=account or offer.guardian_account,
            answer=answer,
            signature_ref=signature,
        )
