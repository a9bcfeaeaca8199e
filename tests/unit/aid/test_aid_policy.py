"""Loading, validating and versioning the aid policy file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from edustream.aid.decider import StudentDecider, StudentState
from edustream.aid.facts import LinkFact, StatusFact
from edustream.aid.outputs import Offer
from edustream.aid.policy import Policy, load_default_policy, load_policy
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.vocabulary import (
    Category,
    Change,
    Holder,
    HolderRule,
    Relation,
    Stage,
)
from edustream.errors import ConfigError

TWO_VERSIONS = """\
offer_expiry_days = 14

[[versions]]
version = "v1"
effective_from = 2026-01-01
effective_to = 2026-06-30

[[versions.terms]]
id = "2026-spring"
reference_date = 2026-03-01

[[versions.rules]]
id = "boarding"
stage = "PRIMARY"
categories = ["MINIMUM_LIVING"]
aid_kind = "BOARDING_SUBSIDY"
amount_fen = 50000
status_holder = "EITHER"
boarding_required = true

[[versions]]
version = "v2"
effective_from = 2026-07-01

[[versions.terms]]
id = "2026-autumn"
reference_date = 2026-09-01

[[versions.rules]]
id = "boarding"
stage = "PRIMARY"
categories = ["MINIMUM_LIVING"]
aid_kind = "BOARDING_SUBSIDY"
amount_fen = 60000
status_holder = "EITHER"
boarding_required = true
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write ``text`` as a policy file and return its path."""
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_policy_loads_with_one_open_term() -> None:
    """The default file validates and takes offers for 2026 autumn only."""
    policy = load_default_policy()

    assert policy.offer_expiry_days == 30
    assert [term.id for term in policy.terms] == [
        "2025-autumn",
        "2026-spring",
        "2026-autumn",
    ]
    plans = policy.open_terms()
    assert [(plan.term.id, plan.rules.version) for plan in plans] == [
        ("2026-autumn", "2026.2")
    ]


@pytest.mark.parametrize(
    ("stage", "category", "expected"),
    [
        (Stage.PRIMARY, Category.MINIMUM_LIVING, {"BOARDING_SUBSIDY": 50000}),
        (Stage.JUNIOR, Category.RELAPSE_MONITORED, {"BOARDING_SUBSIDY": 62500}),
        (
            Stage.SENIOR,
            Category.MINIMUM_LIVING,
            {"NATIONAL_GRANT": 115000, "FEE_WAIVER": 90000},
        ),
        (Stage.SENIOR, Category.LOW_INCOME, {"NATIONAL_GRANT": 115000}),
        (
            Stage.VOCATIONAL,
            Category.ORPHAN_OR_UNCARED,
            {"NATIONAL_GRANT": 115000, "FEE_WAIVER": 90000},
        ),
        (Stage.UNDERGRADUATE, Category.EXTREME_POVERTY, {"NATIONAL_GRANT": 250000}),
        (Stage.UNDERGRADUATE, Category.DISABILITY, {"NATIONAL_GRANT": 185000}),
        (Stage.UNDERGRADUATE, Category.LOW_INCOME, {"NATIONAL_GRANT": 125000}),
    ],
)
def test_shipped_rules_by_stage_and_category(
    stage: Stage, category: Category, expected: dict[str, int]
) -> None:
    """Each (stage, category) maps to the reference aid kinds and amounts."""
    rules = load_default_policy().rules_for(date(2026, 9, 1))
    assert rules is not None

    found = {rule.aid_kind: rule.amount_fen for rule in rules.matching(stage, category)}
    assert found == expected


@pytest.mark.parametrize(
    ("day", "version"),
    [
        (date(2025, 12, 31), None),
        (date(2026, 1, 1), "v1"),
        (date(2026, 6, 30), "v1"),
        (date(2026, 7, 1), "v2"),
        (date(2030, 1, 1), "v2"),
    ],
)
def test_rules_for_picks_the_version_in_force(
    tmp_path: Path, day: date, version: str | None
) -> None:
    """A version applies from its effective_from through its effective_to."""
    policy = load_policy(write(tmp_path, TWO_VERSIONS))

    rules = policy.rules_for(day)
    assert (rules.version if rules else None) == version


def test_rules_for_a_gap_between_versions_is_none(tmp_path: Path) -> None:
    """A day between one version's end and the next one's start has no rules."""
    text = TWO_VERSIONS.replace(
        "effective_from = 2026-07-01", "effective_from = 2026-08-01"
    )
    policy = load_policy(write(tmp_path, text))

    assert policy.rules_for(date(2026, 7, 15)) is None
    assert policy.rules_for(date(2026, 8, 1)) is not None


def test_each_term_is_offered_under_its_own_version(tmp_path: Path) -> None:
    """A new version changes amounts from its date on, with no code change."""
    policy = load_policy(write(tmp_path, TWO_VERSIONS))
    state = eligible_student()

    outputs = StudentDecider(policy).decide(state, guardian_link())
    offers = {o.term: o for o in outputs if isinstance(o, Offer)}

    assert set(offers) == {"2026-spring", "2026-autumn"}
    assert (offers["2026-spring"].amount_fen, offers["2026-spring"].policy_version) == (
        50000,
        "v1",
    )
    assert (offers["2026-autumn"].amount_fen, offers["2026-autumn"].policy_version) == (
        60000,
        "v2",
    )
    assert offers["2026-autumn"].expires_at - offers["2026-autumn"].occurred_at == (
        14 * 86_400_000
    )


def test_closed_term_takes_no_offers(tmp_path: Path) -> None:
    """A term with offers_open = false is never assessed."""
    text = TWO_VERSIONS.replace(
        "reference_date = 2026-03-01",
        "reference_date = 2026-03-01\noffers_open = false",
    )
    policy = load_policy(write(tmp_path, text))
    state = eligible_student()

    outputs = StudentDecider(policy).decide(state, guardian_link())

    assert [o.term for o in outputs if isinstance(o, Offer)] == ["2026-autumn"]


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A TOML syntax error reports the file, line and column."""
    text = TWO_VERSIONS.replace("amount_fen = 60000", "amount_fen = = 60000")
    path = write(tmp_path, text)
    line = text.splitlines().index("amount_fen = = 60000") + 1

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}, column 14:")
    assert "Invalid value" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    """A file that cannot be read is reported with its path."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot be read"):
        load_policy(path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "amount_fen = 60000",
            "amount_fen = 0",
            "versions[1].rules[0].amount_fen: Input should be greater than 0",
        ),
        (
            "amount_fen = 60000",
            "amount_fen = 600.5",
            "versions[1].rules[0].amount_fen: Input should be a valid integer",
        ),
        (
            'stage = "PRIMARY"',
            'stage = "KINDERGARTEN"',
            "versions[1].rules[0].stage: Input should be 'PRIMARY'",
        ),
        (
            "boarding_required = true\n",
            "boarding_required = true\nbording = 1\n",
            "versions[1].rules[0].bording: Extra inputs are not permitted",
        ),
        (
            "offer_expiry_days = 14",
            "offer_expiry_days = 0",
            "offer_expiry_days: Input should be greater than 0",
        ),
        (
            'categories = ["MINIMUM_LIVING"]',
            'categories = ["MINIMUM_LIVING", "MINIMUM_LIVING"]',
            "versions[1].rules[0].categories: a category is listed twice",
        ),
        (
            "reference_date = 2026-09-01",
            "reference_date = 2026-05-01",
            "versions[1].terms[0].reference_date: must lie within",
        ),
        (
            "effective_to = 2026-06-30",
            "effective_to = 2026-07-31",
            "versions[1].effective_from: must come after the end of versions[0]",
        ),
        (
            'id = "2026-autumn"',
            'id = "2026-spring"',
            "versions[1].terms[0].id: repeats an earlier term id",
        ),
        (
            'aid_kind = "BOARDING_SUBSIDY"',
            'aid_kind = "boarding subsidy"',
            "versions[1].rules[0].aid_kind: String should match pattern",
        ),
    ],
)
def test_invalid_value_names_the_field_path(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """A bad value is reported with the file and the path of the field at fault."""
    head, found, tail = TWO_VERSIONS.rpartition(old)
    assert found, old
    path = write(tmp_path, head + new + tail)

    with pytest.raises(ConfigError) as caught:
        load_policy(path)

    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_duplicate_rule_case_is_refused(tmp_path: Path) -> None:
    """Two rules giving one aid kind to one stage and category are refused."""
    extra = TWO_VERSIONS + (
        '\n[[versions.rules]]\nid = "boarding-2"\nstage = "PRIMARY"\n'
        'categories = ["LOW_INCOME", "MINIMUM_LIVING"]\naid_kind = "BOARDING_SUBSIDY"\n'
        'amount_fen = 1\nstatus_holder = "STUDENT"\n'
    )
    with pytest.raises(ConfigError, match=r"versions\[1\]\.rules\[1\]: another rule"):
        load_policy(write(tmp_path, extra))


def test_duplicate_rule_id_is_refused(tmp_path: Path) -> None:
    """Rule ids are unique within a version, as offers cite them."""
    extra = TWO_VERSIONS + (
        '\n[[versions.rules]]\nid = "boarding"\nstage = "JUNIOR"\n'
        'categories = ["LOW_INCOME"]\naid_kind = "BOARDING_SUBSIDY"\n'
        'amount_fen = 1\nstatus_holder = "STUDENT"\n'
    )
    with pytest.raises(ConfigError, match=r"versions\[1\]\.rules\[1\]\.id: repeats"):
        load_policy(write(tmp_path, extra))


def test_rules_keep_their_holder_and_boarding_flags(tmp_path: Path) -> None:
    """Compiled rules carry whose status counts and the boarding requirement."""
    policy: Policy = load_policy(write(tmp_path, TWO_VERSIONS))
    rules = policy.rules_for(date(2026, 9, 1))
    assert rules is not None

    (rule,) = rules.matching(Stage.PRIMARY, Category.MINIMUM_LIVING)
    assert (rule.id, rule.version, rule.holder, rule.boarding_required) == (
        "boarding",
        "v2",
        HolderRule.EITHER,
        True,
    )
    assert rules.matching(Stage.SENIOR, Category.MINIMUM_LIVING) == ()


def eligible_student() -> StudentState:
    """Return a boarding primary student with their own allowance record."""
    state = StudentState(student_ref="stu_a")
    state.registry = RegistryRecord(
        event_id="e-reg",
        occurred_at=1_000,
        student_ref="stu_a",
        change=Change.ENROL,
        masked_name="张*明",
        school_id="SCH-1",
        school_name="One",
        district_code="310104",
        stage=Stage.PRIMARY,
        grade=2,
        boarding=True,
    )
    status = StatusRecord(
        event_id="e-st",
        occurred_at=2_000,
        person_ref="psn_a",
        status_id="MZ-1",
        category=Category.MINIMUM_LIVING,
        granted=True,
        valid_from=date(2026, 1, 1),
        valid_to=None,
    )
    StudentDecider(load_default_policy()).decide(
        state, StatusFact.addressed("stu_a", Holder.STUDENT, status)
    )
    return state


def guardian_link() -> LinkFact:
    """Return a link of guardian ``psn_g`` to ``stu_a``."""
    link = LinkRecord(
        event_id="e-link",
        occurred_at=3_000,
        guardian_ref="psn_g",
        guardian_account="acct-g",
        student_ref="stu_a",
        relation=Relation.FATHER,
        linked=True,
    )
    return LinkFact.addressed(link, ())
