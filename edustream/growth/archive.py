"""One student's lifelong archive of statements.

Duties:

- take statements in any order and say what each one was: NEW, a DUPLICATE
  (same id and content hash) or a CONFLICT (same id, other content, which
  changes nothing and goes to the dead-letter topic);
- apply voiding statements: the revoked statement is kept but drops out of
  queries and counts; a void that arrives before its target still takes
  effect when the target comes;
- keep the student's counts (``StudentTally``) in step, so certificate rules
  and reports never rescan the archive;
- keep the certificates issued from the archive, so each (rule, term) is
  issued at most once;
- round-trip through ``to_dict``/``from_dict`` as plain JSON for a Faust
  table. Counts are not stored: they are rebuilt from the statements.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from edustream.growth.aggregates import Contribution, StudentTally, contribution_of
from edustream.growth.certificates import Certificate
from edustream.growth.rejections import Reason, Rejection
from edustream.growth.statements import Statement, content_hash
from edustream.growth.terms import Term, term_of
from edustream.growth.wire import Fields, reading, to_text


class ApplyOutcome(StrEnum):
    """What applying a statement to an archive did."""

    NEW = "NEW"
    DUPLICATE = "DUPLICATE"
    CONFLICT = "CONFLICT"


class Archive:
    """The statements and certificates of one student account."""

    __slots__ = (
        "_by_rule",
        "_statements",
        "_tally",
        "_voided_by",
        "certificates",
        "student_account",
    )

    def __init__(self, student_account: str) -> None:
        self.student_account = student_account
        self.certificates: dict[str, Certificate] = {}
        # (rule id, term id) -> certificate, so evaluation never re-derives
        # a certificate id just to look one up.
        self._by_rule: dict[tuple[str, str], Certificate] = {}
        self._statements: dict[str, Statement] = {}
        self._voided_by: dict[str, str] = {}
        self._tally = StudentTally()

    def __len__(self) -> int:
        return len(self._statements)

    def apply(self, statement: Statement) -> ApplyOutcome:
        """Add ``statement`` unless its id is known; say which case it was."""
        if statement.archive_account != self.student_account:
            raise ValueError("the statement belongs to another student's archive")

        existing = self._statements.get(statement.id)
        if existing is not None:
            if content_hash(existing) == content_hash(statement):
                return ApplyOutcome.DUPLICATE
            return ApplyOutcome.CONFLICT

        self._statements[statement.id] = statement
        if statement.is_void:
            self._void(statement)
        elif statement.id not in self._voided_by:
            self._count(statement)
        return ApplyOutcome.NEW

    def get(self, statement_id: str) -> Statement | None:
        """The statement with this id, voided or not."""
        return self._statements.get(statement_id)

    def is_voided(self, statement_id: str) -> bool:
        """Whether a voiding statement has revoked this id."""
        return statement_id in self._voided_by

    def statements(self) -> list[Statement]:
        """The live entries, oldest first: no voided and no voiding ones."""
        live = [
            s
            for s in self._statements.values()
            if not s.is_void and s.id not in self._voided_by
        ]
        live.sort(key=lambda s: (s.timestamp, s.id))
        return live

    def all_statements(self) -> list[Statement]:
        """Every statement in the order it arrived, for audit and storage."""
        return list(self._statements.values())

    @property
    def tally(self) -> StudentTally:
        """The counts of the live entries by term and category."""
        return self._tally

    def contribution(self, statement_id: str) -> Contribution | None:
        """What a live statement adds to the counts, if anything."""
        return self._tally.contribution(statement_id)

    def affected_term(self, statement: Statement) -> Term | None:
        """The term whose counts ``statement`` changes, if any.

        A void changes the term of the statement it revokes, not its own.
        """
        if not statement.is_void:
            return term_of(statement.timestamp)

        target = self._statements.get(statement.object_id)
        if target is None or target.is_void:
            return None
        return term_of(target.timestamp)

    def record(self, certificate: Certificate) -> None:
        """Keep the latest state of a certificate issued from this archive."""
        self.certificates[certificate.certificate_id] = certificate
        self._by_rule[certificate.rule_id, certificate.term] = certificate

    def certificate_for(self, rule_id: str, term_id: str) -> Certificate | None:
        """The certificate a rule issued for a term, in its latest state."""
        return self._by_rule.get((rule_id, term_id))

    def to_dict(self) -> dict[str, Any]:
        """The archive as a dict for JSON (a Faust table value)."""
        return {
            "student_account": self.student_account,
            "statements": [s.to_dict() for s in self._statements.values()],
            "certificates": [c.to_dict() for c in self.certificates.values()],
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Archive:
        """Rebuild an archive, and its counts, from ``to_dict`` output."""
        with reading("Archive"):
            archive = cls(to_text(data["student_account"]))
            for statement in data["statements"]:
                archive.apply(Statement.from_dict(statement))
            for certificate in data["certificates"]:
                archive.record(Certificate.from_dict(certificate))
        return archive

    def _void(self, void: Statement) -> None:
        target_id = void.object_id
        target = self._statements.get(target_id)
        # xAPI forbids voiding a voiding statement, and the first void of a
        # statement is the one that counts.
        if target_id in self._voided_by or (target is not None and target.is_void):
            return

        self._voided_by[target_id] = void.id
        self._tally.remove(target_id)

    def _count(self, statement: Statement) -> None:
        contribution = contribution_of(statement)
        if contribution is not None:
            self._tally.add(contribution)


def refuse_conflict(statement: Statement) -> Rejection:
    """The refusal for a statement whose id already holds other content."""
    message = "statement id already holds different content"
    return Rejection(Reason.STATEMENT_CONFLICT, statement.id, message)
