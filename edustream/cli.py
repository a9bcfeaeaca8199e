"""The ``edustream`` command line.

Each command is a thin shell over a module that does the work; the command
only reads settings, starts what the work needs (broker, Redis) and prints.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from edustream import logs
from edustream.commands import aid, billing, chaos, growth, ingress, ops
from edustream.errors import EdustreamError
from edustream.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="Topic catalogue commands.")
app.add_typer(topics_app, name="topics")

# Flow command groups (`edustream aid ...`) and top-level commands that live
# in their own modules (`edustream ingress`, `edustream lag`).
app.add_typer(aid.app, name="aid")
app.add_typer(billing.app, name="billing")
app.add_typer(growth.app, name="growth")
for module in (ingress, ops, chaos):
    app.registered_commands.extend(module.app.registered_commands)


def _settings() -> Settings:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings


@app.command()
def demo(
    report: Annotated[
        Path | None, typer.Option(help="Write the JSON report here.")
    ] = None,
    dump: Annotated[
        Path | None, typer.Option(help="Dump every output topic here.")
    ] = None,
    scale: Annotated[float, typer.Option(help="Multiply the city's size.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic city.")] = 20260901,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for outputs.")
    ] = 240.0,
) -> None:
    """Generate a city, run every flow on it and check every output."""
    from edustream.demo.runner import run_demo  # noqa: PLC0415 - heavy import

    settings = _settings()
    ok = run_demo(
        settings, report=report, dump=dump, scale=scale, seed=seed, timeout_s=timeout
    )
    raise typer.Exit(0 if ok else 1)


@app.command()
def worker() -> None:
    """Run the stream worker (all three flows)."""
    settings = _settings()
    if settings.kafka_bootstrap_servers:
        from streams.worker import run_worker  # noqa: PLC0415

        run_worker(settings)
        return
    from infra.broker import EmbeddedBroker  # noqa: PLC0415

    # No cluster named: run our own broker for the worker's lifetime, in a
    # child process so the worker module sees the address in its settings.
    with EmbeddedBroker(settings.embedded_broker_port) as broker:
        typer.echo(f"embedded broker at {broker.bootstrap}", err=True)
        code = _run_child(["worker"], {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap})
    # The worker's own exit code: 75 when it lost the broker, 2 when it could
    # not start as configured. A supervisor restarts on what it sees here.
    raise typer.Exit(code)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 9092,
) -> None:
    """Run the embedded broker in the foreground until Ctrl-C."""
    from infra.broker import EmbeddedBroker  # noqa: PLC0415

    settings = _settings()
    with EmbeddedBroker(port) as running:
        _provision(settings, running.bootstrap)
        typer.echo(f"KAFKA_BOOTSTRAP_SERVERS={running.bootstrap}")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


@topics_app.command("apply")
def topics_apply() -> None:
    """Create every catalogue topic; report any that disagree."""
    from infra.broker import kafka  # noqa: PLC0415

    settings = _settings()
    with kafka(settings.kafka_bootstrap_servers, settings.embedded_broker_port) as bs:
        ok = _provision(settings, bs)
    raise typer.Exit(0 if ok else 1)


@topics_app.command("list")
def topics_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the topic catalogue."""
    from topics import CATALOGUE  # noqa: PLC0415

    rows = [
        {
            "name": s.name,
            "key": s.key,
            "schema": s.schema,
            "writer": s.writer,
            "readers": list(s.readers),
            "cleanup": str(s.cleanup),
            "personal_data": s.personal_data,
        }
        for s in CATALOGUE.values()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        typer.echo(f"{row['name']:32} {row['writer']:20} {row['schema']}")


def _provision(settings: Settings, bootstrap: str) -> bool:
    from infra.provision import apply_topics  # noqa: PLC0415
    from topics import CATALOGUE  # noqa: PLC0415

    result = asyncio.run(
        apply_topics(
            bootstrap,
            CATALOGUE.values(),
            settings.partitions,
            settings.replication_factor,
        )
    )
    typer.echo(
        f"created {len(result.created)}, unchanged {len(result.unchanged)}, "
        f"conflicts {len(result.conflicts)}"
    )
    for name, problem in sorted(result.conflicts.items()):
        typer.echo(f"  CONFLICT {name}: {problem}", err=True)
    if result.ok:
        from infra.sentinel import ensure_sentinel  # noqa: PLC0415

        asyncio.run(ensure_sentinel(bootstrap))
    return result.ok


def _run_child(args: list[str], env: dict[str, str]) -> int:
    """Run ``edustream ARGS`` in a child process; return its exit code.

    Ctrl-C and SIGTERM are passed on to the child, which stops in order;
    the child also stops when this process dies without a word (kill -9).
    A child ended by a signal reports 128 plus the signal, as a shell would.
    """
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    from infra.broker import die_with_parent  # noqa: PLC0415

    child = subprocess.Popen(  # noqa: S603 - our own module, no shell
        [sys.executable, "-m", "edustream", *args],
        env={**os.environ, **env},
        preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads yet at spawn
    )

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {
        signum: signal.signal(signum, forward)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code if code >= 0 else 128 - code


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except EdustreamError as exc:
        typer.echo(f"edustream: {exc}", err=True)
        sys.exit(2)
