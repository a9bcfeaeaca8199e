"""Growth archive views: a student's archive, certificates and report.

Routes:

- ``GET /growth/{account}``: the archive as JSON: live entries (xAPI),
  certificates with their status, and the growth report over the five
  educations. ``?term=2026-2027-autumn`` scopes the report to one term;
- ``GET /growth/{account}/report.html``: the same report as a standalone
  page with its chart;
- ``GET /growth/aggregates/{school|district}/{id}?term=...``: counts per
  category for a school or district (numbers only, never an account).

Who may ask. The portal's gateway authenticates the caller (a student or a
guardian, by real-name login) and forwards the request with the header
``X-Edustream-Caller: v1:{caller account}:{expires, epoch ms}:{signature}``,
where the signature is the hex HMAC-SHA256, under
``settings.growth_caller_key``, of the text before it (``v1:{account}:
{expires}``). A header that is missing, malformed, badly signed, expired, or
valid for longer than ``MAX_LIFETIME_MS`` is answered 401. A signed caller
may see their own archive, and a guardian the archives of the students the
portal bound to their account (``consumers.growth_archive``); any other
account is answered 403, whether or not it has an archive. Aggregates need
a signed caller and nothing more, since they hold no account.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from consumers.growth_archive import (
    LEVELS,
    archive_view,
    group_counts,
    load_archive,
    may_view,
)
from edustream.errors import RetriableError
from edustream.growth.report import build_report, render_html
from edustream.growth.terms import Term, term_of
from edustream.http.context import Context
from edustream.logs import get_logger

log = get_logger(component="growth")

CALLER_HEADER = "X-Edustream-Caller"
VERSION = "v1"
# A gateway signs each request it forwards; an hour covers a slow page and
# bounds the use of a header that leaked into a log.
MAX_LIFETIME_MS = 3_600_000

# Accounts are opaque; the check keeps odd bytes out of Redis keys.
ACCOUNT = re.compile(r"[A-Za-z0-9_\-.]{1,80}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)


def sign_caller(key: bytes, account: str, expires_ms: int) -> str:
    """The ``X-Edustream-Caller`` value a gateway sends for ``account``."""
    claim = f"{VERSION}:{account}:{expires_ms}"
    return f"{claim}:{_mac(key, claim)}"


def verify_caller(key: bytes, header: str | None, now_ms: int) -> str | None:
    """The caller's account if ``header`` is valid now, else ``None``."""
    parts = (header or "").split(":")
    if len(parts) != 4 or parts[0] != VERSION:
        return None
    _, account, expires, signature = parts
    if not ACCOUNT.fullmatch(account) or not expires.isdigit():
        return None
    if not _SIGNATURE.fullmatch(signature):
        return None

    claim = f"{VERSION}:{account}:{expires}"
    if not hmac.compare_digest(_mac(key, claim), signature):
        return None
    if not now_ms < int(expires) <= now_ms + MAX_LIFETIME_MS:
        return None
    return account


def _mac(key: bytes, claim: str) -> str:
    return hmac.new(key, claim.encode(), "sha256").hexdigest()


class _RefusedError(Exception):
    """A request answered with an error status and code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code

    def response(self) -> web.Response:
        return web.json_response({"error": self.code}, status=self.status)


_View = Callable[[web.Request, Context], Awaitable[web.Response]]


def routes(app: web.Application, ctx: Context) -> None:
    """Add the growth views."""

    async def archive(request: web.Request) -> web.Response:
        return await _answer(request, ctx, archive_json)

    async def report_page(request: web.Request) -> web.Response:
        return await _answer(request, ctx, report_html)

    async def aggregates(request: web.Request) -> web.Response:
        return await _answer(request, ctx, aggregates_json)

    app.router.add_get("/growth/aggregates/{level}/{group_id}", aggregates)
    app.router.add_get("/growth/{account}", archive)
    app.router.add_get("/growth/{account}/report.html", report_page)


async def _answer(request: web.Request, ctx: Context, view: _View) -> web.Response:
    try:
        return await view(request, ctx)
    except _RefusedError as refusal:
        log.info("growth_view_refused", path=request.path, reason=refusal.code)
        return refusal.response()
    except RetriableError:
        log.warning("growth_view", outcome="unavailable")
        return web.json_response({"error": "unavailable"}, status=503)


async def archive_json(request: web.Request, ctx: Context) -> web.Response:
    """The archive, certificates and report of one account."""
    account = await _authorised_account(request, ctx)
    term = _term(request)

    archive = await load_archive(ctx.redis, account)
    view = archive_view(archive, now=_now_ms(), term=term)
    log.debug("growth_view", outcome="archive", entries=len(view["statements"]))
    return web.json_response(view)


async def report_html(request: web.Request, ctx: Context) -> web.Response:
    """The growth report page of one account."""
    account = await _authorised_account(request, ctx)
    term = _term(request)

    archive = await load_archive(ctx.redis, account)
    page = render_html(build_report(archive, generated_at=_now_ms(), term=term))
    response = web.Response(text=page, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'"
    )
    return response


async def aggregates_json(request: web.Request, ctx: Context) -> web.Response:
    """Counts per category of one school or district in one term."""
    _signed_caller(request, ctx)
    level, group_id = request.match_info["level"], request.match_info["group_id"]
    if level not in LEVELS or not ACCOUNT.fullmatch(group_id):
        raise _RefusedError(404, "unknown_group")
    term = _term(request) or term_of(_now_ms())

    counts = await group_counts(ctx.redis, level, group_id, term.id)
    body = {"level": level, "group_id": group_id, "term": term.id, "counts": counts}
    return web.json_response(body)


async def _authorised_account(request: web.Request, ctx: Context) -> str:
    caller = _signed_caller(request, ctx)
    account = request.match_info["account"]
    if not ACCOUNT.fullmatch(account):
        raise _RefusedError(400, "invalid_account")
    if not await may_view(ctx.redis, caller, account):
        raise _RefusedError(403, "not_your_archive")
    return account


def _signed_caller(request: web.Request, ctx: Context) -> str:
    key = ctx.settings.growth_caller_key.encode()
    caller = verify_caller(key, request.headers.get(CALLER_HEADER), _now_ms())
    if caller is None:
        raise _RefusedError(401, "caller_not_authenticated")
    return caller


def _term(request: web.Request) -> Term | None:
    text = request.query.get("term")
    if text is None:
        return None
    try:
        return Term.parse(text)
    except ValueError:
        raise _RefusedError(400, "invalid_term") from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
