"""Reconciliation: one channel's daily bill against our own payments.

Duties:

- ``OurPayment``: a payment or refund as our payment history records it;
- ``reconcile``: compare the two sides and report what differs. It is pure:
  no I/O, no clock, and the same inputs give the same report;
- ``ReconciliationReport``: the discrepancies, each list sorted by order
  number, as a JSON-ready dict and as a plain-text table.

Lines are matched on (order number, kind, refund number). Within one key,
records pair up first where the channel transaction number and the amount
agree, then where the amount agrees; what still pairs up differs in amount,
and what is left over is missing on one side. So a second payment the
channel settled for an order we hold once shows as missing here, not as a
mismatch.

The same record delivered twice (at-least-once) is one record: exact
duplicates on either side collapse before matching.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias, TypeVar

from edustream.channels.billfiles import KINDS, BillLine, Kind
from edustream.channels.money import fen_to_yuan

# (order number, kind, refund number): what both sides know a record by.
_Key: TypeAlias = tuple[str, Kind, str | None]
_T = TypeVar("_T")

_TABLE_COLUMNS = (
    "issue",
    "order id",
    "kind",
    "refund id",
    "channel txn id",
    "channel yuan",
    "our yuan",
)


@dataclass(frozen=True, slots=True)
class OurPayment:
    """A payment or refund as our payment history records it."""

    order_id: str
    channel_txn_id: str
    kind: Kind
    amount_fen: int
    refund_id: str | None = None

    def __post_init__(self) -> None:
        """Refuse a record that could never match a bill line."""
        if self.kind not in KINDS:
            raise ValueError("kind is payment or refund")
        if type(self.amount_fen) is not int or self.amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        if (self.kind == "refund") != bool(self.refund_id):
            raise ValueError("refunds, and only they, carry a refund_id")


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One record that the two sides do not agree on.

    ``channel_txn_id`` is the channel's number as the bill gives it, or ours
    when the bill has no such record. An amount is ``None`` on the side
    that lacks the record.
    """

    order_id: str
    kind: Kind
    refund_id: str | None
    channel_txn_id: str
    channel_amount_fen: int | None
    our_amount_fen: int | None

    def to_dict(self) -> dict[str, str | int | None]:
        """Return the discrepancy as JSON-ready values, money in fen."""
        return {
            "order_id": self.order_id,
            "kind": self.kind,
            "refund_id": self.refund_id,
            "channel_txn_id": self.channel_txn_id,
            "channel_amount_fen": self.channel_amount_fen,
            "our_amount_fen": self.our_amount_fen,
        }


@dataclass(frozen=True)
class ReconciliationReport:
    """What one channel's daily bill and our payments disagree on.

    - ``missing_here``: in the channel's bill, not in our records (a
      callback that never arrived, or a payment we failed to record);
    - ``missing_at_channel``: in our records, not in the bill (a payment we
      believe in that the channel did not settle that day);
    - ``amount_mismatches``: on both sides with different amounts;
    - ``matched``: how many records agreed.
    """

    matched: int
    missing_here: list[Discrepancy] = field(default_factory=list)
    missing_at_channel: list[Discrepancy] = field(default_factory=list)
    amount_mismatches: list[Discrepancy] = field(default_factory=list)

    @property
    def is_clean(self) -> bool:
        """Whether the two sides agree on every record."""
        return not (
            self.missing_here or self.missing_at_channel or self.amount_mismatches
        )

    def to_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready values, money in fen."""
        return {
            "matched": self.matched,
            "missing_here": [item.to_dict() for item in self.missing_here],
            "missing_at_channel": [item.to_dict() for item in self.missing_at_channel],
            "amount_mismatches": [item.to_dict() for item in self.amount_mismatches],
        }

    def render_table(self) -> str:
        """Return a plain-text summary line and one table row per discrepancy."""
        summary = (
            f"reconciliation: {self.matched} matched, "
            f"{len(self.missing_here)} missing here, "
            f"{len(self.missing_at_channel)} missing at channel, "
            f"{len(self.amount_mismatches)} amount mismatches"
        )
        rows = [
            _table_row(issue, item)
            for issue, items in self._sections()
            for item in items
        ]
        if not rows:
            return f"{summary}\nno discrepancies\n"

        return summary + "\n" + _aligned([list(_TABLE_COLUMNS), *rows])

    def _sections(self) -> tuple[tuple[str, list[Discrepancy]], ...]:
        """The three lists under the names the table shows."""
        return (
            ("missing_here", self.missing_here),
            ("missing_at_channel", self.missing_at_channel),
            ("amount_mismatch", self.amount_mismatches),
        )


def reconcile(
    channel_lines: list[BillLine], ours: list[OurPayment]
) -> ReconciliationReport:
    """Compare one channel's bill lines with our records of that channel.

    ``ours`` should hold only payments made through the channel that wrote
    ``channel_lines``; a payment through another channel would otherwise
    show as missing at this one. Raises ``ValueError`` if the bill lines
    come from more than one channel.
    """
    if len({line.channel for line in channel_lines}) > 1:
        raise ValueError("bill lines of one channel at a time")

    theirs = _grouped(_distinct(channel_lines), _bill_key)
    mine = _grouped(_distinct(ours), _our_key)

    matched = 0
    missing_here: list[Discrepancy] = []
    missing_at_channel: list[Discrepancy] = []
    mismatches: list[Discrepancy] = []
    for key in theirs.keys() | mine.keys():
        outcome = _pair_up(theirs.get(key, []), mine.get(key, []))
        matched += outcome.matched
        missing_here += [
            _discrepancy(key, line.channel_txn_id, line.amount_fen, None)
            for line in outcome.only_theirs
        ]
        missing_at_channel += [
            _discrepancy(key, ours.channel_txn_id, None, ours.amount_fen)
            for ours in outcome.only_mine
        ]
        mismatches += [
            _discrepancy(key, line.channel_txn_id, line.amount_fen, ours.amount_fen)
            for line, ours in outcome.differing
        ]

    return ReconciliationReport(
        matched=matched,
        missing_here=_sorted(missing_here),
        missing_at_channel=_sorted(missing_at_channel),
        amount_mismatches=_sorted(mismatches),
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How the records of one key paired up."""

    matched: int
    differing: list[tuple[BillLine, OurPayment]]
    only_theirs: list[BillLine]
    only_mine: list[OurPayment]


def _pair_up(theirs: list[BillLine], mine: list[OurPayment]) -> _Outcome:
    """Pair the records of one key, closest agreement first."""
    if len(theirs) == 1 and len(mine) == 1:
        return _pair_single(theirs[0], mine[0])

    theirs, mine = sorted(theirs, key=_bill_order), sorted(mine, key=_our_order)

    agreed = _take_pairs(theirs, mine, _same_record)
    agreed += _take_pairs(theirs, mine, _same_amount)
    differing = _take_pairs(theirs, mine, _same_txn)
    differing += _take_pairs(theirs, mine, _any_pair)

    return _Outcome(len(agreed), differing, theirs, mine)


def _pair_single(line: BillLine, ours: OurPayment) -> _Outcome:
    """The common case, one record a side, without the search."""
    if _same_amount(line, ours):
        return _Outcome(1, [], [], [])
    return _Outcome(0, [(line, ours)], [], [])


def _take_pairs(
    theirs: list[BillLine],
    mine: list[OurPayment],
    fits: Callable[[BillLine, OurPayment], bool],
) -> list[tuple[BillLine, OurPayment]]:
    """Remove and return the pairs ``fits`` accepts, in order."""
    pairs: list[tuple[BillLine, OurPayment]] = []
    for line in list(theirs):
        partner = next((ours for ours in mine if fits(line, ours)), None)
        if partner is not None:
            theirs.remove(line)
            mine.remove(partner)
            pairs.append((line, partner))
    return pairs


def _same_record(line: BillLine, ours: OurPayment) -> bool:
    return _same_txn(line, ours) and _same_amount(line, ours)


def _same_amount(line: BillLine, ours: OurPayment) -> bool:
    return line.amount_fen == ours.amount_fen


def _same_txn(line: BillLine, ours: OurPayment) -> bool:
    return line.channel_txn_id == ours.channel_txn_id


def _any_pair(line: BillLine, ours: OurPayment) -> bool:
    return True


def _distinct(records: Iterable[_T]) -> list[_T]:
    """The records with exact duplicates dropped, first seen kept."""
    return list(dict.fromkeys(records))


def _grouped(records: Sequence[_T], key: Callable[[_T], _Key]) -> dict[_Key, list[_T]]:
    """The records grouped by matching key."""
    groups: defaultdict[_Key, list[_T]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return groups


def _bill_key(line: BillLine) -> _Key:
    return (line.order_id, line.kind, line.refund_id)


def _our_key(ours: OurPayment) -> _Key:
    return (ours.order_id, ours.kind, ours.refund_id)


def _bill_order(line: BillLine) -> tuple[str, int, datetime]:
    return (line.channel_txn_id, line.amount_fen, line.occurred_at)


def _our_order(ours: OurPayment) -> tuple[str, int]:
    return (ours.channel_txn_id, ours.amount_fen)


def _discrepancy(
    key: _Key, channel_txn_id: str, channel_fen: int | None, our_fen: int | None
) -> Discrepancy:
    """Describe one record the two sides disagree on."""
    order_id, kind, refund_id = key
    return Discrepancy(
        order_id=order_id,
        kind=kind,
        refund_id=refund_id,
        channel_txn_id=channel_txn_id,
        channel_amount_fen=channel_fen,
        our_amount_fen=our_fen,
    )


def _sorted(items: list[Discrepancy]) -> list[Discrepancy]:
    """Order by order number, then kind, refund and channel numbers."""
    return sorted(
        items,
        key=lambda item: (
            item.order_id,
            item.kind,
            item.refund_id or "",
            item.channel_txn_id,
        ),
    )


def _table_row(issue: str, item: Discrepancy) -> list[str]:
    """One table row; absent values show as a dash."""
    return [
        issue,
        item.order_id,
        item.kind,
        item.refund_id or "-",
        item.channel_txn_id,
        _money(item.channel_amount_fen),
        _money(item.our_amount_fen),
    ]


def _money(fen: int | None) -> str:
    return "-" if fen is None else fen_to_yuan(fen)


def _aligned(rows: list[list[str]]) -> str:
    """Left-align text columns and right-align the two money columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    money = len(_TABLE_COLUMNS) - 2

    def cell(index: int, text: str) -> str:
        if index >= money:
            return text.rjust(widths[index])
        return text.ljust(widths[index])

    lines = ("  ".join(cell(i, text) for i, text in enumerate(row)) for row in rows)
    return "".join(line.rstrip() + "\n" for line in lines)
