"""School terms by the Shanghai calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edustream.growth.terms import Season, Term, term_of
from edustream.growth.wire import to_millis


def _utc(text: str) -> int:
    return to_millis(datetime.fromisoformat(text).replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("instant_utc", "term_id"),
    [
        # 16:00 UTC on 31 August is midnight of 1 September in Shanghai.
        ("2024-08-31T15:59:59.999", "2023-2024-spring"),
        ("2024-08-31T16:00:00.000", "2024-2025-autumn"),
        ("2025-01-31T15:59:59.999", "2024-2025-autumn"),
        ("2025-01-31T16:00:00.000", "2024-2025-spring"),
        ("2024-12-31T20:00:00.000", "2024-2025-autumn"),
        ("2025-06-15T04:00:00.000", "2024-2025-spring"),
    ],
)
def test_term_boundaries_follow_shanghai_midnight(
    instant_utc: str, term_id: str
) -> None:
    """Terms change at Shanghai midnight, eight hours before UTC midnight."""
    assert term_of(_utc(instant_utc)).id == term_id


def test_term_names_and_labels() -> None:
    """A term has a stable id and Chinese and English labels."""
    autumn = Term(2024, Season.AUTUMN)

    assert autumn.id == "2024-2025-autumn"
    assert autumn.label_zh == "2024–2025学年第一学期"
    assert autumn.label_en == "2024–2025 autumn term"
    assert autumn.next().label_zh == "2024–2025学年第二学期"
    assert autumn.starts_at == _utc("2024-08-31T16:00:00")
    assert autumn.ends_at == _utc("2025-01-31T16:00:00")


@pytest.mark.parametrize("text", ["2024-2026-autumn", "2024-2025-summer", "2024"])
def test_term_parse_refuses_bad_ids(text: str) -> None:
    """Only well-formed term ids parse."""
    with pytest.raises(ValueError, match="not a term id"):
        Term.parse(text)


@given(st.integers(min_value=1995, max_value=2090), st.sampled_from(list(Season)))
def test_terms_tile_the_calendar(year: int, season: Season) -> None:
    """Each term ends where the next begins, and ids parse back and sort."""
    term = Term(year, season)

    assert term.ends_at == term.next().starts_at
    assert Term.parse(term.id) == term
    assert term < term.next()
    assert term.id < term.next().id
    assert term_of(term.starts_at) == term
    assert term_of(term.ends_at - 1) == term
    assert term.contains(term.starts_at)
    assert not term.contains(term.ends_at)
