"""Every downstream subscriber edustream runs, in one list.

``edustream consumers`` and the demo run exactly these. Each flow's module
provides ``subscribers(redis_url)``; a module not written yet contributes
nothing.
"""

from __future__ import annotations

import importlib

from consumers.base import Subscriber

MODULES = (
    "consumers.aid_figures",
    "consumers.billing_history",
    "consumers.growth_archive",
)


def all_subscribers(redis_url: str) -> list[Subscriber]:
    """Instances of every subscriber, connected to Redis at redis_url."""
    found: list[Subscriber] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name != name:
                raise
            continue
        found.extend(module.subscribers(redis_url))
    return found
