"""Payment history view: ``GET /history/{student_ref}``.

Duties:

- answer a student's payments, receipts, refunds, red-letter receipts and
  exceptions in time order, from the read model
  ``consumers.billing_history`` keeps in Redis;
- refuse a path that is not a student reference before touching Redis.

The student reference is the pseudonym the bill lookup answers; the view
takes nothing else, so no ID number or name ever reaches it. Who may read a
history is decided in front of this service (the portal's real-name login);
the view itself checks only that the path is a reference.
"""

from __future__ import annotations

import re

from aiohttp import web

from consumers.billing_history import read_history
from edustream.errors import RetriableError
from edustream.http.context import Context
from edustream.logs import get_logger

log = get_logger(component="history")

# What a student reference may look like: ``stu_`` and 26 base32 characters
# from ``edustream.pseudonym``, or a bill publisher's own opaque form. The
# check keeps odd bytes out of Redis keys; it does not prove the reference.
STUDENT_REF = re.compile(r"[A-Za-z0-9_\-]{4,64}", re.ASCII)


def routes(app: web.Application, ctx: Context) -> None:
    """Add ``GET /history/{student_ref}``."""

    async def history(request: web.Request) -> web.Response:
        return await student_history(request, ctx)

    app.router.add_get("/history/{student_ref}", history)


async def student_history(request: web.Request, ctx: Context) -> web.Response:
    """Answer one student's history, oldest entry first."""
    student_ref = request.match_info["student_ref"]
    if not STUDENT_REF.fullmatch(student_ref):
        return web.json_response({"error": "invalid_student_ref"}, status=400)

    try:
        entries = await read_history(ctx.redis, student_ref)
    except RetriableError:
        log.warning("history_read", outcome="unavailable")
        return web.json_response({"error": "unavailable"}, status=503)

    log.debug("history_read", outcome="found", entries=len(entries))
    return web.json_response({"student_ref": student_ref, "entries": entries})
