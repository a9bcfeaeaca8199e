"""The growth archive demo: a city's venues, a fortnight of visits, then voids.

Duties:

- catalogue the city's venues (2,500 at scale 1) and activities (800), with
  their five-education categories and opening hours;
- enrol the growth students through the student registry, as the registry
  does (ID numbers and names on the aid flow's upstream topic, which the
  growth flow pseudonymises), and bind their guardians' portal accounts;
- play ten days of check-ins and check-outs in time order: ordinary
  students below every certificate rule, students who reach each rule,
  double taps at the gate, re-sent check-outs, forgotten check-outs (closed
  at the venue's closing time or after four hours), mentor confirmations and
  organisers' awards, one of them sent again unchanged and one reused for a
  different award (a statement conflict);
- add scans the flow must refuse: students never enrolled, unknown venues
  and activities, device clocks a day ahead, check-outs before any check-in,
  and two records that are not Avro at all;
- void some entries afterwards: some take a certificate's evidence below its
  rule, so the certificate is withdrawn;
- count, from the plan itself, what must come out: statements, certificates
  issued and withdrawn, voiding statements, refusals.

Phases: catalogue, registry and guardianships first (the flow waits for
each student's enrolment fact); then the visits, confirmations and awards;
then the voids, once every certificate they withdraw has been issued.

People. The students come from ``build_city(seed + 2, ...)``, so they are
not the aid scenario's students; they get no assistance status, so the aid
flow, which reads the same registry topic, offers them nothing.

Clock. Visits are dated in the ten days before the demo's ``today`` and
carry the time they reached the platform five seconds after the device time,
so the flow judges them by their own times. Awards are checked against the
broker's timestamp, which must be after ``today`` (the demo's fixed date).

``write_report_page`` writes one student's report page from the read model
once the run is over (``facts["report_account"]`` names the student).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from consumers.growth_archive import load_archive
from edustream.demo.city import DISTRICTS, Student, build_city
from edustream.demo.scenario import Kind, Phase, Publication, Scenario
from edustream.growth.certificates import Measure, Rule, load_rules
from edustream.growth.events import (
    Activity,
    CertificateAward,
    MentorConfirmation,
    Scan,
    Venue,
    Void,
)
from edustream.growth.identity import derive_id
from edustream.growth.rejections import Reason
from edustream.growth.report import build_report, render_html
from edustream.growth.terms import local_minute
from edustream.growth.visits import DEFAULT_POLICY, visit_id
from edustream.growth.vocabulary import CATEGORIES, ActivityKind, Category, Direction
from edustream.ids import registry_number
from edustream.pseudonym import pseudonymise
from edustream.settings import Settings
from infra.redis import async_client
from topics import aid, growth

FLOW = "growth"

VENUES_AT_SCALE_1 = 2500
ACTIVITIES_AT_SCALE_1 = 800
STUDENTS_AT_SCALE_1 = 400
SCHOOLS_AT_SCALE_1 = 20
# Students who reach each certificate rule, at scale 1.
ACHIEVERS_AT_SCALE_1 = 8
DAYS = 10

MINUTE = 60_000
HOUR = 60 * MINUTE
UPLOAD_DELAY_MS = 5_000

# Refusals planted at every scale.
NOT_ENROLLED_STUDENTS = 4
UNKNOWN_VENUE_SCANS = 5
UNKNOWN_ACTIVITY_SCANS = 3
FUTURE_SCANS = 5
EARLY_CHECK_OUTS = 5
MALFORMED_SCANS = 2
PLAIN_VOIDS = 3

_CLOSING_MINUTES = (18 * 60, 19 * 60, 20 * 60, 21 * 60)


def scenario(settings: Settings, seed: int, scale: float, today: date) -> Scenario:
    """The growth scenario for one synthetic city."""
    n_students = max(40, round(STUDENTS_AT_SCALE_1 * scale))
    n_schools = max(2, round(SCHOOLS_AT_SCALE_1 * scale))
    city = build_city(seed + 2, n_schools, n_students + NOT_ENROLLED_STUDENTS, today)
    rng = random.Random(f"growth:{seed}")
    key = settings.pseudonym_key.encode()

    catalogue = _Catalogue.build(
        rng,
        max(60, round(VENUES_AT_SCALE_1 * scale)),
        max(20, round(ACTIVITIES_AT_SCALE_1 * scale)),
        local_minute(today - timedelta(days=60), 9 * 60),
    )
    achievers = max(3, round(ACHIEVERS_AT_SCALE_1 * scale))
    story = _Story(rng, key, catalogue, today)
    story.play(city.students[:n_students], city.students[n_students:], achievers)

    return Scenario(
        flow=FLOW,
        phases=[
            Phase(
                "growth catalogue and registry",
                story.phase1,
                wait_for=("growth.enrolments",),
            ),
            Phase(
                "growth visits",
                story.phase2,
                wait_for=("growth.records", "growth.certificates", "growth.rejected"),
            ),
            Phase(
                "growth voids",
                story.phase3,
                wait_for=("growth.voided", "growth.withdrawn"),
            ),
        ],
        kinds=_kinds(set(story.accounts)),
        expected=story.truth.expected(),
        secrets=story.secrets,
        facts=story.facts(),
    )


async def write_report_page(
    redis_url: str, directory: Path, facts: dict[str, Any]
) -> Path:
    """Write the sample student's report page from the read model."""
    account = str(facts["report_account"])
    client = async_client(redis_url)
    try:
        archive = await load_archive(client, account)
    finally:
        await client.aclose()

    page = render_html(build_report(archive, generated_at=int(facts["report_time"])))
    path = directory / "growth-report.html"
    await asyncio.to_thread(_write, path, page)
    return path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _kinds(accounts: set[str]) -> list[Kind]:
    def statement_id(record: dict[str, Any]) -> str:
        return str(record["id"])

    def certificate_id(record: dict[str, Any]) -> str:
        return str(record["certificate_id"])

    def ours(record: dict[str, Any]) -> bool:
        return record["student_account"] in accounts

    voided = "http://adlnet.gov/expapi/verbs/voided"
    reasons = {reason.value for reason in Reason}
    return [
        Kind(
            "growth.enrolments",
            growth.ENROLMENTS,
            lambda r: str(r["event_id"]),
            ours,
        ),
        Kind(
            "growth.records",
            growth.STATEMENTS,
            statement_id,
            lambda r: r["verb_id"] != voided,
        ),
        Kind(
            "growth.voided",
            growth.STATEMENTS,
            statement_id,
            lambda r: r["verb_id"] == voided,
        ),
        Kind(
            "growth.certificates",
            growth.CERTIFICATES,
            certificate_id,
            lambda r: r["status"] == "ISSUED",
        ),
        Kind(
            "growth.withdrawn",
            growth.CERTIFICATES,
            certificate_id,
            lambda r: r["status"] == "WITHDRAWN",
        ),
        Kind(
            "growth.rejected",
            growth.DEAD_LETTERS,
            lambda r: str(r["event_id"]),
            lambda r: r["reason"] in reasons,
        ),
    ]


@dataclass(frozen=True)
class _Place:
    """A venue as the plan needs it."""

    venue_id: str
    category: Category
    closes_at: int | None


@dataclass(frozen=True)
class _Course:
    """An activity as the plan needs it."""

    activity_id: str
    venue_id: str
    category: Category
    mentor: str


@dataclass
class _Catalogue:
    """Venues and activities, and their catalogue records."""

    places: list[_Place]
    courses: list[_Course]
    records: list[Publication]

    @classmethod
    def build(
        cls, rng: random.Random, n_venues: int, n_activities: int, at: int
    ) -> _Catalogue:
        """A city's catalogue; every category has venues and activities."""
        places, courses, records = [], [], []
        for index in range(n_venues):
            venue = _venue(rng, index, at)
            places.append(_Place(venue.venue_id, venue.categories[0], venue.closes_at))
            records.append(
                Publication.record(growth.VENUES, venue.venue_id, venue.to_dict())
            )
        for index in range(n_activities):
            activity = _activity(rng, index, rng.choice(places), at)
            courses.append(
                _Course(
                    activity.activity_id,
                    activity.venue_id,
                    activity.category,
                    activity.mentor_account,
                )
            )
            records.append(
                Publication.record(
                    growth.ACTIVITIES, activity.activity_id, activity.to_dict()
                )
            )
        return cls(places, courses, records)

    @property
    def reserved(self) -> list[_Place]:
        """Venues nobody visits, where the early check-outs are refused."""
        return self.places[-EARLY_CHECK_OUTS:]

    def places_of(self, category: Category) -> list[_Place]:
        """Venues whose visits count under ``category`` (none reserved)."""
        return [p for p in self.places[:-EARLY_CHECK_OUTS] if p.category is category]

    def place(self, venue_id: str) -> _Place:
        """The venue with this id."""
        return next(p for p in self.places if p.venue_id == venue_id)

    def courses_of(self, category: Category) -> list[_Course]:
        """Activities of ``category``."""
        return [c for c in self.courses if c.category is category]


def _venue(rng: random.Random, index: int, at: int) -> Venue:
    # Every fifth venue is of each category in turn, so each has hundreds.
    primary = CATEGORIES[index % len(CATEGORIES)]
    extra = [c for c in CATEGORIES if c is not primary and rng.random() < 0.15]
    around_the_clock = rng.random() < 0.3
    district = rng.choice(list(DISTRICTS))
    return Venue(
        event_id=_uuid(rng),
        occurred_at=at,
        venue_id=f"VEN{index:05d}",
        name=f"{DISTRICTS[district]} {primary.label_en} centre {index + 1}",
        district_code=district,
        categories=(primary, *extra),
        opens_at=None if around_the_clock else rng.choice((8 * 60, 9 * 60)),
        closes_at=None if around_the_clock else rng.choice(_CLOSING_MINUTES),
        capacity=rng.randrange(50, 2000, 50),
    )


def _activity(rng: random.Random, index: int, place: _Place, at: int) -> Activity:
    category = CATEGORIES[index % len(CATEGORIES)]
    kind = rng.choice(list(ActivityKind))
    return Activity(
        event_id=_uuid(rng),
        occurred_at=at,
        activity_id=f"ACT{index:04d}",
        venue_id=place.venue_id,
        name=f"{category.label_en} {kind.value.lower().replace('_', ' ')} {index + 1}",
        category=category,
        planned_minutes=rng.choice((60, 90, 120, 180)),
        mentor_account=f"mentor-{index:04d}",
        kind=kind,
    )


@dataclass
class _Tally:
    """One student's counts in the term, the way the rules measure them."""

    visits: Counter[Category] = field(default_factory=Counter)
    venues: dict[Category, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    seconds: Counter[Category] = field(default_factory=Counter)
    # Statement id -> (category, venue or None, visits, seconds).
    entries: dict[str, tuple[Category, str | None, int, int]] = field(
        default_factory=dict
    )

    def add(
        self, statement_id: str, category: Category, venue: str | None, seconds: int
    ) -> None:
        """Count one entry: a visit when ``venue`` is given."""
        visits = 0 if venue is None else 1
        self.entries[statement_id] = (category, venue, visits, seconds)
        self._shift(category, venue, visits, seconds, 1)

    def remove(self, statement_id: str) -> None:
        """Take back an entry (its statement was voided)."""
        category, venue, visits, seconds = self.entries.pop(statement_id)
        self._shift(category, venue, visits, seconds, -1)

    def holds(self, rule: Rule) -> bool:
        """Whether ``rule`` holds on these counts."""
        category = rule.category
        if rule.measure is Measure.HOURS:
            return self.seconds[category] >= rule.threshold * 3600
        if rule.measure is Measure.VISITS:
            return self.visits[category] >= rule.threshold
        distinct = sum(1 for n in self.venues[category].values() if n > 0)
        return distinct >= rule.threshold

    def _shift(
        self,
        category: Category,
        venue: str | None,
        visits: int,
        seconds: int,
        sign: int,
    ) -> None:
        self.visits[category] += sign * visits
        self.seconds[category] += sign * seconds
        if venue is not None:
            self.venues[category][venue] += sign


@dataclass
class _Truth:
    """What must come out, counted while planning."""

    enrolments: int = 0
    records: int = 0
    voids: int = 0
    issued: int = 0
    withdrawn: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    malformed: int = 0

    def expected(self) -> dict[str, int]:
        """Expected count per output kind."""
        rejected = sum(self.refused.values())
        return {
            "growth.enrolments": self.enrolments,
            "growth.records": self.records,
            "growth.voided": self.voids,
            "growth.certificates": self.issued,
            "growth.withdrawn": self.withdrawn,
            "growth.rejected": rejected,
            "growth.dead_letters": rejected + self.malformed,
        }


@dataclass
class _Planned:
    """One visit in the plan."""

    account: str
    place: _Place
    course: _Course | None
    day: int
    start: int
    minutes: int
    forgot: bool = False

    @property
    def category(self) -> Category:
        """The category the visit counts under."""
        return self.place.category if self.course is None else self.course.category

    @property
    def venue_id(self) -> str:
        """Where the student scanned (an activity's venue for an activity)."""
        return self.place.venue_id

    @property
    def statement_id(self) -> str:
        """The id the flow gives the visit's statement."""
        return visit_id(self.account, self.venue_id, self.start)

    @property
    def trusted_seconds(self) -> int:
        """What the visit adds to hours: a checked-out plain visit only."""
        if self.course is not None or self.forgot:
            return 0
        return self.minutes * 60


class _Story:
    """The whole plan: records per phase and the truth they lead to."""

    def __init__(
        self, rng: random.Random, key: bytes, catalogue: _Catalogue, today: date
    ) -> None:
        self.rng = rng
        self.key = key
        self.catalogue = catalogue
        self.today = today
        self.rules = load_rules().rules
        self.truth = _Truth()
        self.secrets: set[str] = set()
        self.accounts: list[str] = []
        self.tallies: dict[str, _Tally] = defaultdict(_Tally)
        self.phase1: list[Publication] = list(catalogue.records)
        self.phase2: list[Publication] = []
        self.phase3: list[Publication] = []
        self._scans: list[tuple[int, int, Publication]] = []
        self._by_student: dict[str, list[_Planned]] = defaultdict(list)
        self._withdrawable: list[tuple[str, str]] = []
        self._steady: set[str] = set()
        self._award_to_void: tuple[str, str] = ("", "")
        self._showcase = ""

    def play(
        self, enrolled: list[Student], never_enrolled: list[Student], achievers: int
    ) -> None:
        """Plan every record of the scenario."""
        accounts = [self._enrol(student) for student in enrolled]
        self._plan_achievers(accounts, achievers)
        for account in accounts[5 * achievers :]:
            self._plan_ordinary(account)
        self._plan_showcase_extras()

        for planned in self._by_student.values():
            self._visits_to_scans(planned)
        self._refusals(accounts, never_enrolled)
        self._awards(accounts)
        self._count_certificates()
        self._voids(accounts)

        self._scans.sort(key=lambda entry: (entry[0], entry[1]))
        self.phase2[:0] = [publication for _, _, publication in self._scans]

    def facts(self) -> dict[str, Any]:
        """Figures for the summary, and the report page's student."""
        return {
            "venues": len(self.catalogue.places),
            "activities": len(self.catalogue.courses),
            "students": len(self.accounts),
            "scans": len(self._scans),
            "report_account": self._showcase,
            "report_time": local_minute(self.today, 12 * 60),
        }

    def _enrol(self, student: Student) -> str:
        account = pseudonymise(self.key, student.id_number)
        self.accounts.append(account)
        self.secrets.update((student.id_number, student.name))
        record = {
            "event_id": _uuid(self.rng),
            "occurred_at": local_minute(self.today - timedelta(days=30), 9 * 60),
            "change": "ENROL",
            "student_id": student.id_number,
            "student_name": student.name,
            "school_id": student.school.school_id,
            "school_name": student.school.name,
            "district_code": student.school.district_code,
            "stage": student.stage,
            "grade": student.grade,
            "boarding": student.boarding,
        }
        self.phase1.append(
            Publication.record(
                aid.REGISTRY_CHANGES, registry_number(student.id_number), record
            )
        )
        for guardian in student.guardians:
            self.phase1.append(self._guardianship(guardian.account, account))
        self.truth.enrolments += 1
        return account

    def _guardianship(self, guardian: str, account: str) -> Publication:
        record = {
            "event_id": _uuid(self.rng),
            "occurred_at": local_minute(self.today - timedelta(days=30), 10 * 60),
            "guardian_account": guardian,
            "student_account": account,
            "linked": True,
        }
        return Publication.record(growth.GUARDIANSHIPS, guardian, record)

    def _plan_achievers(self, accounts: list[str], per_rule: int) -> None:
        """``per_rule`` students reach each rule; some exactly, to withdraw."""
        groups = [accounts[i * per_rule : (i + 1) * per_rule] for i in range(5)]
        aesthetic, intellectual, physical, moral, labour = groups
        # Achievers always check out: their counts are what the rules see.
        self._steady.update(accounts[: 5 * per_rule])
        self._showcase = aesthetic[-1]
        for index, account in enumerate(aesthetic):
            self._distinct_venues(account, Category.AESTHETIC, 5 + (index % 2 == 1))
        for index, account in enumerate(intellectual):
            self._distinct_venues(account, Category.INTELLECTUAL, 5 + (index % 3 != 0))
        for account in physical:
            self._physical_visits(account, 12 + self.rng.randrange(3))
        for index, account in enumerate(moral):
            self._moral_hours(account, exact=index % 3 == 0)
        for index, account in enumerate(labour):
            self._labour_confirmations(account, exact=index % 3 == 0)

    def _distinct_venues(self, account: str, category: Category, count: int) -> None:
        places = self.rng.sample(self.catalogue.places_of(category), count)
        days = sorted(self.rng.sample(range(DAYS), count))
        for place, day in zip(places, days, strict=True):
            self._plan(account, place, None, day, self.rng.randrange(40, 120, 5))
        if count == 5:
            self._withdrawable.append((account, f"{category.value.lower()}-5-venues"))

    def _physical_visits(self, account: str, count: int) -> None:
        places = self.catalogue.places_of(Category.PHYSICAL)
        slots = [(day, half) for day in range(DAYS) for half in (0, 1)]
        for day, half in sorted(self.rng.sample(slots, count)):
            place = self.rng.choice(places)
            start_minute = 9 * 60 if half == 0 else 14 * 60
            self._plan(account, place, None, day, 60, start_minute=start_minute)

    def _moral_hours(self, account: str, *, exact: bool) -> None:
        places = self.rng.sample(self.catalogue.places_of(Category.MORAL), 5)
        days = sorted(self.rng.sample(range(DAYS), 5))
        for index, (place, day) in enumerate(zip(places, days, strict=True)):
            minutes = 120 if exact or index else 150
            self._plan(account, place, None, day, minutes, start_minute=10 * 60)
        if exact:
            self._withdrawable.append((account, "moral-10-hours"))

    def _labour_confirmations(self, account: str, *, exact: bool) -> None:
        courses = self.catalogue.courses_of(Category.LABOUR)
        days = sorted(self.rng.sample(range(DAYS), 5))
        for index, day in enumerate(days):
            minutes = 240 if exact or index else 300
            self._confirm([account], self.rng.choice(courses), day, minutes)
        if exact:
            self._withdrawable.append((account, "labour-20-hours"))

    def _plan_ordinary(self, account: str) -> None:
        """Two to six visits, at most three per category: below every rule."""
        per_category: Counter[Category] = Counter()
        days = sorted(self.rng.sample(range(DAYS), self.rng.randint(2, 6)))
        for day in days:
            category = self.rng.choice([c for c in CATEGORIES if per_category[c] < 3])
            per_category[category] += 1
            course = None
            if self.rng.random() < 0.3:
                course = self.rng.choice(self.catalogue.courses_of(category))
            place = self.rng.choice(self.catalogue.places_of(category))
            self._plan(account, place, course, day, self.rng.randrange(30, 150, 5))

    def _plan_showcase_extras(self) -> None:
        """The report page's student also has an entry in every category."""
        account = self._showcase
        used = {p.day for p in self._by_student[account]}
        free = [d for d in range(DAYS) if d not in used]
        for category, day in zip(
            (Category.MORAL, Category.INTELLECTUAL, Category.PHYSICAL),
            free,
            strict=False,
        ):
            place = self.rng.choice(self.catalogue.places_of(category))
            self._plan(account, place, None, day, 90, start_minute=15 * 60)
        labour = self.rng.choice(self.catalogue.courses_of(Category.LABOUR))
        self._confirm([account], labour, DAYS - 1, 120)

    def _plan(
        self,
        account: str,
        place: _Place,
        course: _Course | None,
        day: int,
        minutes: int,
        *,
        start_minute: int | None = None,
    ) -> None:
        if course is not None:
            place = self.catalogue.place(course.venue_id)
        if start_minute is None:
            start_minute = self.rng.randrange(9 * 60, 15 * 60, 5)
        start = local_minute(self._day(day), start_minute)
        planned = _Planned(account, place, course, day, start, minutes)
        self._by_student[account].append(planned)

    def _visits_to_scans(self, planned: list[_Planned]) -> None:
        """Scans of one student's visits; some forget to check out."""
        planned.sort(key=lambda p: p.start)
        for index, visit in enumerate(planned):
            # Only a visit with a later one can forget its check-out: the
            # later check-in shows the flow the first one's cap has passed.
            later = planned[index + 1].start if index + 1 < len(planned) else None
            forgets = visit.account not in self._steady and self.rng.random() < 0.1
            if later is not None and forgets:
                visit.forgot = later > self._cap(visit) + DEFAULT_POLICY.sweep_grace_ms
            self._count_visit(visit)
            self._scan(visit.account, visit, Direction.CHECK_IN, visit.start)
            if self.rng.random() < 0.05:
                tap = visit.start + self.rng.randrange(20, 90) * 1000
                self._scan(visit.account, visit, Direction.CHECK_IN, tap)
            if not visit.forgot:
                end = visit.start + visit.minutes * MINUTE
                out = self._scan(visit.account, visit, Direction.CHECK_OUT, end)
                if self.rng.random() < 0.03:
                    self._scans.append((end + UPLOAD_DELAY_MS, len(self._scans), out))

    def _cap(self, visit: _Planned) -> int:
        """When the flow closes the visit if nobody checks out."""
        cap = visit.start + DEFAULT_POLICY.max_visit_ms
        if visit.place.closes_at is not None:
            cap = min(cap, _closing_after(visit.start, visit.place.closes_at))
        return cap

    def _count_visit(self, visit: _Planned) -> None:
        self.truth.records += 1
        self.tallies[visit.account].add(
            visit.statement_id, visit.category, visit.venue_id, visit.trusted_seconds
        )

    def _scan(
        self,
        account: str,
        visit: _Planned | None,
        direction: Direction,
        at: int,
        *,
        venue_id: str | None = None,
        activity_id: str | None = None,
        received: int | None = None,
    ) -> Publication:
        if visit is not None:
            venue_id = visit.venue_id
            activity_id = None if visit.course is None else visit.course.activity_id
        assert venue_id is not None
        occurred_at = at + UPLOAD_DELAY_MS if received is None else received
        scan = Scan(
            event_id=_uuid(self.rng),
            occurred_at=occurred_at,
            device_id=f"gate-{venue_id}",
            student_account=account,
            venue_id=venue_id,
            activity_id=activity_id,
            direction=direction,
            scanned_at=at,
        )
        publication = Publication.record(growth.SCANS, account, scan.to_dict())
        self._scans.append((occurred_at, len(self._scans), publication))
        return publication

    def _confirm(
        self, accounts: list[str], course: _Course, day: int, minutes: int
    ) -> None:
        confirmed_at = local_minute(self._day(day), 18 * 60)
        confirmation = MentorConfirmation(
            event_id=_uuid(self.rng),
            occurred_at=confirmed_at + UPLOAD_DELAY_MS,
            confirmation_id=f"CONF-{_uuid(self.rng)[:8]}",
            mentor_account=course.mentor,
            activity_id=course.activity_id,
            group_id=f"GRP-{_uuid(self.rng)[:8]}",
            student_accounts=tuple(accounts),
            minutes=minutes,
            confirmed_at=confirmed_at,
        )
        for account in accounts:
            statement_id = derive_id(
                "confirmation-statement", confirmation.confirmation_id, account
            )
            self.truth.records += 1
            self.tallies[account].add(statement_id, course.category, None, minutes * 60)
            self.phase2.append(
                Publication.record(
                    growth.CONFIRMATIONS, account, confirmation.to_dict()
                )
            )

    def _refusals(self, accounts: list[str], never_enrolled: list[Student]) -> None:
        """Scans the flow must refuse, each with its reason."""
        place = self.catalogue.places[0]
        for student in never_enrolled:
            account = pseudonymise(self.key, student.id_number)
            for day in (0, 5):
                start = local_minute(self._day(day), 11 * 60)
                self._scan(
                    account, None, Direction.CHECK_IN, start, venue_id=place.venue_id
                )
                self.truth.refused[Reason.NOT_ENROLLED] += 1

        sample = self.rng.sample(accounts, UNKNOWN_VENUE_SCANS + UNKNOWN_ACTIVITY_SCANS)
        for index, account in enumerate(sample):
            at = local_minute(self._day(DAYS - 1), 20 * 60 + index)
            if index < UNKNOWN_VENUE_SCANS:
                self._scan(
                    account, None, Direction.CHECK_IN, at, venue_id=f"VEN-GONE-{index}"
                )
                self.truth.refused[Reason.UNKNOWN_VENUE] += 1
            else:
                self._scan(
                    account,
                    None,
                    Direction.CHECK_IN,
                    at,
                    venue_id=place.venue_id,
                    activity_id=f"ACT-GONE-{index}",
                )
                self.truth.refused[Reason.UNKNOWN_ACTIVITY] += 1

        for index, account in enumerate(self.rng.sample(accounts, FUTURE_SCANS)):
            received = local_minute(self._day(2), 12 * 60 + index)
            self._scan(
                account,
                None,
                Direction.CHECK_IN,
                received + 24 * HOUR,
                venue_id=place.venue_id,
                received=received,
            )
            self.truth.refused[Reason.FUTURE_TIME] += 1

        early = self.rng.sample(accounts, EARLY_CHECK_OUTS)
        for index, (account, reserved) in enumerate(
            zip(early, self.catalogue.reserved, strict=True)
        ):
            # A venue nobody visits: nothing open to check out of.
            at = local_minute(self._day(1), 8 * 60 + index)
            venue_id = reserved.venue_id
            self._scan(account, None, Direction.CHECK_OUT, at, venue_id=venue_id)
            self.truth.refused[Reason.CHECKOUT_BEFORE_CHECKIN] += 1

        for index in range(MALFORMED_SCANS):
            junk = b"not a scan record " + bytes([index])
            at = local_minute(self._day(3), 12 * 60 + index)
            self._scans.append(
                (
                    at,
                    len(self._scans),
                    Publication(growth.SCANS, accounts[index].encode(), junk),
                )
            )
            self.truth.malformed += 1

    def _awards(self, accounts: list[str]) -> None:
        """Awards; one sent twice unchanged, one id reused for another award."""
        winners = self.rng.sample(accounts, 6)
        for index, account in enumerate(winners):
            award = CertificateAward(
                event_id=_uuid(self.rng),
                occurred_at=local_minute(self._day(DAYS - 2), 16 * 60 + index),
                award_id=f"AWD-{_uuid(self.rng)[:8]}",
                student_account=account,
                title=f"City volunteer prize {index + 1}",
                category=Category.MORAL,
                issuer="City Youth League",
            )
            self.truth.records += 1
            self.tallies[account].add(
                derive_id("award-statement", award.award_id), Category.MORAL, None, 0
            )
            self.phase2.append(
                Publication.record(growth.AWARDS, account, award.to_dict())
            )
            if index == 0:
                again = {**award.to_dict(), "event_id": _uuid(self.rng)}
                self.phase2.append(Publication.record(growth.AWARDS, account, again))
            if index == 1:
                other = {
                    **award.to_dict(),
                    "event_id": _uuid(self.rng),
                    "title": "City volunteer prize (corrected)",
                }
                self.phase2.append(Publication.record(growth.AWARDS, account, other))
                self.truth.refused[Reason.STATEMENT_CONFLICT] += 1
                self._award_to_void = (
                    account,
                    derive_id("award-statement", award.award_id),
                )

    def _count_certificates(self) -> None:
        for tally in self.tallies.values():
            self.truth.issued += sum(1 for rule in self.rules if tally.holds(rule))

    def _voids(self, accounts: list[str]) -> None:
        """Void evidence under withdrawable certificates, and a few others."""
        rules = {rule.id: rule for rule in self.rules}
        for account, rule_id in self._withdrawable:
            tally = self.tallies[account]
            rule = rules[rule_id]
            target = next(
                sid
                for sid, (category, _, visits, seconds) in tally.entries.items()
                if category is rule.category
                and (seconds if rule.measure is Measure.HOURS else visits)
            )
            self._void(account, target)
            assert not tally.holds(rule), rule_id
            self.truth.withdrawn += 1

        ordinary = [
            a
            for a in accounts
            if a not in self._steady
            and not any(self.tallies[a].holds(r) for r in self.rules)
        ]
        for account in self.rng.sample(ordinary, PLAIN_VOIDS):
            target = next(iter(self.tallies[account].entries))
            self._void(account, target)
        self._void(*self._award_to_void)

    def _void(self, account: str, statement_id: str) -> None:
        void = Void(
            event_id=_uuid(self.rng),
            occurred_at=local_minute(self.today, 9 * 60),
            statement_id=statement_id,
            student_account=account,
            by="organiser-city-youth-league",
            reason="entered in error",
        )
        self.tallies[account].remove(statement_id)
        self.truth.voids += 1
        self.phase3.append(Publication.record(growth.VOIDS, account, void.to_dict()))

    def _day(self, day: int) -> date:
        return self.today - timedelta(days=DAYS - day)


def _closing_after(millis: int, closes_at: int) -> int:
    """The venue's first closing time after ``millis`` (it opens in the day)."""
    from edustream.growth.terms import local_date  # noqa: PLC0415

    closing = local_minute(local_date(millis), closes_at)
    return closing if closing > millis else closing + 24 * HOUR


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
