"""Bill lookup: a parent finds a child's open bills by ID number and name.

Duties:

- ``POST /bills/lookup`` with a JSON body ``{"id_number": ..., "name": ...}``
  answers the child's open bills: items, totals and school;
- find the child through the keyed pseudonym of the ID number
  (``edustream.pseudonym``, ``settings.pseudonym_key``), never through a
  store of ID numbers;
- check the name against the keyed name digest stored for that pseudonym
  (``name_digest``), so no name is stored anywhere either.

The name check. The bill publisher, which holds the student's name and the
pseudonym key (it computes ``student_ref`` with it), puts
``name_digest(key, student_ref, name)`` on the bill; the read model keeps
the latest digest per student. The lookup computes the same digest from
the name typed in and compares the two in constant time. Binding the
digest to the student reference means equal names of different children
give unrelated digests, so the digests say nothing about who shares a name.

A wrong name, an unknown ID number and a child with no digest on record
get the same 404, so the answer never tells whether an ID number is known.
Nothing here logs, echoes or stores the ID number or the name.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from aiohttp import web

from consumers.bills_lookup import open_bills, stored_name_digest
from edustream.errors import RetriableError
from edustream.http.context import Context
from edustream.ids import is_valid_id
from edustream.logs import get_logger
from edustream.pseudonym import (
    check_key,
    name_digest,
    normalise_id_number,
    normalise_name,
    pseudonymise,
)

log = get_logger(component="bills")

_MAX_NAME_CHARS = 64
# A student without an ID number has a registry number "J" plus 18 digits.
_CONSTRUCTED = re.compile(r"J[0-9]{18}", re.ASCII)


def routes(app: web.Application, ctx: Context) -> None:
    """Add ``POST /bills/lookup``; a pseudonym key too short stops start-up."""
    key = ctx.settings.pseudonym_key.encode()
    check_key(key)

    async def lookup(request: web.Request) -> web.Response:
        return await lookup_bills(request, ctx, key)

    app.router.add_post("/bills/lookup", lookup)


async def lookup_bills(request: web.Request, ctx: Context, key: bytes) -> web.Response:
    """Answer one lookup; see the module docstring for the rules."""
    query = await _read_query(request)
    if query is None:
        log.debug("bills_lookup", outcome="invalid_request")
        return _error("invalid_request", 400)
    id_number, name = query

    student_ref = pseudonymise(key, id_number)
    try:
        stored = await stored_name_digest(ctx.redis, student_ref)
        matches = stored is not None and hmac.compare_digest(
            stored, name_digest(key, student_ref, name)
        )
        bills = await open_bills(ctx.redis, student_ref) if matches else []
    except RetriableError:
        log.warning("bills_lookup", outcome="unavailable")
        return _error("unavailable", 503)

    if not matches:
        log.debug("bills_lookup", outcome="not_found")
        return _error("not_found", 404)

    log.debug("bills_lookup", outcome="found", bills=len(bills))
    return web.json_response(_answer(student_ref, bills))


async def _read_query(request: web.Request) -> tuple[str, str] | None:
    """The ID number (normalised) and name, or ``None`` if unusable."""
    try:
        payload: Any = await request.json()
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None

    id_number, name = payload.get("id_number"), payload.get("name")
    if not isinstance(id_number, str) or not isinstance(name, str):
        return None
    id_number = normalise_id_number(id_number)
    if not (is_valid_id(id_number) or _CONSTRUCTED.fullmatch(id_number)):
        return None
    if not 0 < len(normalise_name(name)) <= _MAX_NAME_CHARS:
        return None
    return id_number, name


def _answer(student_ref: str, bills: list[dict[str, Any]]) -> dict[str, Any]:
    """The lookup's answer: the open bills and what they add up to."""
    return {
        "student_ref": student_ref,
        "bills": [
            {
                "bill_id": bill["bill_id"],
                "school_id": bill["school_id"],
                "collecting_unit_code": bill["collecting_unit_code"],
                "term": bill["term"],
                "items": bill["items"],
                "total_fen": bill["total_fen"],
            }
            for bill in bills
        ],
        "total_fen": sum(bill["total_fen"] for bill in bills),
    }


def _error(code: str, status: int) -> web.Response:
    return web.json_response({"error": code}, status=status)
