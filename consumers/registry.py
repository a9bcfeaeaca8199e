"""Every downstream subscriber edustream runs, in one list.

``edustream consumers`` and the demo run exactly these. Each flow's module
provides ``subscribers(redis_url)``.
"""

from __future__ import annotations

from consumers import aid_figures, billing_history, growth_archive
from consumers.base import Subscriber


def all_subscribers(redis_url: str) -> list[Subscriber]:
    """Instances of every subscriber, connected to Redis at redis_url."""
    found: list[Subscriber] = []
    for module in (aid_figures, billing_history, growth_archive):
        found.extend(module.subscribers(redis_url))
    return found
