"""Growth reports: a student's archive as JSON and as one standalone page.

Duties:

- gather a report for one student, over one term or the whole archive: the
  five educations' counts, the live activities and the certificates (issued
  by rules, and awarded by organisers);
- render it as a ``dict`` for JSON, and as a self-contained HTML page with an
  inline SVG bar chart of the five educations. Every bar carries
  ``data-category`` and ``data-value`` (minutes) so a browser test can read
  the chart's values.

The page loads nothing: no scripts, no fonts, no images, no CDN, and a
Content-Security-Policy that forbids them. All text is escaped. Students
appear only as their opaque account; no name or ID number is ever in the
archive, so none can reach a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from edustream.growth.aggregates import CategorySummary
from edustream.growth.archive import Archive
from edustream.growth.certificates import CertificateStatus
from edustream.growth.statements import Statement, Verb
from edustream.growth.terms import SHANGHAI, Term
from edustream.growth.vocabulary import CATEGORIES, Category

LIFELONG = "lifelong"

_COLOURS = {
    Category.MORAL: "#c0392b",
    Category.INTELLECTUAL: "#2e86c1",
    Category.PHYSICAL: "#28b463",
    Category.AESTHETIC: "#8e44ad",
    Category.LABOUR: "#d68910",
}


@dataclass(frozen=True, slots=True)
class ReportActivity:
    """One live archive entry as a report lists it."""

    statement_id: str
    verb: Verb
    title: str
    category: Category
    timestamp: int
    duration: str | None
    venue_id: str | None
    auto_closed: bool

    def to_dict(self) -> dict[str, Any]:
        """The entry as a dict for JSON."""
        return {
            "statement_id": self.statement_id,
            "verb": self.verb.display_en,
            "verb_zh": self.verb.display_zh,
            "title": self.title,
            "category": self.category.value,
            "timestamp": self.timestamp,
            "local_time": _local_time(self.timestamp),
            "duration": self.duration,
            "venue_id": self.venue_id,
            "auto_closed": self.auto_closed,
        }


@dataclass(frozen=True, slots=True)
class ReportCertificate:
    """One certificate as a report lists it: from a rule or an organiser."""

    certificate_id: str
    title: str
    category: Category
    issued_at: int
    issuer: str
    term: str | None

    def to_dict(self) -> dict[str, Any]:
        """The certificate as a dict for JSON."""
        return {
            "certificate_id": self.certificate_id,
            "title": self.title,
            "category": self.category.value,
            "issued_at": self.issued_at,
            "local_time": _local_time(self.issued_at),
            "issuer": self.issuer,
            "term": self.term,
        }


@dataclass(frozen=True, slots=True)
class GrowthReport:
    """Everything one report shows, for one student and scope."""

    student_account: str
    scope: str
    scope_label: str
    generated_at: int
    categories: dict[Category, CategorySummary]
    activities: tuple[ReportActivity, ...]
    certificates: tuple[ReportCertificate, ...]

    def to_dict(self) -> dict[str, Any]:
        """The report as a dict for JSON; categories in 德智体美劳 order."""
        return {
            "student_account": self.student_account,
            "scope": self.scope,
            "scope_label": self.scope_label,
            "generated_at": self.generated_at,
            "categories": [
                {
                    "category": category.value,
                    "label_zh": category.label_zh,
                    "label_en": category.label_en,
                    **self.categories[category].to_dict(),
                }
                for category in CATEGORIES
            ],
            "activities": [a.to_dict() for a in self.activities],
            "certificates": [c.to_dict() for c in self.certificates],
        }


def build_report(
    archive: Archive, *, generated_at: int, term: Term | None = None
) -> GrowthReport:
    """Gather the report of ``archive`` for ``term``, or lifelong if ``None``."""
    live = [
        s
        for s in archive.statements()
        if s.context_category is not None and s.verb_id in _REPORTED_VERBS
        if term is None or term.contains(s.timestamp)
    ]
    activities = [_activity(s) for s in live if s.verb_id != Verb.EARNED.value]
    activities.reverse()  # newest first, as a student reads a timeline

    return GrowthReport(
        student_account=archive.student_account,
        scope=LIFELONG if term is None else term.id,
        scope_label=_scope_label(term),
        generated_at=generated_at,
        categories=archive.tally.summary(None if term is None else term.id),
        activities=tuple(activities),
        certificates=tuple(_certificates(archive, live, term)),
    )


# Statements a report shows; anything else (a voiding statement, a verb
# another system wrote) has no place on a student's timeline.
_REPORTED_VERBS = frozenset((Verb.ATTENDED, Verb.COMPLETED, Verb.EARNED))


def _category(statement: Statement) -> Category:
    if statement.context_category is None:
        raise ValueError("a reported statement always has a category")
    return statement.context_category


def _activity(statement: Statement) -> ReportActivity:
    return ReportActivity(
        statement_id=statement.id,
        verb=Verb(statement.verb_id),
        title=statement.object_name or "",
        category=_category(statement),
        timestamp=statement.timestamp,
        duration=statement.result_duration,
        venue_id=statement.context_venue_id,
        auto_closed=statement.context_flagged_auto_closed,
    )


def _certificates(
    archive: Archive, live: list[Statement], term: Term | None
) -> list[ReportCertificate]:
    found = [
        ReportCertificate(
            certificate_id=c.certificate_id,
            title=f"{c.title_zh} {c.title}",
            category=c.category,
            issued_at=c.issued_at,
            issuer="",
            term=c.term,
        )
        for c in archive.certificates.values()
        if c.status is CertificateStatus.ISSUED and (term is None or c.term == term.id)
    ]
    found.extend(_award(s) for s in live if s.verb_id == Verb.EARNED.value)
    found.sort(key=lambda c: (c.issued_at, c.certificate_id), reverse=True)
    return found


def _award(statement: Statement) -> ReportCertificate:
    return ReportCertificate(
        certificate_id=statement.id,
        title=statement.object_name or "",
        category=_category(statement),
        issued_at=statement.timestamp,
        issuer=statement.context_issuer or "",
        term=None,
    )


def _scope_label(term: Term | None) -> str:
    if term is None:
        return "终身 Lifelong"
    return f"{term.label_zh} {term.label_en}"


def render_html(report: GrowthReport) -> str:
    """The report as one standalone HTML page (UTF-8, no external assets)."""
    account = escape(report.student_account)
    generated = escape(_local_time(report.generated_at))
    return "\n".join(
        (
            "<!DOCTYPE html>",
            '<html lang="zh-CN">',
            _head(),
            "<body>",
            "<header><h1>成长档案 Growth report</h1>",
            f'<p>账户 Account: <code class="account">{account}</code>'
            f" · {escape(report.scope_label)}"
            f" · 生成于 Generated {generated}</p></header>",
            _categories_section(report),
            _activities_section(report),
            _certificates_section(report),
            "</body>",
            "</html>",
        )
    )


def _head() -> str:
    return (
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>成长档案 Growth report</title>\n"
        f"<style>{_STYLE}</style>\n"
        "</head>"
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}"
    "svg text{font-size:12px}"
    ".none{color:#777}"
)

_CHART_WIDTH = 520
_CHART_HEIGHT = 240
_PLOT_TOP = 24
_PLOT_HEIGHT = 160
_BAR_WIDTH = 56
_BAR_PITCH = 100


def _categories_section(report: GrowthReport) -> str:
    return "\n".join(
        (
            '<section id="categories"><h2>五育 Five educations</h2>',
            _chart(report.categories),
            _summary_table(report.categories),
            "</section>",
        )
    )


def _chart(categories: dict[Category, CategorySummary]) -> str:
    peak = max((categories[c].minutes for c in CATEGORIES), default=0)
    marks = [_bar(i, c, categories[c], peak) for i, c in enumerate(CATEGORIES)]
    return "\n".join(
        (
            f'<svg class="chart" role="img" aria-labelledby="chart-title" '
            f'data-unit="minutes" width="{_CHART_WIDTH}" height="{_CHART_HEIGHT}" '
            f'viewBox="0 0 {_CHART_WIDTH} {_CHART_HEIGHT}">',
            '<title id="chart-title">五育时长（小时） Hours per education</title>',
            *marks,
            "</svg>",
        )
    )


def _bar(index: int, category: Category, summary: CategorySummary, peak: int) -> str:
    height = 0.0 if peak == 0 else summary.minutes / peak * _PLOT_HEIGHT
    x = 20 + index * _BAR_PITCH
    y = _PLOT_TOP + _PLOT_HEIGHT - height
    centre = x + _BAR_WIDTH / 2
    label = f"{category.label_zh} {category.label_en}"
    hours = f"{summary.hours:.1f} h"
    base = _PLOT_TOP + _PLOT_HEIGHT
    return (
        f'<g class="category">'
        f'<rect class="mark" data-category="{category.value}" '
        f'data-value="{summary.minutes}" x="{x}" y="{y:.1f}" '
        f'width="{_BAR_WIDTH}" height="{height:.1f}" fill="{_COLOURS[category]}">'
        f"<title>{escape(label)}: {hours}</title></rect>"
        f'<text x="{centre:.1f}" y="{y - 6:.1f}" text-anchor="middle">{hours}</text>'
        f'<text x="{centre:.1f}" y="{base + 20}" text-anchor="middle">'
        f"{category.label_zh}</text>"
        f'<text x="{centre:.1f}" y="{base + 36}" text-anchor="middle">'
        f"{category.label_en}</text></g>"
    )


def _summary_table(categories: dict[Category, CategorySummary]) -> str:
    rows = [
        _row(
            f"{c.label_zh} {c.label_en}",
            categories[c].minutes,
            f"{categories[c].hours:.1f}",
            categories[c].visits,
            categories[c].distinct_venues,
            categories[c].awards,
        )
        for c in CATEGORIES
    ]
    header = _header_row(
        "类别 Education",
        "分钟 Minutes",
        "小时 Hours",
        "到访 Visits",
        "场馆 Venues",
        "奖项 Awards",
    )
    return _table("summary", header, rows)


def _activities_section(report: GrowthReport) -> str:
    heading = '<section id="activities"><h2>活动 Activities</h2>'
    if not report.activities:
        return f'{heading}<p class="none">暂无 None yet</p></section>'

    header = _header_row(
        "时间 Time", "类别 Education", "活动 Activity", "动作 Verb", "时长 Duration"
    )
    rows = [
        _row(
            _local_time(a.timestamp),
            f"{a.category.label_zh} {a.category.label_en}",
            a.title,
            f"{a.verb.display_zh} {a.verb.display_en}",
            _duration_text(a),
        )
        for a in report.activities
    ]
    return f"{heading}\n{_table('activities', header, rows)}\n</section>"


def _duration_text(activity: ReportActivity) -> str:
    text = activity.duration or ""
    if activity.auto_closed:
        text += " (未签退 auto-closed)"
    return text


def _certificates_section(report: GrowthReport) -> str:
    heading = '<section id="certificates"><h2>证书 Certificates</h2>'
    if not report.certificates:
        return f'{heading}<p class="none">暂无 None yet</p></section>'

    header = _header_row(
        "颁发 Issued",
        "类别 Education",
        "证书 Certificate",
        "学期 Term",
        "颁发方 Issuer",
    )
    rows = [
        _row(
            _local_time(c.issued_at),
            f"{c.category.label_zh} {c.category.label_en}",
            c.title,
            c.term or "",
            c.issuer,
        )
        for c in report.certificates
    ]
    return f"{heading}\n{_table('certificates', header, rows)}\n</section>"


def _table(name: str, header: str, rows: list[str]) -> str:
    body = "\n".join(rows)
    head = f'<table class="{name}"><thead>{header}</thead>'
    return f"{head}<tbody>\n{body}\n</tbody></table>"


def _header_row(*cells: str) -> str:
    return "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in cells) + "</tr>"


def _row(*cells: object) -> str:
    return "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"


def _local_time(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M")
