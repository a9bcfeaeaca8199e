"""First stage of matching: per-person state, facts addressed to students.

Duties:

- Keep, per person reference, the latest version of each of the person's
  assistance records (by ``status_id``) and of each link from the person as
  guardian to a student (by student reference).
- On a newer assistance record, address it to the person's own student entry
  (as ``STUDENT``) and to every student the person is linked to as guardian
  (as ``GUARDIAN``).
- On a newer link, address it to the student together with all the person's
  records, so the student learns the guardian's statuses whichever of link
  and status came first.

The decider therefore gets everything it needs on its own partition.

Delivery is at least once. A record already held (a re-delivery) or older
than the one held re-sends what is held, because the first delivery's facts
may have been lost in a crash after the state was saved. The decider treats
the repeats as no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edustream.aid.facts import LinkFact, PersonFact, RoutedFact, StatusFact
from edustream.aid.records import LinkRecord, StatusRecord
from edustream.aid.vocabulary import Holder
from edustream.pseudonym import STUDENT_PREFIX, retag


@dataclass(slots=True)
class PersonState:
    """What the router holds for one person reference."""

    statuses: dict[str, StatusRecord] = field(default_factory=dict)
    links: dict[str, LinkRecord] = field(default_factory=dict)

    def linked_students(self) -> list[str]:
        """Return the students this person is currently linked to, sorted."""
        return sorted(ref for ref, link in self.links.items() if link.linked)

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict for a Faust table."""
        return {
            "statuses": [status.to_dict() for status in self.statuses.values()],
            "links": [link.to_dict() for link in self.links.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonState:
        """Rebuild the state from ``to_dict`` output."""
        statuses = (StatusRecord.from_dict(item) for item in data["statuses"])
        links = (LinkRecord.from_dict(item) for item in data["links"])
        return cls(
            statuses={status.status_id: status for status in statuses},
            links={link.student_ref: link for link in links},
        )


def person_key(record: PersonFact) -> str:
    """Return the person reference ``record`` is keyed by in the router."""
    if isinstance(record, StatusRecord):
        return record.person_ref
    return record.guardian_ref


def route(state: PersonState, record: PersonFact) -> list[RoutedFact]:
    """Fold ``record`` into ``state`` (in place) and return the facts to send."""
    if isinstance(record, StatusRecord):
        return _route_status(state, record)
    return _route_link(state, record)


def _route_status(state: PersonState, record: StatusRecord) -> list[RoutedFact]:
    """Keep the newest version of a record and address it to its students."""
    held = state.statuses.get(record.status_id)
    if held is None or record.stamp > held.stamp:
        state.statuses[record.status_id] = record
        held = record

    own = retag(held.person_ref, STUDENT_PREFIX)
    facts: list[RoutedFact] = [StatusFact.addressed(own, Holder.STUDENT, held)]

    for student_ref in state.linked_students():
        facts.append(StatusFact.addressed(student_ref, Holder.GUARDIAN, held))
    return facts


def _route_link(state: PersonState, record: LinkRecord) -> list[RoutedFact]:
    """Keep the newest version of a link and address it with the statuses."""
    held = state.links.get(record.student_ref)
    if held is None or record.stamp > held.stamp:
        state.links[record.student_ref] = record
        held = record

    # An unlinked guardian's statuses no longer count for the student, so
    # they are not sent; a later re-link sends them again in full.
    statuses = _sorted_statuses(state) if held.linked else ()
    return [LinkFact.addressed(held, statuses)]


def _sorted_statuses(state: PersonState) -> tuple[StatusRecord, ...]:
    """Return the person's records in a fixed order, for stable facts."""
    return tuple(state.statuses[key] for key in sorted(state.statuses))
