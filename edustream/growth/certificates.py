"""Certificates earned from the archive by rules kept as data.

Duties:

- read the rule file (``certificates.toml`` beside this module by default),
  validate it with pydantic and report a bad rule as ``ConfigError`` naming
  the file, line, rule and field;
- evaluate a student's archive for one term: issue a certificate when a rule
  first holds, at most once per (rule, student, term), and withdraw it when a
  void takes away evidence and the rule no longer holds;
- derive certificate ids from (rule, student, term) and event ids from
  (certificate, revision), so replays rebuild the same outputs;
- render a certificate in an Open Badges 3.0 shape (unsigned: the signing
  key and proof belong to the issuing service, not to this flow).

A certificate is never withdrawn because a rule changed: only a voided
evidence statement can take one back.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from edustream.errors import ConfigError
from edustream.growth.aggregates import Contribution, Tally
from edustream.growth.identity import derive_id
from edustream.growth.statements import DEFAULT_VOCABULARY, Vocabulary
from edustream.growth.terms import Term
from edustream.growth.vocabulary import Category
from edustream.growth.wire import (
    Fields,
    millis_to_datetime,
    reading,
    to_int,
    to_millis,
    to_optional_millis,
    to_text,
)

if TYPE_CHECKING:
    from edustream.growth.archive import Archive

RULES_PATH = Path(__file__).with_name("certificates.toml")

_OB_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)


class Measure(StrEnum):
    """What a rule counts within one term and category."""

    HOURS = "hours"
    VISITS = "visits"
    DISTINCT_VENUES = "distinct_venues"


class Rule(BaseModel):
    """One certificate rule: reach ``threshold`` of ``measure`` in a term."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    title: str = Field(min_length=1)
    title_zh: str = Field(min_length=1)
    category: Category
    measure: Measure
    threshold: StrictInt = Field(gt=0)

    def holds(self, tally: Tally) -> bool:
        """Whether the term's counts of this rule's category reach it."""
        if self.measure is Measure.HOURS:
            return tally.seconds >= self.threshold * 3600
        if self.measure is Measure.VISITS:
            return tally.visits >= self.threshold
        return tally.distinct_venues >= self.threshold

    def evidence(self, contributions: list[Contribution]) -> tuple[str, ...]:
        """The statement ids that count towards this rule."""
        if self.measure is Measure.HOURS:
            return tuple(c.statement_id for c in contributions if c.seconds)
        return tuple(c.statement_id for c in contributions if c.visits)


class RuleBook(BaseModel):
    """Every certificate rule, as the rule file lists them."""

    # The file writes one [[rule]] table per rule; code says ``rules=``.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    rules: tuple[Rule, ...] = Field(validation_alias="rule", default=())


def load_rules(path: Path = RULES_PATH) -> RuleBook:
    """Read and validate the rule file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the certificate rules") from exc
    return parse_rules(text, source=str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleBook:
    """Validate rule-file ``text``; ``ConfigError`` names line and field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's error carries its position only inside the message.
        found = re.search(r"at line (\d+)", str(exc))
        line = found[1] if found else "1"
        raise ConfigError(f"{source}:{line}: {exc}") from exc

    try:
        book = RuleBook.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, text, source) from exc

    _check_unique(book, text, source)
    return book


def _config_error(exc: ValidationError, text: str, source: str) -> ConfigError:
    first = exc.errors()[0]
    location = first["loc"]
    index = location[1] if len(location) > 1 and isinstance(location[1], int) else 0
    field = str(location[2]) if len(location) > 2 else ""
    line = _line_of(text, index, field)
    where = f"rule[{index}].{field}" if field else ".".join(map(str, location))
    return ConfigError(f"{source}:{line}: {where}: {first['msg']}")


def _check_unique(book: RuleBook, text: str, source: str) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(book.rules):
        if rule.id in seen:
            line = _line_of(text, index, "id")
            message = f"duplicate rule id {rule.id!r}"
            raise ConfigError(f"{source}:{line}: rule[{index}].id: {message}")
        seen.add(rule.id)


def _line_of(text: str, index: int, field: str) -> int:
    """The line of ``field`` in the ``index``-th ``[[rule]]`` table.

    tomllib reports no positions for valid TOML, so the line is found by
    reading the text: the field's line if written, else the table header.
    """
    key = re.compile(rf"^\s*{re.escape(field)}\s*=") if field else None
    block, header = -1, 1
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("[[rule]]"):
            block += 1
            header = number if block == index else header
        elif block == index and key is not None and key.match(line):
            return number
    return header


class CertificateStatus(StrEnum):
    """Whether a certificate stands."""

    ISSUED = "ISSUED"
    WITHDRAWN = "WITHDRAWN"


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate issued by a rule for one student and term.

    ``revision`` counts status changes, so each issue and withdrawal is its
    own event with its own deterministic event id.
    """

    certificate_id: str
    student_account: str
    rule_id: str
    title: str
    title_zh: str
    term: str
    category: Category
    evidence: tuple[str, ...]
    issued_at: int
    status: CertificateStatus
    revision: int
    withdrawn_at: int | None = None

    @property
    def event_id(self) -> str:
        """The id of this revision's event on the certificate topic."""
        return derive_id("certificate-event", self.certificate_id, self.revision)

    @property
    def occurred_at(self) -> int:
        """When this revision happened: the issue or the withdrawal."""
        return self.issued_at if self.withdrawn_at is None else self.withdrawn_at

    def to_dict(self) -> dict[str, Any]:
        """The certificate as a dict for fastavro and JSON."""
        return {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "certificate_id": self.certificate_id,
            "student_account": self.student_account,
            "rule_id": self.rule_id,
            "title": self.title,
            "title_zh": self.title_zh,
            "term": self.term,
            "category": self.category.value,
            "evidence": list(self.evidence),
            "issued_at": self.issued_at,
            "status": self.status.value,
            "revision": self.revision,
            "withdrawn_at": self.withdrawn_at,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Certificate:
        """Read a certificate from fastavro or JSON; poison if malformed."""
        with reading("Certificate"):
            return cls(
                certificate_id=to_text(data["certificate_id"]),
                student_account=to_text(data["student_account"]),
                rule_id=to_text(data["rule_id"]),
                title=to_text(data["title"]),
                title_zh=to_text(data["title_zh"]),
                term=to_text(data["term"]),
                category=Category(data["category"]),
                evidence=tuple(to_text(e) for e in data["evidence"]),
                issued_at=to_millis(data["issued_at"]),
                status=CertificateStatus(data["status"]),
                revision=to_int(data["revision"]),
                withdrawn_at=to_optional_millis(data.get("withdrawn_at")),
            )

    def to_open_badge_json(
        self, vocabulary: Vocabulary = DEFAULT_VOCABULARY
    ) -> dict[str, Any]:
        """The certificate as an unsigned Open Badges 3.0 credential."""
        badge: dict[str, Any] = {
            "@context": list(_OB_CONTEXT),
            "id": f"urn:uuid:{self.certificate_id}",
            "type": ["VerifiableCredential", "OpenBadgeCredential"],
            "issuer": _issuer(vocabulary),
            "validFrom": _iso(self.issued_at),
            "name": self.title,
            "credentialSubject": _subject(self, vocabulary),
            "evidence": [
                {"id": f"urn:uuid:{e}", "type": ["Evidence"]} for e in self.evidence
            ],
        }
        if self.withdrawn_at is not None:
            badge["validUntil"] = _iso(self.withdrawn_at)
        return badge


def certificate_id(rule_id: str, student_account: str, term: Term) -> str:
    """The deterministic id of a rule's certificate for a student and term."""
    return derive_id("certificate", rule_id, student_account, term.id)


def evaluate(
    archive: Archive, term: Term, rules: RuleBook, *, at: int
) -> list[Certificate]:
    """Issue and withdraw ``archive``'s certificates for ``term``.

    Returns the certificates whose status changed, already recorded in the
    archive. ``at`` stamps the change; pass the event time of the statement
    that triggered the evaluation, so a replay stamps it the same.
    """
    changes: list[Certificate] = []
    for rule in rules.rules:
        change = _evaluate_rule(archive, term, rule, at)
        if change is not None:
            archive.record(change)
            changes.append(change)
    return changes


def _evaluate_rule(
    archive: Archive, term: Term, rule: Rule, at: int
) -> Certificate | None:
    current = archive.certificate_for(rule.id, term.id)
    holds = rule.holds(archive.tally.tally(term.id, rule.category))

    if holds and (current is None or current.status is CertificateStatus.WITHDRAWN):
        return _issue(archive, term, rule, current, at)
    if not holds and current is not None and current.status is CertificateStatus.ISSUED:
        return _withdraw(archive, current, at)
    return None


def _issue(
    archive: Archive, term: Term, rule: Rule, current: Certificate | None, at: int
) -> Certificate:
    evidence = rule.evidence(archive.tally.evidence(term.id, rule.category))
    return Certificate(
        certificate_id=certificate_id(rule.id, archive.student_account, term),
        student_account=archive.student_account,
        rule_id=rule.id,
        title=rule.title,
        title_zh=rule.title_zh,
        term=term.id,
        category=rule.category,
        evidence=evidence,
        issued_at=at,
        status=CertificateStatus.ISSUED,
        revision=1 if current is None else current.revision + 1,
    )


def _withdraw(archive: Archive, current: Certificate, at: int) -> Certificate | None:
    if not any(archive.is_voided(e) for e in current.evidence):
        return None
    return replace(
        current,
        status=CertificateStatus.WITHDRAWN,
        revision=current.revision + 1,
        withdrawn_at=at,
    )


def _issuer(vocabulary: Vocabulary) -> dict[str, Any]:
    return {
        "id": f"{vocabulary.home_page}/issuer",
        "type": ["Profile"],
        "name": vocabulary.issuer_name,
    }


def _subject(certificate: Certificate, vocabulary: Vocabulary) -> dict[str, Any]:
    # The opaque account is already a pseudonym; hashing it again would only
    # make the badge harder to match against the archive.
    identity = {
        "type": "IdentityObject",
        "identityType": "accountId",
        "hashed": False,
        "identityHash": certificate.student_account,
    }
    achievement = {
        "id": f"{vocabulary.iri_base}/rules/{certificate.rule_id}",
        "type": ["Achievement"],
        "name": certificate.title,
        "description": certificate.title_zh,
        "criteria": {"narrative": f"{certificate.title} ({certificate.term})"},
    }
    return {
        "type": ["AchievementSubject"],
        "identifier": [identity],
        "achievement": achievement,
    }


def _iso(millis: int) -> str:
    moment = millis_to_datetime(millis)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
