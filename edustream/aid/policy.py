"""The aid policy: which student gets which aid, how much, for which term.

Duties:

- Read a versioned policy file (TOML) and validate it with pydantic, stopping
  start-up with a ``ConfigError`` that names the file and the TOML line (for
  syntax errors) or the field path (for bad values), such as
  ``versions[1].rules[3].amount_fen``.
- Compile the validated file once into frozen lookups, so the decider never
  parses or searches the policy per event.
- Pick the version in force on a date (``Policy.rules_for``): a new version
  applies from its ``effective_from`` with no code change.

A version holds terms (an id such as ``2026-autumn``, a reference date on
which eligibility is judged, and whether offers are still being made) and
rules. A rule gives, for a stage and one or more assistance categories, an
aid kind, an amount in fen per term, whose status counts (``STUDENT``,
``GUARDIAN`` or ``EITHER``) and whether the student must board.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edustream.aid.vocabulary import Category, HolderRule, Stage
from edustream.aid.wire import MILLIS_PER_DAY
from edustream.errors import ConfigError

DEFAULT_POLICY = "policy.toml"

# An id that is safe in offer ids, Avro strings and log fields alike.
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_AID_KIND_PATTERN = r"^[A-Z][A-Z0-9_]*$"

_TOML_POSITION = re.compile(
    r"^(?P<reason>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)$"
)

# Checks that span several fields report a path relative to the model they
# run on ("rules[3].id: ..."); it is joined to pydantic's location of that
# model so the message names the full path.
_RELATIVE_PATH = re.compile(r"^[a-z_]+(\[\d+\])*(\.[a-z_]+(\[\d+\])*)*: ")


class _Model(BaseModel):
    """Base of the file models: unknown keys are typos, so they are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleModel(_Model):
    """One ``[[versions.rules]]`` table."""

    id: str = Field(pattern=_ID_PATTERN)
    stage: Stage
    categories: list[Category] = Field(min_length=1)
    aid_kind: str = Field(pattern=_AID_KIND_PATTERN)
    amount_fen: int = Field(gt=0, strict=True)
    status_holder: HolderRule
    boarding_required: bool = False

    @model_validator(mode="after")
    def _categories_once(self) -> Self:
        """Refuse a category listed twice in one rule."""
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories: a category is listed twice")
        return self


class TermModel(_Model):
    """One ``[[versions.terms]]`` table."""

    id: str = Field(pattern=_ID_PATTERN)
    reference_date: date
    offers_open: bool = True


class VersionModel(_Model):
    """One ``[[versions]]`` table."""

    version: str = Field(pattern=_ID_PATTERN)
    effective_from: date
    effective_to: date | None = None
    terms: list[TermModel] = Field(default_factory=list)
    rules: list[RuleModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Check dates, term placement and rule uniqueness within a version."""
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to: must not be before effective_from")

        for index, term in enumerate(self.terms):
            if not self.covers(term.reference_date):
                message = (
                    f"terms[{index}].reference_date: must lie within the "
                    "version's effective dates"
                )
                raise ValueError(message)

        _check_unique_rules(self.rules)
        return self

    def covers(self, day: date) -> bool:
        """Return whether this version is in force on ``day``."""
        if day < self.effective_from:
            return False
        return self.effective_to is None or day <= self.effective_to


class PolicyModel(_Model):
    """The whole policy file."""

    offer_expiry_days: int = Field(gt=0, le=366, strict=True)
    versions: list[VersionModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Check that versions follow each other and term ids are unique."""
        _check_version_sequence(self.versions)
        _check_unique_terms(self.versions)
        return self


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule: a stage and a single category give an aid kind."""

    id: str
    version: str
    stage: Stage
    category: Category
    aid_kind: str
    amount_fen: int
    holder: HolderRule
    boarding_required: bool


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one policy version, indexed by (stage, category)."""

    version: str
    effective_from: date
    effective_to: date | None
    rules: tuple[Rule, ...]
    by_stage_category: Mapping[tuple[Stage, Category], tuple[Rule, ...]]

    def matching(self, stage: Stage, category: Category) -> tuple[Rule, ...]:
        """Return the rules for a student at ``stage`` with ``category``."""
        return self.by_stage_category.get((stage, category), ())


@dataclass(frozen=True, slots=True)
class Term:
    """A school term: eligibility is judged on its reference date."""

    id: str
    reference_date: date
    offers_open: bool


@dataclass(frozen=True, slots=True)
class TermPlan:
    """A term whose offers are being made, with the rules in force for it."""

    term: Term
    rules: RuleSet


@dataclass(frozen=True)
class Policy:
    """A loaded, validated and indexed policy file."""

    offer_expiry_days: int
    versions: tuple[RuleSet, ...]
    terms: tuple[Term, ...]
    _starts: list[date] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Index version start dates for ``rules_for``."""
        starts = [version.effective_from for version in self.versions]
        object.__setattr__(self, "_starts", starts)

    def rules_for(self, day: date) -> RuleSet | None:
        """Return the version in force on ``day``, or ``None`` if none is."""
        index = bisect.bisect_right(self._starts, day) - 1
        if index < 0:
            return None

        version = self.versions[index]
        if version.effective_to is not None and day > version.effective_to:
            return None
        return version

    def open_terms(self) -> tuple[TermPlan, ...]:
        """Return the terms still taking offers, each with its rules."""
        plans = []
        for term in self.terms:
            rules = self.rules_for(term.reference_date)
            if term.offers_open and rules is not None:
                plans.append(TermPlan(term=term, rules=rules))
        return tuple(plans)

    @property
    def offer_expiry_millis(self) -> int:
        """Return how long an offer stays open, in millis."""
        return self.offer_expiry_days * MILLIS_PER_DAY


def load_policy(path: str | Path) -> Policy:
    """Read, validate and compile the policy file at ``path``.

    Raises ``ConfigError`` naming the file and the line or field at fault.
    """
    source = Path(path)
    document = _read_toml(source)

    try:
        model = PolicyModel.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from exc

    return compile_policy(model)


def load_default_policy() -> Policy:
    """Load the policy file shipped with the package."""
    with resources.as_file(resources.files(__package__) / DEFAULT_POLICY) as path:
        return load_policy(path)


def compile_policy(model: PolicyModel) -> Policy:
    """Turn a validated file model into the indexed ``Policy``."""
    versions = tuple(_compile_version(version) for version in model.versions)
    terms = tuple(
        Term(
            id=term.id, reference_date=term.reference_date, offers_open=term.offers_open
        )
        for version in model.versions
        for term in version.terms
    )
    return Policy(
        offer_expiry_days=model.offer_expiry_days, versions=versions, terms=terms
    )


def _read_toml(source: Path) -> dict[str, Any]:
    """Return the parsed TOML at ``source`` or raise a located ``ConfigError``."""
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read ({exc.strerror})") from exc

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {_locate(exc)}") from exc


def _locate(exc: tomllib.TOMLDecodeError) -> str:
    """Return a TOML syntax error as ``line L, column C: reason``."""
    text = str(exc)
    found = _TOML_POSITION.match(text)
    if found is None:
        return f"TOML syntax error: {text}"
    return f"line {found['line']}, column {found['col']}: {found['reason']}"


def _describe(exc: ValidationError) -> str:
    """Return every validation error as ``path: message``, joined by ``; ``."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        path = _dotted(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not path:
            problems.append(message)
        elif _RELATIVE_PATH.match(message):
            problems.append(f"{path}.{message}")
        else:
            problems.append(f"{path}: {message}")
    return "; ".join(problems)


def _dotted(loc: Iterable[int | str]) -> str:
    """Return a pydantic location as ``versions[1].rules[3].amount_fen``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _compile_version(model: VersionModel) -> RuleSet:
    """Expand each rule per category and index the version's rules."""
    rules = tuple(
        Rule(
            id=rule.id,
            version=model.version,
            stage=rule.stage,
            category=category,
            aid_kind=rule.aid_kind,
            amount_fen=rule.amount_fen,
            holder=rule.status_holder,
            boarding_required=rule.boarding_required,
        )
        for rule in model.rules
        for category in rule.categories
    )

    index: dict[tuple[Stage, Category], list[Rule]] = {}
    for rule in rules:
        index.setdefault((rule.stage, rule.category), []).append(rule)

    return RuleSet(
        version=model.version,
        effective_from=model.effective_from,
        effective_to=model.effective_to,
        rules=rules,
        by_stage_category={key: tuple(found) for key, found in index.items()},
    )


def _check_unique_rules(rules: list[RuleModel]) -> None:
    """Refuse repeated rule ids and two rules giving one kind to one case."""
    seen_ids: set[str] = set()
    seen_cases: set[tuple[Stage, Category, str]] = set()

    for index, rule in enumerate(rules):
        if rule.id in seen_ids:
            raise ValueError(f"rules[{index}].id: repeats an earlier rule id")
        seen_ids.add(rule.id)

        for category in rule.categories:
            case = (rule.stage, category, rule.aid_kind)
            if case in seen_cases:
                message = (
                    f"rules[{index}]: another rule already gives {rule.aid_kind} "
                    f"to {rule.stage.value} students with {category.value}"
                )
                raise ValueError(message)
            seen_cases.add(case)


def _check_version_sequence(versions: list[VersionModel]) -> None:
    """Refuse versions out of date order, overlapping or repeating a name."""
    names: set[str] = set()

    for index, version in enumerate(versions):
        if version.version in names:
            raise ValueError(f"versions[{index}].version: repeats an earlier version")
        names.add(version.version)

        if index == 0:
            continue
        before = versions[index - 1]
        if before.effective_to is None or before.effective_to >= version.effective_from:
            message = (
                f"versions[{index}].effective_from: must come after the end of "
                f"versions[{index - 1}] (set its effective_to)"
            )
            raise ValueError(message)


def _check_unique_terms(versions: list[VersionModel]) -> None:
    """Refuse a term id that appears twice anywhere in the file."""
    seen: set[str] = set()
    for v_index, version in enumerate(versions):
        for t_index, term in enumerate(version.terms):
            if term.id in seen:
                path = f"versions[{v_index}].terms[{t_index}].id"
                raise ValueError(f"{path}: repeats an earlier term id")
            seen.add(term.id)
