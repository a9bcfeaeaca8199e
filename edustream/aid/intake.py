"""Intake: the one step that sees ID numbers and names.

Duties:

- Check that an upstream event's ID fields hold a valid resident ID number
  (GB 11643, check character included) or, for students, a national
  registry number ("G" and an ID number) or a constructed one ("J" and 18
  digits). Anything else is poison: it names no one reliably.
- Replace each ID number with its keyed reference and the student's name with
  its mask, giving the pseudonymous records every later stage works on.

Students are referenced as ``stu_…`` and other people as ``psn_…``; both come
from the same digest, so a person's own assistance status can be addressed to
the same person's student entry.
"""

from __future__ import annotations

import re

from edustream.aid.inputs import AssistanceStatus, FamilyLink, RegistryChange
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.errors import PoisonError
from edustream.ids import is_valid_id
from edustream.pseudonym import (
    PERSON_PREFIX,
    STUDENT_PREFIX,
    check_key,
    mask_name,
    normalise_id_number,
    pseudonymise,
)

# A constructed registry number for a student without an ID number.
_CONSTRUCTED_NUMBER = re.compile(r"J[0-9]{18}")


class Intake:
    """Turns upstream events into pseudonymous records under one key."""

    def __init__(self, key: bytes) -> None:
        """Keep ``key``; it is checked now so a short key stops start-up."""
        check_key(key)
        self._key = key

    def registry(self, change: RegistryChange) -> RegistryRecord:
        """Return ``change`` with the student referenced and the name masked."""
        _check_student_number(change.student_id, "RegistryChange")

        return RegistryRecord(
            event_id=change.event_id,
            occurred_at=change.occurred_at,
            student_ref=self.student_ref(change.student_id),
            change=change.change,
            masked_name=mask_name(change.student_name),
            school_id=change.school_id,
            school_name=change.school_name,
            district_code=change.district_code,
            stage=change.stage,
            grade=change.grade,
            boarding=change.boarding,
        )

    def link(self, link: FamilyLink) -> LinkRecord:
        """Return ``link`` with guardian and student referenced."""
        _check_id_number(link.guardian_id, "FamilyLink")
        _check_student_number(link.student_id, "FamilyLink")

        return LinkRecord(
            event_id=link.event_id,
            occurred_at=link.occurred_at,
            guardian_ref=self.person_ref(link.guardian_id),
            guardian_account=link.guardian_account,
            student_ref=self.student_ref(link.student_id),
            relation=link.relation,
            linked=link.linked,
        )

    def status(self, status: AssistanceStatus) -> StatusRecord:
        """Return ``status`` with the person referenced."""
        _check_id_number(status.person_id, "AssistanceStatus")

        return StatusRecord(
            event_id=status.event_id,
            occurred_at=status.occurred_at,
            person_ref=self.person_ref(status.person_id),
            status_id=status.status_id,
            category=status.category,
            granted=status.granted,
            valid_from=status.valid_from,
            valid_to=status.valid_to,
        )

    def student_ref(self, student_id: str) -> str:
        """Return the student reference of an ID or registry number."""
        return pseudonymise(self._key, student_id, STUDENT_PREFIX)

    def person_ref(self, id_number: str) -> str:
        """Return the person reference of an ID number."""
        return pseudonymise(self._key, id_number, PERSON_PREFIX)


def _check_id_number(number: str, record: str) -> None:
    """Refuse anything but a valid resident ID number, without echoing it."""
    if not is_valid_id(number.strip()):
        message = f"{record}: an ID number field is not a valid ID number"
        raise PoisonError("invalid_record", message)


def _check_student_number(number: str, record: str) -> None:
    """Refuse a student number that is no ID, G+ID or J+18 digits."""
    text = normalise_id_number(number)
    if _CONSTRUCTED_NUMBER.fullmatch(text) is None and not is_valid_id(text):
        message = f"{record}: a student number field is not an ID or registry number"
        raise PoisonError("invalid_record", message)
