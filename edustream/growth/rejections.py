"""Inputs the growth flow refuses, and why.

Duties: name the reason codes and carry one refusal from the pure core to the
agent, which wraps it with the original bytes and source position into the
flow's dead-letter record. A message never carries personal data: it names
positions and fields, not accounts or values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Machine-readable reason codes on the growth dead-letter topic."""

    NOT_ENROLLED = "not_enrolled"
    UNKNOWN_VENUE = "unknown_venue"
    UNKNOWN_ACTIVITY = "unknown_activity"
    FUTURE_TIME = "future_time"
    CHECKOUT_BEFORE_CHECKIN = "checkout_before_checkin"
    STATEMENT_CONFLICT = "statement_conflict"
    # A scan older than the visits already recorded at its venue (or older
    # than the lateness the flow accepts): pairing it would overlap them.
    STALE_SCAN = "stale_scan"
    # A confirmation from an account that is not the activity's mentor.
    NOT_MENTOR = "not_mentor"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused input: the reason, the input's event id and an explanation."""

    reason: Reason
    source_event_id: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The refusal as a dict, for logs and the dead-letter record."""
        return {
            "reason": self.reason.value,
            "source_event_id": self.source_event_id,
            "message": self.message,
        }
