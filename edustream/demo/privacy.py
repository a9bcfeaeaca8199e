"""Scan text for personal data: ID numbers and known names.

Used on the demo's output topics and logs. A hit is reported by where it was
found and how many, never by the value itself.
"""

from __future__ import annotations

from edustream.ids import find_ids


def scan_for_secrets(texts: dict[str, str], secrets: set[str]) -> dict[str, int]:
    """Count, per text, valid ID numbers and any of the given secrets."""
    found: dict[str, int] = {}
    for where, text in texts.items():
        hits = len(find_ids(text))
        hits += sum(1 for secret in secrets if secret and secret in text)
        if hits:
            found[where] = hits
    return found
