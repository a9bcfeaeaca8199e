"""Facts the person router addresses to one student.

Duties: carry person-keyed knowledge to the student it concerns, so the
student decider never needs state from another partition.

- ``StatusFact``: one assistance record of the student or of a linked
  guardian.
- ``LinkFact``: a guardian link (or unlink) together with every assistance
  record the router holds for that guardian, so a newly linked guardian's
  statuses arrive with the link whatever order the two came in.

Both are keyed by ``student_ref`` and carry no ID number or name.

Envelopes. The internal topics carry one schema each: ``aid.person-facts``
holds ``PersonFact`` (an intake status or link record, keyed by person
reference) and ``aid.student-facts`` holds ``StudentFact`` (a registry record,
a status fact or a link fact, keyed by student reference). The
``*_to_dict``/``*_from_dict`` functions convert to and from those envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edustream.aid import identity, wire
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import Holder


@dataclass(frozen=True, slots=True)
class StatusFact:
    """An assistance record addressed to one student.

    ``holder`` says whose record it is: the student's own (``STUDENT``) or a
    linked guardian's (``GUARDIAN``, the guardian being ``status.person_ref``).
    """

    event_id: str
    occurred_at: int
    student_ref: str
    holder: Holder
    status: StatusRecord

    @classmethod
    def addressed(
        cls, student_ref: str, holder: Holder, status: StatusRecord
    ) -> StatusFact:
        """Return ``status`` addressed to ``student_ref``."""
        return cls(
            event_id=identity.event_id("status-fact", status.event_id, student_ref),
            occurred_at=status.occurred_at,
            student_ref=student_ref,
            holder=holder,
            status=status,
        )


@dataclass(frozen=True, slots=True)
class LinkFact:
    """A guardian link addressed to its student, with the guardian's records."""

    event_id: str
    occurred_at: int
    student_ref: str
    link: LinkRecord
    guardian_statuses: tuple[StatusRecord, ...]

    @classmethod
    def addressed(
        cls, link: LinkRecord, guardian_statuses: tuple[StatusRecord, ...]
    ) -> LinkFact:
        """Return ``link`` addressed to its student with ``guardian_statuses``."""
        return cls(
            event_id=identity.event_id("link-fact", link.event_id, link.student_ref),
            occurred_at=link.occurred_at,
            student_ref=link.student_ref,
            link=link,
            guardian_statuses=guardian_statuses,
        )


RoutedFact = StatusFact | LinkFact
PersonFact = StatusRecord | LinkRecord
StudentFact = RegistryRecord | StatusFact | LinkFact


def person_fact_to_dict(fact: PersonFact) -> dict[str, Any]:
    """Return ``fact`` in the ``edustream.aid.PersonFact`` envelope.

    The envelope has one optional field per record type rather than an Avro
    union, so a decoder needs no record-name hints to tell them apart.
    """
    if isinstance(fact, StatusRecord):
        return {
            "event_id": fact.event_id,
            "occurred_at": fact.occurred_at,
            "person_ref": fact.person_ref,
            "status": fact.to_dict(),
            "link": None,
        }
    return {
        "event_id": fact.event_id,
        "occurred_at": fact.occurred_at,
        "person_ref": fact.guardian_ref,
        "status": None,
        "link": fact.to_dict(),
    }


def person_fact_from_dict(data: wire.Fields) -> PersonFact:
    """Return the record inside a decoded ``PersonFact`` envelope."""
    with wire.reading("PersonFact"):
        if data.get("status") is not None:
            return StatusRecord.from_dict(data["status"])
        return LinkRecord.from_dict(data["link"])


def student_fact_to_dict(fact: StudentFact) -> dict[str, Any]:
    """Return ``fact`` in the ``edustream.aid.StudentFact`` envelope."""
    envelope: dict[str, Any] = {
        "event_id": fact.event_id,
        "occurred_at": fact.occurred_at,
        "student_ref": fact.student_ref,
        "registry": None,
        "status": None,
        "holder": None,
        "link": None,
        "guardian_statuses": [],
    }
    if isinstance(fact, RegistryRecord):
        envelope["registry"] = fact.to_dict()
    elif isinstance(fact, StatusFact):
        envelope["status"] = fact.status.to_dict()
        envelope["holder"] = fact.holder.value
    else:
        envelope["link"] = fact.link.to_dict()
        envelope["guardian_statuses"] = [s.to_dict() for s in fact.guardian_statuses]
    return envelope


def student_fact_from_dict(data: wire.Fields) -> StudentFact:
    """Return the fact inside a decoded ``StudentFact`` envelope."""
    with wire.reading("StudentFact"):
        event_id = wire.to_text(data["event_id"])
        occurred_at = wire.to_millis(data["occurred_at"])
        student_ref = str(data["student_ref"])

        if data.get("registry") is not None:
            return RegistryRecord.from_dict(data["registry"])
        if data.get("status") is not None:
            return StatusFact(
                event_id=event_id,
                occurred_at=occurred_at,
                student_ref=student_ref,
                holder=Holder(data["holder"]),
                status=StatusRecord.from_dict(data["status"]),
            )
        statuses = data.get("guardian_statuses") or ()
        return LinkFact(
            event_id=event_id,
            occurred_at=occurred_at,
            student_ref=student_ref,
            link=LinkRecord.from_dict(data["link"]),
            guardian_statuses=tuple(StatusRecord.from_dict(s) for s in statuses),
        )
