"""Deterministic ids for everything the growth flow derives.

Duties: give visits, statements, certificates and output events ids that
depend only on what they are derived from. The flow runs at-least-once, so a
replayed input must rebuild the same ids; the archive then sees a duplicate
instead of a second entry.
"""

from __future__ import annotations

import uuid

# Fixed for the lifetime of the archive: changing it would give every
# replayed visit a new statement id and duplicate the whole archive.
GROWTH_NAMESPACE = uuid.UUID("6f1d6c1e-3b0a-5c57-9d1e-8a4f2b7c9e10")

# ASCII unit separator: cannot occur in accounts, ids or numbers, so
# ("a", "bc") and ("ab", "c") never derive the same id.
_SEPARATOR = "\x1f"


def derive_id(kind: str, *parts: str | int) -> str:
    """Return a UUID (version 5) string for ``kind`` and its ``parts``."""
    name = _SEPARATOR.join((kind, *map(str, parts)))
    return str(uuid.uuid5(GROWTH_NAMESPACE, name))
