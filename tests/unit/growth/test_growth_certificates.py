"""Certificate rules, issuing once per term, and withdrawal after voids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from growth_factories import (
    HOUR,
    STUDENT,
    activity,
    archive_of,
    at,
    confirmation,
    enrolment,
    visit_statement,
    void,
)

from edustream.errors import ConfigError
from edustream.growth.archive import Archive
from edustream.growth.certificates import (
    RULES_PATH,
    Certificate,
    CertificateStatus,
    Measure,
    Rule,
    RuleBook,
    certificate_id,
    evaluate,
    load_rules,
    parse_rules,
)
from edustream.growth.identity import derive_id
from edustream.growth.statements import (
    Statement,
    statement_for_confirmation,
    statement_for_void,
)
from edustream.growth.terms import Term
from edustream.growth.vocabulary import Category

AUTUMN = Term.parse("2024-2025-autumn")
SPRING = Term.parse("2024-2025-spring")
LABOUR_20H = Rule(
    id="labour-20-hours",
    title="Labour education: 20 hours in a term",
    title_zh="劳动教育：一学期满20小时",
    category=Category.LABOUR,
    measure=Measure.HOURS,
    threshold=20,
)
AESTHETIC_5 = Rule(
    id="aesthetic-5-venues",
    title="Aesthetic education: 5 venues in a term",
    title_zh="美育：一学期走访5个场馆",
    category=Category.AESTHETIC,
    measure=Measure.DISTINCT_VENUES,
    threshold=5,
)
RULES = RuleBook(rules=(LABOUR_20H, AESTHETIC_5))


def _hours(hours: int, day: str, *, cid: str | None = None) -> Statement:
    when = at(f"{day} 16:00")
    built = statement_for_confirmation(
        confirmation(hours * 60, when, confirmation_id=cid),
        STUDENT,
        activity(),
        enrolment(),
        now=when,
    )
    assert isinstance(built, Statement)
    return built


def _void(archive: Archive, target: Statement, when: int) -> Statement:
    voiding = statement_for_void(void(target.id, when), now=when)
    archive.apply(voiding)
    return voiding


def test_default_rule_file_loads() -> None:
    """The shipped rule file validates and names its rules."""
    book = load_rules()

    assert RULES_PATH.name == "certificates.toml"
    assert [r.id for r in book.rules] == [
        "labour-20-hours",
        "aesthetic-5-venues",
        "physical-12-visits",
        "moral-10-hours",
        "intellectual-5-venues",
    ]
    assert book.rules[0] == LABOUR_20H


_GOOD = """[[rule]]
id = "labour-20-hours"
title = "Labour"
title_zh = "劳动"
category = "LABOUR"
measure = "hours"
threshold = 20

[[rule]]
id = "aesthetic-5-venues"
title = "Aesthetic"
title_zh = "美育"
category = "AESTHETIC"
measure = "distinct_venues"
threshold = 5
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("threshold = 5", "threshold = 0", ":15: rule[1].threshold:"),
        ("threshold = 5", 'threshold = "5"', ":15: rule[1].threshold:"),
        ('category = "AESTHETIC"', 'category = "SPORT"', ":13: rule[1].category:"),
        ('measure = "hours"', 'measure = "days"', ":6: rule[0].measure:"),
        ('title_zh = "美育"\n', "", ":9: rule[1].title_zh: Field required"),
        ("threshold = 20", "threshold = 20\ncolour = 1", ":8: rule[0].colour:"),
        ('id = "aesthetic-5-venues"', 'id = "labour-20-hours"', ":10: rule[1].id:"),
        ('id = "aesthetic-5-venues"', 'id = "Has Spaces"', ":10: rule[1].id:"),
        ('[[rule]]\nid = "aes', '[[rule]\nid = "aes', ":9: Expected ']]'"),
    ],
)
def test_bad_rules_name_line_and_field(old: str, new: str, expected: str) -> None:
    """A bad rule file stops start-up naming the line and the field."""
    text = _GOOD.replace(old, new, 1)
    assert text != _GOOD

    with pytest.raises(ConfigError) as caught:
        parse_rules(text, source="rules.toml")

    assert str(caught.value).startswith("rules.toml")
    assert expected in str(caught.value)


def test_unreadable_rule_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing rule file names the path."""
    missing = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_rules(missing)


def test_hours_rule_issues_once_per_term() -> None:
    """Reaching 20 labour hours issues one certificate, never a second."""
    archive = archive_of(_hours(19, "2024-09-05"))
    assert evaluate(archive, AUTUMN, RULES, at=1) == []

    third = _hours(1, "2024-09-06")
    archive.apply(third)
    (issued,) = evaluate(archive, AUTUMN, RULES, at=2)
    archive.apply(_hours(5, "2024-09-07"))
    again = evaluate(archive, AUTUMN, RULES, at=3)

    assert again == []
    assert issued.certificate_id == certificate_id("labour-20-hours", STUDENT, AUTUMN)
    assert (issued.status, issued.revision, issued.issued_at) == (
        CertificateStatus.ISSUED,
        1,
        2,
    )
    assert set(issued.evidence) == {s.id for s in archive.statements()[:2]}
    assert archive.certificates == {issued.certificate_id: issued}


def test_each_term_earns_its_own_certificate() -> None:
    """The same rule issues again in another term, under another id."""
    archive = archive_of(_hours(20, "2024-09-05"), _hours(20, "2025-03-05"))

    (autumn,) = evaluate(archive, AUTUMN, RULES, at=1)
    (spring,) = evaluate(archive, SPRING, RULES, at=2)

    assert (autumn.term, spring.term) == (AUTUMN.id, SPRING.id)
    assert autumn.certificate_id != spring.certificate_id


def test_distinct_venues_rule() -> None:
    """Five different aesthetic venues earn the venue certificate; one five
    times does not."""
    morning = at("2024-10-01 10:00")
    same = archive_of(*(visit_statement(morning + i * HOUR, 30) for i in range(5)))
    spread = archive_of(
        *(visit_statement(morning + i * HOUR, 30, venue_id=f"v-{i}") for i in range(5))
    )

    assert evaluate(same, AUTUMN, RULES, at=1) == []
    (issued,) = evaluate(spread, AUTUMN, RULES, at=1)
    assert issued.rule_id == "aesthetic-5-venues"
    assert len(issued.evidence) == 5


def test_void_withdraws_then_new_hours_reissue() -> None:
    """A void that breaks the rule withdraws; meeting it again reissues."""
    first, second = _hours(10, "2024-09-05"), _hours(10, "2024-09-06")
    archive = archive_of(first, second)
    (issued,) = evaluate(archive, AUTUMN, RULES, at=1)

    _void(archive, second, at("2024-10-01 09:00"))
    (withdrawn,) = evaluate(archive, AUTUMN, RULES, at=2)
    archive.apply(_hours(10, "2024-10-02"))
    (reissued,) = evaluate(archive, AUTUMN, RULES, at=3)

    assert (withdrawn.status, withdrawn.revision, withdrawn.withdrawn_at) == (
        CertificateStatus.WITHDRAWN,
        2,
        2,
    )
    assert withdrawn.certificate_id == issued.certificate_id
    assert (reissued.status, reissued.revision, reissued.withdrawn_at) == (
        CertificateStatus.ISSUED,
        3,
        None,
    )
    assert len({issued.event_id, withdrawn.event_id, reissued.event_id}) == 3
    assert second.id not in reissued.evidence


def test_void_that_leaves_the_rule_holding_withdraws_nothing() -> None:
    """Voiding one hour of 21 keeps the certificate."""
    extra = _hours(1, "2024-09-06")
    archive = archive_of(_hours(20, "2024-09-05"), extra)
    evaluate(archive, AUTUMN, RULES, at=1)

    _void(archive, extra, at("2024-10-01 09:00"))

    assert evaluate(archive, AUTUMN, RULES, at=2) == []


def test_raising_a_threshold_never_withdraws() -> None:
    """Only voided evidence can take a certificate back."""
    archive = archive_of(_hours(20, "2024-09-05"))
    evaluate(archive, AUTUMN, RULES, at=1)
    stricter = RuleBook(rules=(LABOUR_20H.model_copy(update={"threshold": 40}),))

    assert evaluate(archive, AUTUMN, stricter, at=2) == []


def test_certificates_survive_the_archive_json() -> None:
    """Issued certificates are kept with the archive, so none repeats."""
    archive = archive_of(_hours(20, "2024-09-05"))
    evaluate(archive, AUTUMN, RULES, at=1)

    restored = Archive.from_dict(json.loads(json.dumps(archive.to_dict())))

    assert restored.certificates == archive.certificates
    assert evaluate(restored, AUTUMN, RULES, at=2) == []


def test_open_badge_shape() -> None:
    """A certificate renders as an unsigned Open Badges 3.0 credential."""
    archive = archive_of(_hours(20, "2024-09-05"))
    (issued,) = evaluate(archive, AUTUMN, RULES, at=at("2024-09-05 16:00"))

    badge = issued.to_open_badge_json()

    assert badge["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert badge["id"] == f"urn:uuid:{issued.certificate_id}"
    assert badge["validFrom"] == "2024-09-05T08:00:00Z"
    subject = badge["credentialSubject"]
    assert subject["identifier"][0]["identityHash"] == STUDENT
    assert subject["achievement"]["name"] == LABOUR_20H.title
    assert [e["id"] for e in badge["evidence"]] == [
        f"urn:uuid:{e}" for e in issued.evidence
    ]
    assert "validUntil" not in badge


def test_certificate_event_id_is_deterministic() -> None:
    """The event id depends on certificate and revision only."""
    archive = archive_of(_hours(20, "2024-09-05"))
    (issued,) = evaluate(archive, AUTUMN, RULES, at=1)

    assert issued.event_id == derive_id("certificate-event", issued.certificate_id, 1)
    assert Certificate.from_dict(issued.to_dict()) == issued
