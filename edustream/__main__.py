"""``python -m edustream`` is the ``edustream`` command."""

from edustream.cli import main

main()
