"""``edustream aid ...``: the proactive aid figures.

Commands:

- ``report``: print the figures per district and per school, and the city
  line ("10 districts, 420 schools, 2,086 students, 3,744,800 yuan"), from
  the read model ``consumers.aid_figures`` keeps in Redis; ``--json``
  prints the same as one JSON document.

The report reads the Redis at ``REDIS_URL`` and refuses to run when nothing
answers there: an embedded fallback would start empty and report nothing.
Only aggregates are printed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from consumers.aid_figures import FigureRow, Figures, read_figures, yuan
from edustream import logs
from edustream.errors import ConfigError
from edustream.settings import get_settings
from infra.redis import answers, async_client

app = typer.Typer(no_args_is_help=True, help="Proactive aid commands.")

_HEADS = ("offers", "accepted", "declined", "withdrawn", "expired", "open", "aided")


@app.command()
def report(
    *,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON document.")
    ] = False,
) -> None:
    """Print aid figures per district and school, and the city totals."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    if not answers(settings.redis_url):
        raise ConfigError(f"Redis does not answer at {settings.redis_url}")

    figures = asyncio.run(_read(settings.redis_url))
    if as_json:
        typer.echo(json.dumps(figures.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(render_text(figures), nl=False)


async def _read(redis_url: str) -> Figures:
    redis = async_client(redis_url)
    try:
        return await read_figures(redis)
    finally:
        await redis.aclose()


def render_text(figures: Figures) -> str:
    """Return the figures as two aligned tables and the city line."""
    lines = [_line("district", _HEADS, "yuan")]
    lines += [_figure_line(d.district_code, d.row) for d in figures.districts]
    lines.append(_figure_line("city", figures.city))
    lines.append("")
    lines.append(_line("school", _HEADS, "yuan"))
    lines += [_figure_line(f"{s.school_id} {s.name}", s.row) for s in figures.schools]
    lines.append("")
    lines.append(figures.summary())
    return "\n".join(lines) + "\n"


def _figure_line(label: str, row: FigureRow) -> str:
    counts = (
        row.offers,
        row.accepted,
        row.declined,
        row.withdrawn,
        row.expired,
        row.open,
        row.students_aided,
    )
    return _line(
        label, [f"{count:,}" for count in counts], yuan(row.amount_fen, grouped=True)
    )


def _line(label: str, cells: tuple[str, ...] | list[str], amount: str) -> str:
    numbers = "".join(f"{cell:>10}" for cell in cells)
    return f"{label[:40]:<40}{numbers}{amount:>14}"
