"""The proactive aid demo: a city's registry, families and statuses, then answers.

Duties:

- take a synthetic city (``build_city``) and give about one student in ten
  an assistance status that qualifies under the aid policy, held by the
  student or by the guardian the offer will go to, and a few students a
  status that does not qualify (a day student at a boarding-only stage, a
  status that ended before the term);
- give each aided family a story (``Fate``) and play it in phases: offers
  that are accepted, declined, left open, withdrawn by a revocation before
  any answer, left to expire, made only once a late enrolment arrives after
  the status, and accepted before a transfer to another school;
- add answers that must be refused (a second answer, an answer from another
  family's account, answers to unknown, withdrawn and expired offers) and
  malformed records on every upstream topic;
- count, from each story's own rules and the policy's amounts, what must
  come out.

Phases. Answers go straight to the decider while statuses pass through
intake and the router, so anything whose outcome depends on order is
spread over phases: the facts and the offers they make first; then the late
enrolments, the revocations and the answers; then what must find an offer
already withdrawn, expired or granted (answers to revoked offers, late
answers, transfers).

Clock. Offers nobody answers expire on the worker's wall clock, so the
scenario dates its facts from the clock when it is built: most a few days
back (their offers stay open for weeks), the expiring families' sixty days
back (their offers expired a month ago and close at the first sweep). The
city's ``today`` still dates the students' ages.

People. The registry topic is shared with the growth flow, whose demo may
publish the same seed's city. So that neither flow's counts depend on the
other's records, every ID number here is re-drawn with a birth day of the
29th or 30th, which ``build_city`` never draws.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from avro_schemas import default_codec
from edustream.aid import identity
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.policy import Policy, load_default_policy, load_policy
from edustream.aid.vocabulary import (
    Answer,
    Category,
    Change,
    Holder,
    Outcome,
    Relation,
    Stage,
)
from edustream.demo.city import Guardian, School, Student, build_city
from edustream.demo.scenario import Kind, Phase, Publication, Scenario
from edustream.ids import make_id
from edustream.pseudonym import PERSON_PREFIX, STUDENT_PREFIX, pseudonymise
from edustream.settings import Settings
from topics import aid
from topics.spec import TopicSpec

FLOW = "aid"
REGISTRY_SCHEMA = "edustream.aid.RegistryChange"
LINK_SCHEMA = "edustream.aid.FamilyLink"
SCHOOLS_AT_SCALE_1 = 40
STUDENTS_AT_SCALE_1 = 2000
AIDED_SHARE = 0.10
NOT_QUALIFYING_SHARE = 0.01
CORRECTED_SHARE = 0.02

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Most facts happened a few days ago; offers last 30 days by the policy.
RECENT = 3 * DAY
# The expiring families' facts: their offers expired about a month ago.
LONG_AGO = 60 * DAY

FACTS, ANSWERS, AFTERWARDS = range(3)
_PHASE_NAMES = ("aid facts", "aid answers", "aid afterwards")
_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edustream:demo:aid")


class Fate(StrEnum):
    """What happens to an aided family's offers."""

    ACCEPT = "accept"
    TRANSFER = "transfer after grant"
    DECLINE = "decline"
    OPEN = "left open"
    REVOKED = "revoked before any answer"
    EXPIRED = "expired unanswered"
    STATUS_FIRST = "status before enrolment"


# Fate -> weight among aided families.
FATES: dict[Fate, int] = {
    Fate.ACCEPT: 34,
    Fate.TRANSFER: 10,
    Fate.DECLINE: 12,
    Fate.OPEN: 14,
    Fate.REVOKED: 10,
    Fate.EXPIRED: 10,
    Fate.STATUS_FIRST: 10,
}
GRANTED = frozenset({Fate.ACCEPT, Fate.TRANSFER})
# Stages whose aid needs a boarder: the boarding subsidies.
BOARDING_STAGES = frozenset({Stage.PRIMARY, Stage.JUNIOR})


@dataclass(frozen=True)
class OfferPlan:
    """One offer the family must get: its id, kind and amount."""

    offer_id: str
    aid_kind: str
    amount_fen: int


@dataclass
class Family:
    """An aided student, their guardians and their story."""

    student: Student
    ref: str
    addressee: Guardian
    holder: Holder
    category: Category
    fate: Fate
    offers: list[OfferPlan]
    since: int
    second_answer: bool = False
    wrong_guardian: bool = False
    late_answer: bool = False

    @property
    def offered_at(self) -> int:
        """When the offers are made: the latest fact they rest on."""
        return self.since + 3 * MINUTE


@dataclass
class _Truth:
    """The outputs the stories lead to, counted as they are written."""

    rejected_answers: int = 0
    dead_letters: int = 0


@dataclass
class _Play:
    """Records per phase, in publishing order."""

    publications: dict[int, list[Publication]] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def publish(self, phase: int, publication: Publication) -> None:
        self.publications.setdefault(phase, []).append(publication)


def scenario(settings: Settings, seed: int, scale: float, today: date) -> Scenario:
    """The aid scenario for one synthetic city."""
    n_schools = max(4, round(SCHOOLS_AT_SCALE_1 * scale))
    n_students = max(60, round(STUDENTS_AT_SCALE_1 * scale))
    city = build_city(seed, n_schools, n_students, today)
    rng = random.Random(f"aid:{seed}")
    key = settings.pseudonym_key.encode()
    policy = _policy(settings)
    now = (time.time_ns() // 1_000_000 // MINUTE) * MINUTE

    students = _renumbered(city.students, rng)
    story = _Story(rng, key, policy, now, seed, city.schools)
    families = story.families(students)
    story.play(students, families)

    return Scenario(
        flow=FLOW,
        phases=[
            Phase(
                name=_PHASE_NAMES[index],
                publications=story.play_book.publications.get(index, []),
                wait_for=_WAIT_FOR[index],
            )
            for index in range(len(_PHASE_NAMES))
        ],
        kinds=_kinds({f.ref for f in families if f.fate is Fate.STATUS_FIRST}),
        expected=_expected(families, story.truth),
        secrets=story.play_book.secrets,
        facts=_facts(families),
    )


_WAIT_FOR: tuple[tuple[str, ...], ...] = (
    ("aid.offers.enrolled_first",),
    ("aid.offers", "aid.withdrawals", "aid.grants", "aid.closures"),
    ("aid.rejected_answers",),
)


def _policy(settings: Settings) -> Policy:
    """The policy the worker runs with, for the amounts and kinds of aid."""
    if settings.aid_policy_path is None:
        return load_default_policy()
    return load_policy(settings.aid_policy_path)


def _renumbered(students: list[Student], rng: random.Random) -> list[Student]:
    """Give every student and guardian a new ID number no other flow uses."""
    used: set[str] = set()

    def renumber(number: str) -> str:
        return _fresh_id(number, rng, used)

    return [
        replace(
            student,
            id_number=renumber(student.id_number),
            guardians=tuple(
                replace(guardian, id_number=renumber(guardian.id_number))
                for guardian in student.guardians
            ),
        )
        for student in students
    ]


def _fresh_id(number: str, rng: random.Random, used: set[str]) -> str:
    """Return an ID of the same area and birth year, born on the 29th or 30th."""
    area, year = number[:6], int(number[6:10])
    while True:
        month = rng.choice((1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12))
        birth = date(year, month, rng.choice((29, 30)))
        candidate = make_id(area, birth, rng.randint(0, 999))
        if candidate not in used:
            used.add(candidate)
            return candidate


class _Story:
    """Decides every family's story and writes the records that tell it."""

    def __init__(  # noqa: PLR0917 - one call site, all required
        self,
        rng: random.Random,
        key: bytes,
        policy: Policy,
        now: int,
        seed: int,
        schools: list[School],
    ) -> None:
        self.rng = rng
        self.key = key
        self.policy = policy
        self.now = now
        self.seed = seed
        self.schools = schools
        self.truth = _Truth()
        self.play_book = _Play()
        self._events = 0
        self._answer_count = 0

    # Deciding.

    def families(self, students: list[Student]) -> list[Family]:
        """Choose the aided students and give each a story."""
        candidates = [s for s in students if _can_be_aided(s)]
        wanted = max(len(Fate), round(len(students) * AIDED_SHARE))
        count = min(len(candidates), wanted)
        chosen = self.rng.sample(candidates, count)

        # Every story at least once, then by weight.
        fates = list(Fate) + self.rng.choices(
            list(FATES), weights=list(FATES.values()), k=count - len(Fate)
        )
        families = [
            self._family(index, student, fate)
            for index, (student, fate) in enumerate(zip(chosen, fates, strict=True))
        ]
        return [family for family in families if family.offers]

    def _family(self, index: int, student: Student, fate: Fate) -> Family:
        addressee = min(student.guardians, key=self._person_ref)
        # With two guardians the status is the addressee's own: a status of
        # the student could otherwise reach the decider while only the other
        # guardian's link had, and the offer would go there first and be
        # re-addressed, a withdrawal that depends on arrival order.
        holder = Holder.GUARDIAN
        if len(student.guardians) == 1 and self.rng.random() < 0.5:
            holder = Holder.STUDENT
        category = self.rng.choice(list(Category))
        ref = pseudonymise(self.key, student.id_number, STUDENT_PREFIX)
        since = self.now - (LONG_AGO if fate is Fate.EXPIRED else RECENT)

        return Family(
            student=student,
            ref=ref,
            addressee=addressee,
            holder=holder,
            category=category,
            fate=fate,
            offers=self._offers(ref, student, holder, category),
            since=since + index * MINUTE,
            second_answer=fate in {Fate.ACCEPT, Fate.DECLINE} and index % 4 == 0,
            wrong_guardian=fate is Fate.OPEN and index % 2 == 0,
            late_answer=fate is Fate.EXPIRED and index % 2 == 0,
        )

    def _offers(
        self, ref: str, student: Student, holder: Holder, category: Category
    ) -> list[OfferPlan]:
        """The offers the policy gives this student for this status."""
        stage = Stage(student.stage)
        offers = []
        for plan in self.policy.open_terms():
            for rule in plan.rules.matching(stage, category):
                if rule.boarding_required and not student.boarding:
                    continue
                if not rule.holder.accepts(holder):
                    continue
                offer_id = identity.offer_id(ref, plan.term.id, rule.aid_kind)
                offers.append(OfferPlan(offer_id, rule.aid_kind, rule.amount_fen))
        return offers

    def _person_ref(self, guardian: Guardian) -> str:
        return pseudonymise(self.key, guardian.id_number, PERSON_PREFIX)

    # Writing.

    def play(self, students: list[Student], families: list[Family]) -> None:
        """Write every record of the scenario into its phase."""
        aided = {family.student.id_number: family for family in families}
        others = [s for s in students if s.id_number not in aided]
        not_qualifying = self.rng.sample(
            others, min(len(others), round(len(students) * NOT_QUALIFYING_SHARE))
        )
        corrected = self.rng.sample(
            others, min(len(others), round(len(students) * CORRECTED_SHARE))
        )

        for family in families:
            self._status(FACTS, family)
        for index, student in enumerate(not_qualifying):
            self._not_qualifying_status(index, student)
        for student in students:
            self._links(student, aided.get(student.id_number))
        for student in students:
            found = aided.get(student.id_number)
            if found is None or found.fate is not Fate.STATUS_FIRST:
                self._registry(FACTS, student, Change.ENROL, self._since(found))
        for student in corrected:
            self._registry(FACTS, student, Change.CORRECTION, self.now - DAY)
        self._malformed_upstream()

        for family in families:
            self._answers(family, families)
        self._unknown_offers(families)
        self._malformed_answers(families)

    def _since(self, family: Family | None) -> int:
        return self.now - RECENT if family is None else family.since

    def _status(self, phase: int, family: Family, *, granted: bool = True) -> None:
        holder = family.student if family.holder is Holder.STUDENT else None
        person = holder.id_number if holder else family.addressee.id_number
        at = family.since + 2 * MINUTE if granted else family.since + 2 * HOUR
        status = AssistanceStatus(
            event_id=self._event_id(),
            occurred_at=at,
            person_id=person,
            category=family.category,
            granted=granted,
            valid_from=date(2026, 1, 1),
            valid_to=None,
            status_id=f"MZ-{self.seed}-{family.ref[4:16]}",
        )
        self._publish(phase, aid.ASSISTANCE_STATUS, person, status.to_dict())

    def _not_qualifying_status(self, index: int, student: Student) -> None:
        """A status that gives nothing: ended before the term, or no boarding."""
        valid_to: date | None = date(2026, 6, 30)
        if Stage(student.stage) in BOARDING_STAGES and not student.boarding:
            valid_to = None
        status = AssistanceStatus(
            event_id=self._event_id(),
            occurred_at=self.now - RECENT,
            person_id=student.id_number,
            category=Category.MINIMUM_LIVING,
            granted=True,
            valid_from=date(2025, 1, 1),
            valid_to=valid_to,
            status_id=f"MZ-{self.seed}-none-{index}",
        )
        self._publish(FACTS, aid.ASSISTANCE_STATUS, student.id_number, status.to_dict())

    def _links(self, student: Student, family: Family | None) -> None:
        since = self._since(family)
        for guardian, relation in zip(
            student.guardians, student.relations, strict=True
        ):
            link = FamilyLink(
                event_id=self._event_id(),
                occurred_at=since + MINUTE,
                guardian_id=guardian.id_number,
                guardian_account=guardian.account,
                student_id=student.id_number,
                relation=Relation(relation),
                linked=True,
            )
            self._publish(FACTS, aid.FAMILY_LINKS, guardian.id_number, link.to_dict())
            self.play_book.secrets.add(guardian.name)

    def _registry(
        self,
        phase: int,
        student: Student,
        change: Change,
        at: int,
        school: School | None = None,
    ) -> None:
        school = school or student.school
        record = RegistryChange(
            event_id=self._event_id(),
            occurred_at=at,
            change=change,
            student_id=student.id_number,
            student_name=student.name,
            school_id=school.school_id,
            school_name=school.name,
            district_code=school.district_code,
            stage=Stage(student.stage),
            grade=student.grade,
            boarding=student.boarding,
        )
        key = "G" + student.id_number
        self._publish(phase, aid.REGISTRY_CHANGES, key, record.to_dict())
        self.play_book.secrets.add(student.name)

    def _answers(self, family: Family, families: list[Family]) -> None:
        """Write the answers and later facts of one family's story."""
        fate = family.fate
        if fate in GRANTED or fate is Fate.DECLINE:
            choice = Answer.DECLINE if fate is Fate.DECLINE else Answer.ACCEPT
            for offer in family.offers:
                self._answer(ANSWERS, family, offer, choice)
            if family.second_answer:
                self._answer(ANSWERS, family, family.offers[0], Answer.ACCEPT)
                self.truth.rejected_answers += 1
        if fate is Fate.TRANSFER:
            self._registry(
                AFTERWARDS,
                family.student,
                Change.TRANSFER,
                family.since + 3 * HOUR,
                self._other_school(family.student),
            )
        if fate is Fate.STATUS_FIRST:
            self._registry(ANSWERS, family.student, Change.ENROL, family.since)
        if fate is Fate.OPEN and family.wrong_guardian:
            stranger = self._stranger(family, families)
            self._answer(ANSWERS, family, family.offers[0], Answer.ACCEPT, stranger)
            self.truth.rejected_answers += 1
        if fate is Fate.REVOKED:
            self._status(ANSWERS, family, granted=False)
            self._answer(AFTERWARDS, family, family.offers[0], Answer.ACCEPT)
            self.truth.rejected_answers += 1
        if fate is Fate.EXPIRED and family.late_answer:
            late = family.offered_at + 40 * DAY
            self._answer(AFTERWARDS, family, family.offers[0], Answer.ACCEPT, at=late)
            self.truth.rejected_answers += 1

    def _answer(  # noqa: PLR0917 - a story step names all of them
        self,
        phase: int,
        family: Family,
        offer: OfferPlan,
        choice: Answer,
        account: str | None = None,
        at: int | None = None,
    ) -> None:
        # A millisecond apart, so no two answers share a stamp.
        self._answer_count += 1
        answer = GuardianAnswer(
            event_id=self._event_id(),
            occurred_at=at or family.offered_at + HOUR + self._answer_count,
            offer_id=offer.offer_id,
            student_ref=family.ref,
            guardian_account=account or family.addressee.account,
            answer=choice,
            signature_ref=f"esign-{self._events}" if choice is Answer.ACCEPT else None,
        )
        self._publish(phase, aid.GUARDIAN_ANSWERS, family.ref, answer.to_dict())

    def _unknown_offers(self, families: list[Family]) -> None:
        """Answers naming offers nobody made, for real students."""
        for index, family in enumerate(families[:3]):
            unknown = OfferPlan(
                str(uuid.uuid5(_IDS, f"unknown:{self.seed}:{index}")), "NONE", 0
            )
            self._answer(ANSWERS, family, unknown, Answer.ACCEPT)
            self.truth.rejected_answers += 1

    def _malformed_answers(self, families: list[Family]) -> None:
        """An unsigned acceptance, and an answer under another student's key."""
        family = families[0]
        other = next(f for f in reversed(families) if f.ref != family.ref)
        unsigned = {
            "event_id": self._event_id(),
            "occurred_at": family.offered_at + HOUR,
            "offer_id": family.offers[0].offer_id,
            "student_ref": family.ref,
            "guardian_account": family.addressee.account,
            "answer": Answer.ACCEPT.value,
            "signature_ref": None,
        }
        self._publish(ANSWERS, aid.GUARDIAN_ANSWERS, family.ref, unsigned)

        answer = GuardianAnswer(
            event_id=self._event_id(),
            occurred_at=family.offered_at + HOUR,
            offer_id=family.offers[0].offer_id,
            student_ref=family.ref,
            guardian_account=family.addressee.account,
            answer=Answer.DECLINE,
            signature_ref=None,
        )
        self._publish(ANSWERS, aid.GUARDIAN_ANSWERS, other.ref, answer.to_dict())
        self.truth.rejected_answers += 2

    def _malformed_upstream(self) -> None:
        """Records no one can be matched by: they carry no valid ID number."""
        codec = default_codec()
        bad_id = "310104200001011234"  # wrong check character
        registry = RegistryChange(
            event_id=self._event_id(),
            occurred_at=self.now,
            change=Change.ENROL,
            student_id="no-such-number",
            student_name="*",
            school_id="SCH99999",
            school_name="nowhere",
            district_code="310104",
            stage=Stage.PRIMARY,
            grade=1,
            boarding=True,
        )
        link = FamilyLink(
            event_id=self._event_id(),
            occurred_at=self.now,
            guardian_id=bad_id,
            guardian_account="portal-malformed",
            student_id=bad_id,
            relation=Relation.MOTHER,
            linked=True,
        )
        registry_value = codec.encode(REGISTRY_SCHEMA, registry.to_dict())
        link_value = codec.encode(LINK_SCHEMA, link.to_dict())
        bad: list[tuple[TopicSpec, bytes]] = [
            (aid.REGISTRY_CHANGES, b"\x00\x00\x00\x00\x07not an avro record"),
            (aid.REGISTRY_CHANGES, registry_value),
            (aid.FAMILY_LINKS, link_value),
            # A family link where a status belongs: the wrong schema.
            (aid.ASSISTANCE_STATUS, link_value),
        ]
        for index, (spec, value) in enumerate(bad):
            malformed = Publication(spec, f"malformed-{index}".encode(), value)
            self.play_book.publish(FACTS, malformed)
        self.truth.dead_letters += len(bad)

    def _other_school(self, student: Student) -> School:
        same_stage = [
            school
            for school in self.schools
            if school.stage == student.stage and school != student.school
        ]
        return self.rng.choice(same_stage) if same_stage else student.school

    def _stranger(self, family: Family, families: list[Family]) -> str:
        """The account of a guardian of another family."""
        others = [f for f in families if f.ref != family.ref]
        return self.rng.choice(others).addressee.account if others else "portal-none"

    def _publish(
        self, phase: int, spec: TopicSpec, key: str, record: dict[str, Any]
    ) -> None:
        self.play_book.publish(phase, Publication.record(spec, key, record))
        for name in ("student_id", "guardian_id", "person_id"):
            if name in record:
                self.play_book.secrets.add(record[name])

    def _event_id(self) -> str:
        self._events += 1
        return str(uuid.uuid5(_IDS, f"{self.seed}:{self.now}:{self._events}"))


def _can_be_aided(student: Student) -> bool:
    """Whether some status could qualify the student under the policy."""
    return Stage(student.stage) not in BOARDING_STAGES or student.boarding


def _kinds(status_first: set[str]) -> list[Kind]:
    def offer_id(record: dict[str, Any]) -> str:
        return str(record["offer_id"])

    def outcome_is(outcome: Outcome) -> Callable[[dict[str, Any]], bool]:
        return lambda record: str(record["outcome"]) == outcome.value

    return [
        Kind("aid.offers", aid.OFFERS, offer_id),
        Kind(
            "aid.offers.enrolled_first",
            aid.OFFERS,
            offer_id,
            lambda r: r["student_ref"] not in status_first,
        ),
        Kind(
            "aid.offers.status_first",
            aid.OFFERS,
            offer_id,
            lambda r: r["student_ref"] in status_first,
        ),
        Kind("aid.withdrawals", aid.WITHDRAWALS, lambda r: str(r["event_id"])),
        Kind("aid.grants", aid.GRANTS, lambda r: str(r["grant_id"])),
        Kind("aid.students_aided", aid.GRANTS, lambda r: str(r["student_ref"])),
        Kind("aid.closures", aid.CLOSURES, offer_id),
        Kind("aid.declined", aid.CLOSURES, offer_id, outcome_is(Outcome.DECLINED)),
        Kind("aid.expired", aid.CLOSURES, offer_id, outcome_is(Outcome.EXPIRED)),
        Kind(
            "aid.rejected_answers",
            aid.DEAD_LETTERS,
            lambda r: str(r["event_id"]),
            lambda r: r["source_topic"] == aid.GUARDIAN_ANSWERS.name,
        ),
    ]


def _expected(families: list[Family], truth: _Truth) -> dict[str, int]:
    def offers(*fates: Fate) -> int:
        return sum(len(f.offers) for f in families if f.fate in fates)

    every = tuple(Fate)
    return {
        "aid.offers": offers(*every),
        "aid.offers.enrolled_first": offers(
            *(fate for fate in every if fate is not Fate.STATUS_FIRST)
        ),
        "aid.offers.status_first": offers(Fate.STATUS_FIRST),
        "aid.withdrawals": offers(Fate.REVOKED),
        "aid.grants": offers(*GRANTED),
        "aid.students_aided": sum(1 for f in families if f.fate in GRANTED),
        "aid.closures": offers(Fate.DECLINE, Fate.EXPIRED),
        "aid.declined": offers(Fate.DECLINE),
        "aid.expired": offers(Fate.EXPIRED),
        "aid.rejected_answers": truth.rejected_answers,
        "aid.dead_letters": truth.rejected_answers + truth.dead_letters,
    }


def _facts(families: list[Family]) -> dict[str, Any]:
    """Figures the read model must show, from the stories."""
    granted = [f for f in families if f.fate in GRANTED]
    return {
        "families": {
            fate.value: sum(1 for f in families if f.fate is fate) for fate in Fate
        },
        "students_aided": len(granted),
        "amount_fen": sum(o.amount_fen for f in granted for o in f.offers),
        "schools_with_offers": len({f.student.school.school_id for f in families}),
        "districts_with_offers": len(
            {f.student.school.district_code for f in families}
        ),
    }
