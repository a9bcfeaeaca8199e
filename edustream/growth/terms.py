"""School terms and local days in Asia/Shanghai.

Duties:

- say which term an instant falls in: the autumn term runs from 1 September
  to 31 January, the spring term from 1 February to 31 August, both by the
  Shanghai calendar;
- name terms stably (``2024-2025-autumn``) for ids, state keys and reports,
  with Chinese labels (2024–2025学年第一学期);
- turn instants into Shanghai local dates and local times of day back into
  instants, for venue opening hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

from edustream.growth.wire import to_millis

SHANGHAI = ZoneInfo("Asia/Shanghai")

_TERM_ID = re.compile(r"^(\d{4})-(\d{4})-(autumn|spring)$")
_ZH_ORDINALS = {1: "一", 2: "二"}


class Season(IntEnum):
    """The half of a school year; the value is the term's ordinal (第一/二学期)."""

    AUTUMN = 1
    SPRING = 2


@dataclass(frozen=True, order=True)
class Term:
    """One term of the school year that starts in September ``school_year``.

    Not slotted: ``id`` is cached on the instance, and ``term_of_date`` hands
    out shared instances, since every statement asks for its term's id.
    """

    school_year: int
    season: Season

    @cached_property
    def id(self) -> str:
        """Stable name such as ``2024-2025-autumn``; sorts chronologically."""
        years = f"{self.school_year}-{self.school_year + 1}"
        return f"{years}-{self.season.name.lower()}"

    @property
    def first_day(self) -> date:
        """The first local day of the term."""
        if self.season is Season.AUTUMN:
            return date(self.school_year, 9, 1)
        return date(self.school_year + 1, 2, 1)

    @property
    def last_day(self) -> date:
        """The last local day of the term, inclusive."""
        if self.season is Season.AUTUMN:
            return date(self.school_year + 1, 1, 31)
        return date(self.school_year + 1, 8, 31)

    @property
    def starts_at(self) -> int:
        """Epoch millis of local midnight opening the term."""
        return local_midnight(self.first_day)

    @property
    def ends_at(self) -> int:
        """Epoch millis of local midnight closing the term (exclusive)."""
        return local_midnight(self.last_day + timedelta(days=1))

    @property
    def label_zh(self) -> str:
        """Chinese label, e.g. 2024–2025学年第一学期."""
        ordinal = _ZH_ORDINALS[self.season.value]
        return f"{self.school_year}–{self.school_year + 1}学年第{ordinal}学期"

    @property
    def label_en(self) -> str:
        """English label, e.g. 2024–2025 autumn term."""
        years = f"{self.school_year}–{self.school_year + 1}"
        return f"{years} {self.season.name.lower()} term"

    def contains(self, millis: int) -> bool:
        """Whether the instant ``millis`` falls inside this term."""
        return self.starts_at <= millis < self.ends_at

    def next(self) -> Term:
        """The term that follows this one."""
        if self.season is Season.AUTUMN:
            return Term(self.school_year, Season.SPRING)
        return Term(self.school_year + 1, Season.AUTUMN)

    @classmethod
    def parse(cls, text: str) -> Term:
        """Read a term id such as ``2024-2025-autumn``; ``ValueError`` if not."""
        match = _TERM_ID.match(text)
        if match is None or int(match[2]) != int(match[1]) + 1:
            raise ValueError(f"not a term id: {text!r}")
        return cls(int(match[1]), Season[match[3].upper()])


@lru_cache(maxsize=4096)
def term_of_date(day: date) -> Term:
    """The term a Shanghai local date belongs to."""
    if day.month >= 9:
        return Term(day.year, Season.AUTUMN)
    if day.month == 1:
        return Term(day.year - 1, Season.AUTUMN)
    return Term(day.year - 1, Season.SPRING)


def term_of(millis: int) -> Term:
    """The term the instant ``millis`` falls in, by the Shanghai calendar."""
    return term_of_date(local_date(millis))


def local_date(millis: int) -> date:
    """The Shanghai local date of the instant ``millis``."""
    return datetime.fromtimestamp(millis / 1000, SHANGHAI).date()


def local_midnight(day: date) -> int:
    """Epoch millis of 00:00 Shanghai time on ``day``."""
    return to_millis(datetime.combine(day, time(), SHANGHAI))


def local_minute(day: date, minute: int) -> int:
    """Epoch millis of ``minute`` minutes after Shanghai midnight on ``day``.

    ``minute`` may be 1440 (the following midnight). Shanghai has kept one
    offset since 1991, so wall-clock and elapsed minutes agree.
    """
    return local_midnight(day) + minute * 60_000
