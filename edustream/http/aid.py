"""Aid figures views: ``GET /aid/figures`` (JSON) and ``/aid/figures.html``.

Duties:

- answer the figures per district and school, and the city totals, from the
  read model ``consumers.aid_figures`` keeps in Redis;
- draw the same figures as a plain HTML table for people;
- say 503 when Redis does not answer, instead of failing the request.

Only aggregates are served: no student reference, portal account or name
leaves through these views.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

from consumers.aid_figures import FigureRow, Figures, read_figures, yuan
from edustream.errors import RetriableError
from edustream.http.context import Context
from edustream.logs import get_logger

log = get_logger(component="aid_figures_view")

_COLUMNS = (
    "offers",
    "accepted",
    "declined",
    "withdrawn",
    "expired",
    "open",
    "students aided",
    "yuan",
)


def routes(app: web.Application, ctx: Context) -> None:
    """Add ``GET /aid/figures`` and ``GET /aid/figures.html``."""

    async def as_json(_request: web.Request) -> web.Response:
        figures = await _figures(ctx)
        if figures is None:
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response(figures.to_dict())

    async def as_html(_request: web.Request) -> web.Response:
        figures = await _figures(ctx)
        if figures is None:
            return web.Response(text="figures unavailable", status=503)
        return web.Response(text=render_html(figures), content_type="text/html")

    app.router.add_get("/aid/figures", as_json)
    app.router.add_get("/aid/figures.html", as_html)


async def _figures(ctx: Context) -> Figures | None:
    """Read the figures, or ``None`` when Redis is unavailable."""
    try:
        figures = await read_figures(ctx.redis)
    except RetriableError:
        log.warning("aid_figures_read", outcome="unavailable")
        return None
    log.debug("aid_figures_read", outcome="found", schools=len(figures.schools))
    return figures


def render_html(figures: Figures) -> str:
    """Return the figures as one HTML page with a district and a school table."""
    district_rows = [
        _row([district.district_code], district.row) for district in figures.districts
    ]
    school_rows = [
        _row([school.district_code, school.school_id, school.name], school.row)
        for school in figures.schools
    ]
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            "<title>Proactive aid figures</title>",
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;"
            "padding:2px 6px}td.n{text-align:right}</style></head><body>",
            "<h1>Proactive aid figures</h1>",
            f"<p>{escape(figures.summary())}</p>",
            "<h2>Districts</h2>",
            _table(["district"], district_rows, _row(["city"], figures.city)),
            "<h2>Schools</h2>",
            _table(["district", "school id", "school"], school_rows, None),
            "</body></html>",
        ]
    )


def _table(heads: list[str], rows: list[str], total: str | None) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in [*heads, *_COLUMNS])
    body = "\n".join(rows)
    foot = "" if total is None else f"<tfoot>{total}</tfoot>"
    head = f"<thead><tr>{header}</tr></thead>"
    return f"<table>{head}<tbody>\n{body}\n</tbody>{foot}</table>"


def _row(labels: list[str], row: FigureRow) -> str:
    cells = [f"<td>{escape(label)}</td>" for label in labels]
    numbers = [
        row.offers,
        row.accepted,
        row.declined,
        row.withdrawn,
        row.expired,
        row.open,
        row.students_aided,
    ]
    cells += [f'<td class="n">{number:,}</td>' for number in numbers]
    cells.append(f'<td class="n">{yuan(row.amount_fen, grouped=True)}</td>')
    return "<tr>" + "".join(cells) + "</tr>"
