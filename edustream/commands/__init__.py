"""Sub-commands of ``edustream``, one module per flow or concern.

Each module defines ``app``, a Typer group that ``edustream.cli`` mounts
under the module's name (``edustream aid ...``, ``edustream billing ...``).
"""
