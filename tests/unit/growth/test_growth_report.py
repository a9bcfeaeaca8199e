"""Growth reports as JSON and as a standalone HTML page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from growth_factories import (
    STUDENT,
    activity,
    archive_of,
    at,
    award,
    confirmation,
    enrolment,
    visit_statement,
    void,
)

from edustream.growth.archive import Archive
from edustream.growth.certificates import evaluate, load_rules
from edustream.growth.report import build_report, render_html
from edustream.growth.statements import (
    Statement,
    statement_for_award,
    statement_for_confirmation,
    statement_for_void,
)
from edustream.growth.terms import Term
from edustream.growth.vocabulary import Category

AUTUMN = Term.parse("2024-2025-autumn")
NOW = at("2024-12-01 12:00")


def _confirmed(
    minutes: int, day: str, category: Category, activity_id: str
) -> Statement:
    when = at(f"{day} 16:00")
    built = statement_for_confirmation(
        confirmation(minutes, when, activity_id=activity_id),
        STUDENT,
        activity(activity_id, category=category),
        enrolment(),
        now=when,
    )
    assert isinstance(built, Statement)
    return built


def _sample_archive() -> Archive:
    """Moral 90, intellectual 0, physical 45, aesthetic 120, labour 1200."""
    earned = statement_for_award(award(at("2024-10-20 09:00")), enrolment(), now=NOW)
    assert isinstance(earned, Statement)
    voided = visit_statement(at("2024-10-03 10:00"), 500, venue_id="v-x")
    archive = archive_of(
        _confirmed(90, "2024-09-10", Category.MORAL, "a-flag"),
        visit_statement(at("2024-09-12 10:00"), 45, category=Category.PHYSICAL),
        visit_statement(at("2024-09-14 10:00"), 120, venue_id="v-gallery"),
        _confirmed(1200, "2024-10-01", Category.LABOUR, "a-farm"),
        voided,
        earned,
        # Another term: absent from the autumn report.
        visit_statement(at("2025-03-03 10:00"), 60, venue_id="v-spring"),
    )
    archive.apply(statement_for_void(void(voided.id, NOW), now=NOW))
    evaluate(archive, AUTUMN, load_rules(), at=at("2024-10-01 16:00"))
    return archive


class _Marks(HTMLParser):
    """Collects the chart's marks and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, int] = {}
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "rect" and found.get("class") == "mark":
            self.marks[found["data-category"] or ""] = int(found["data-value"] or "")
        self.links += [v or "" for k, v in attrs if k in {"src", "href", "xlink:href"}]


def _marks(html: str) -> _Marks:
    parser = _Marks()
    parser.feed(html)
    return parser


def test_html_chart_has_five_marks_with_values() -> None:
    """Each education has one mark whose data-value is its minutes."""
    report = build_report(_sample_archive(), generated_at=NOW, term=AUTUMN)

    parsed = _marks(render_html(report))

    assert parsed.marks == {
        "MORAL": 90,
        "INTELLECTUAL": 0,
        "PHYSICAL": 45,
        "AESTHETIC": 120,
        "LABOUR": 1200,
    }


def test_html_is_standalone_and_bilingual() -> None:
    """The page loads nothing from outside and labels in Chinese and English."""
    html = render_html(build_report(_sample_archive(), generated_at=NOW, term=AUTUMN))

    assert html.startswith("<!DOCTYPE html>")
    assert _marks(html).links == []
    for banned in (
        "<script",
        "http://",
        "https://",
        "url(",
        "@import",
        "<img",
        "<link",
    ):
        assert banned not in html
    for label in (
        "德 Moral",
        "智 Intellectual",
        "体 Physical",
        "美 Aesthetic",
        "劳 Labour",
    ):
        assert label in html
    assert "2024–2025学年第一学期" in html


def test_html_escapes_all_text() -> None:
    """Names from upstream cannot inject markup."""
    hostile = '<script>alert("x")</script> & co'
    earned = statement_for_award(
        award(at("2024-10-20 09:00"), title=hostile), enrolment(), now=NOW
    )
    assert isinstance(earned, Statement)

    html = render_html(build_report(archive_of(earned), generated_at=NOW))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html


def test_report_shows_only_the_opaque_account() -> None:
    """No name or ID-number-like string appears; the account does."""
    html = render_html(build_report(_sample_archive(), generated_at=NOW))

    assert STUDENT in html
    assert re.search(r"\d{17}[\dXx]", html) is None


def test_json_report_contents() -> None:
    """The JSON report lists counts, live activities and certificates."""
    report = build_report(_sample_archive(), generated_at=NOW, term=AUTUMN).to_dict()
    json.dumps(report)

    assert report["scope"] == AUTUMN.id
    assert [c["category"] for c in report["categories"]] == [c.value for c in Category]
    labour = report["categories"][4]
    assert (labour["label_zh"], labour["minutes"], labour["hours"]) == (
        "劳",
        1200,
        20.0,
    )
    titles = [a["title"] for a in report["activities"]]
    assert titles == ["陶艺课", "城市美术馆", "城市美术馆", "陶艺课"]
    assert report["activities"][0]["local_time"] == "2024-10-01 16:00"
    certificates = [(c["title"], c["issuer"]) for c in report["certificates"]]
    assert certificates == [
        ("青少年书画比赛一等奖", "市青少年宫"),
        ("劳动教育：一学期满20小时 Labour education: 20 hours in a term", ""),
    ]


def test_lifelong_report_spans_terms_and_skips_voided() -> None:
    """Without a term the report covers everything still live."""
    report = build_report(_sample_archive(), generated_at=NOW).to_dict()

    aesthetic = report["categories"][3]
    assert (
        aesthetic["minutes"],
        aesthetic["visits"],
        aesthetic["distinct_venues"],
    ) == (
        180,
        2,
        2,
    )
    assert len(report["activities"]) == 5
    assert report["scope_label"] == "终身 Lifelong"


def test_empty_archive_renders() -> None:
    """A student with nothing yet still gets a page with five zero marks."""
    html = render_html(build_report(Archive(STUDENT), generated_at=NOW))

    assert _marks(html).marks == dict.fromkeys((c.value for c in Category), 0)
    assert "暂无 None yet" in html
