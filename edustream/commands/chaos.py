"""``edustream chaos``: the fault harness (see ``edustream.demo.chaos``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from edustream import logs
from edustream.settings import get_settings

app = typer.Typer()


@app.command()
def chaos(
    fault: Annotated[
        list[str] | None,
        typer.Option(help="Fault to run (repeatable); default every fault."),
    ] = None,
    bounded: Annotated[
        bool,
        typer.Option(
            help="CI's bounded form: a smaller city, fewer kills, shorter outage."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the city and the faults.")] = 7,
    report: Annotated[
        Path | None, typer.Option(help="Also write the rows here, as JSON.")
    ] = None,
) -> None:
    """Run the demo city under faults; exit 0 when every check holds."""
    from edustream.demo.chaos import (  # noqa: PLC0415 - heavy, only for this command
        BOUNDED,
        FAULTS,
        Bounds,
        render_table,
        run_chaos,
    )

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    names = fault or list(FAULTS)
    unknown = set(names) - set(FAULTS)
    if unknown:
        raise typer.BadParameter(
            f"unknown faults {sorted(unknown)}; known {list(FAULTS)}"
        )
    rows = run_chaos(settings, names, BOUNDED if bounded else Bounds(), seed)
    typer.echo(render_table(rows))
    if report:
        written = [{**dataclasses.asdict(r), "ok": r.ok} for r in rows]
        report.write_text(json.dumps(written, indent=2))
    raise typer.Exit(0 if all(r.ok for r in rows) else 1)
