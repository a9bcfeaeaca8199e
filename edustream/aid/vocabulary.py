"""The closed word lists of the aid flow.

Duties: name every enumerated value that appears in aid events, state and
schemas. Each enum is a ``StrEnum`` whose values are the Avro enum symbols, so
a member serialises as itself in Avro records and in JSON state.

Aid kinds are deliberately not here: they come from the policy file, so a new
kind needs no code change.
"""

from __future__ import annotations

from enum import StrEnum


class Change(StrEnum):
    """What a student registry change did."""

    ENROL = "ENROL"
    TRANSFER = "TRANSFER"
    STAGE_CHANGE = "STAGE_CHANGE"
    GRADUATE = "GRADUATE"
    WITHDRAW = "WITHDRAW"
    CORRECTION = "CORRECTION"


# A student whose latest registry change is one of these has left school and
# can no longer be offered aid.
LEAVING_CHANGES = frozenset({Change.GRADUATE, Change.WITHDRAW})


class Stage(StrEnum):
    """Education stage of a student."""

    PRIMARY = "PRIMARY"
    JUNIOR = "JUNIOR"
    SENIOR = "SENIOR"
    VOCATIONAL = "VOCATIONAL"
    UNDERGRADUATE = "UNDERGRADUATE"


class Category(StrEnum):
    """Social-assistance category recorded by civil affairs."""

    MINIMUM_LIVING = "MINIMUM_LIVING"
    EXTREME_POVERTY = "EXTREME_POVERTY"
    LOW_INCOME = "LOW_INCOME"
    DISABILITY = "DISABILITY"
    ORPHAN_OR_UNCARED = "ORPHAN_OR_UNCARED"
    RELAPSE_MONITORED = "RELAPSE_MONITORED"


class Relation(StrEnum):
    """How a guardian is related to a student."""

    FATHER = "FATHER"
    MOTHER = "MOTHER"
    GRANDPARENT = "GRANDPARENT"
    OTHER_GUARDIAN = "OTHER_GUARDIAN"


class Answer(StrEnum):
    """A guardian's answer to an offer."""

    ACCEPT = "ACCEPT"
    DECLINE = "DECLINE"


class Holder(StrEnum):
    """Whose assistance status an offer rests on."""

    STUDENT = "STUDENT"
    GUARDIAN = "GUARDIAN"


class HolderRule(StrEnum):
    """Whose assistance status a policy rule accepts."""

    STUDENT = "STUDENT"
    GUARDIAN = "GUARDIAN"
    EITHER = "EITHER"

    def accepts(self, holder: Holder) -> bool:
        """Return whether a status held by ``holder`` counts for this rule."""
        return self is HolderRule.EITHER or self.value == holder.value


class Outcome(StrEnum):
    """How an offer closed without a grant."""

    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"


class WithdrawalReason(StrEnum):
    """Why an open offer was taken back."""

    INELIGIBLE = "INELIGIBLE"
    LEFT_SCHOOL = "LEFT_SCHOOL"
    GUARDIAN_UNLINKED = "GUARDIAN_UNLINKED"
    READDRESSED = "READDRESSED"


class RejectionReason(StrEnum):
    """Why a guardian's answer changed nothing."""

    UNKNOWN_OFFER = "unknown_offer"
    OFFER_WITHDRAWN = "offer_withdrawn"
    OFFER_EXPIRED = "offer_expired"
    WRONG_GUARDIAN = "wrong_guardian"
    ALREADY_ANSWERED = "already_answered"


class OfferStatus(StrEnum):
    """Where an offer stands in the decider's state."""

    OPEN = "OPEN"
    WITHDRAWN = "WITHDRAWN"
    ACCEPTED = "ACCEPTED"
    DECLINED = "DECLINED"
    EXPIRED = "EXPIRED"
