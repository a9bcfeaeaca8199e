"""Deterministic ids for everything the aid flow emits.

Duties: derive offer ids, grant ids and event ids as UUIDv5 names under one
namespace, so a re-delivered input yields the same ids and every output is
idempotent downstream. Nothing here reads a clock or a random source.
"""

from __future__ import annotations

import uuid

AID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:aid")


def offer_id(student_ref: str, term: str, aid_kind: str) -> str:
    """Return the one offer id for a student, term and aid kind."""
    return _name("offer", student_ref, term, aid_kind)


def grant_id(offer: str) -> str:
    """Return the id of the grant that accepting offer ``offer`` creates."""
    return _name("grant", offer)


def event_id(kind: str, *parts: str) -> str:
    """Return the event id of an output of ``kind`` named by ``parts``.

    Equal parts give equal ids, which is what lets consumers drop re-emits.
    """
    return _name(kind, *parts)


def _name(*parts: str) -> str:
    """Return the UUIDv5 of ``parts`` joined by a separator ids never hold."""
    return str(uuid.uuid5(AID_NAMESPACE, "|".join(parts)))
