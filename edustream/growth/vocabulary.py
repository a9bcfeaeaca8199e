"""The closed word lists of the growth flow.

Duties: name every enumerated value that appears in growth events, state and
schemas. Each enum is a ``StrEnum`` whose values are the Avro enum symbols, so
a member serialises as itself in Avro records and in JSON state. The five
educations also carry their Chinese and English labels for reports.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """One of the five educations (德智体美劳)."""

    MORAL = "MORAL"
    INTELLECTUAL = "INTELLECTUAL"
    PHYSICAL = "PHYSICAL"
    AESTHETIC = "AESTHETIC"
    LABOUR = "LABOUR"

    @property
    def label_zh(self) -> str:
        """The one-character Chinese name, as in 德智体美劳."""
        return _LABELS_ZH[self]

    @property
    def label_en(self) -> str:
        """The English name, capitalised for headings."""
        return self.value.capitalize()


_LABELS_ZH = {
    Category.MORAL: "德",
    Category.INTELLECTUAL: "智",
    Category.PHYSICAL: "体",
    Category.AESTHETIC: "美",
    Category.LABOUR: "劳",
}

# Report order: the customary order of 德智体美劳.
CATEGORIES: tuple[Category, ...] = tuple(Category)


class Direction(StrEnum):
    """Which way a scan at a venue device went."""

    CHECK_IN = "CHECK_IN"
    CHECK_OUT = "CHECK_OUT"


class ActivityKind(StrEnum):
    """What sort of catalogued activity a student joins."""

    COURSE = "COURSE"
    ACTIVITY = "ACTIVITY"
    PROJECT = "PROJECT"
    STUDY_TOUR = "STUDY_TOUR"
