"""``edustream growth ...``: look up a student's lifelong growth archive.

Commands:

- ``show ACCOUNT``: print a student's archive from the read model in Redis
  (``consumers.growth_archive``): the counts of the five educations, the
  certificates with their status and the entries, newest first.
  ``--term`` scopes the report to one term, ``--json`` prints what
  ``GET /growth/{account}`` answers, ``--html PATH`` writes the report page;
- ``caller-header ACCOUNT``: print a signed ``X-Edustream-Caller`` value for
  ``ACCOUNT``, as the portal's gateway would send it, for trying the HTTP
  views by hand (``curl -H "X-Edustream-Caller: ..."``).

``show`` is an operator's command: it reads Redis directly, so it asks for
no caller. The HTTP views are where students and guardians look.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from consumers.growth_archive import archive_view, load_archive
from edustream import logs
from edustream.growth.archive import Archive
from edustream.growth.report import build_report, render_html
from edustream.growth.terms import Term
from edustream.http.growth import MAX_LIFETIME_MS, sign_caller
from edustream.settings import Settings, get_settings
from infra.redis import async_client

app = typer.Typer(no_args_is_help=True, help="Lifelong growth archive commands.")


@app.command()
def show(
    account: Annotated[str, typer.Argument(help="The student's growth account.")],
    term: Annotated[
        str | None, typer.Option(help="Report one term, e.g. 2026-2027-autumn.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    html: Annotated[
        Path | None, typer.Option(help="Also write the report page here.")
    ] = None,
) -> None:
    """Print a student's archive, certificates and five-education counts."""
    settings = _settings()
    scope = _parse_term(term)
    archive = asyncio.run(_load(settings.redis_url, account))
    now = time.time_ns() // 1_000_000
    view = archive_view(archive, now=now, term=scope)

    if html is not None:
        report = build_report(archive, generated_at=now, term=scope)
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(view, indent=2, ensure_ascii=False))
        return
    for line in summary_lines(view):
        typer.echo(line)


@app.command(name="caller-header")
def caller_header(
    account: Annotated[str, typer.Argument(help="The caller's account.")],
    ttl: Annotated[int, typer.Option(help="Seconds the header stays valid.")] = 600,
) -> None:
    """Print a signed X-Edustream-Caller value for trying the HTTP views."""
    settings = _settings()
    if not 0 < ttl * 1000 <= MAX_LIFETIME_MS:
        raise typer.BadParameter(f"ttl is 1 to {MAX_LIFETIME_MS // 1000} seconds")
    expires = time.time_ns() // 1_000_000 + ttl * 1000
    typer.echo(sign_caller(settings.growth_caller_key.encode(), account, expires))


def summary_lines(view: dict[str, Any]) -> list[str]:
    """The archive view as lines for a terminal."""
    report = view["report"]
    lines = [f"account {view['student_account']} · {report['scope_label']}"]
    for row in report["categories"]:
        lines.append(
            f"  {row['label_zh']} {row['label_en']:<12} {row['hours']:>6.1f} h"
            f" {row['visits']:>4} visits {row['distinct_venues']:>3} venues"
            f" {row['awards']:>3} awards"
        )
    lines.append(f"certificates: {len(view['certificates'])}")
    for cert in view["certificates"]:
        lines.append(f"  {cert['status']:<9} {cert['term']} {cert['title']}")
    lines.append(f"entries: {len(view['statements'])}")
    for entry in view["statements"]:
        name = entry["object"].get("definition", {}).get("name", {}).get("zh-CN", "")
        lines.append(
            f"  {entry['timestamp']} {entry['verb']['display']['en-US']} {name}"
        )
    return lines


def _parse_term(text: str | None) -> Term | None:
    if text is None:
        return None
    try:
        return Term.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


async def _load(redis_url: str, account: str) -> Archive:
    client = async_client(redis_url)
    try:
        return await load_archive(client, account)
    finally:
        await client.aclose()


def _settings() -> Settings:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings
