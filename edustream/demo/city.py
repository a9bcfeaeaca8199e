"""A seeded synthetic city: districts, schools, students and guardians.

Everything is generated from one seed, so the same seed gives the same city
on every machine. ID numbers have real Shanghai area codes and correct check
characters so that validation code meets realistic input, but they are drawn
at random and stand for nobody. Names are drawn from common surname and
given-name characters.

The flows' scenario generators (``edustream.demo.aid`` and the others) build
their events on top of this city and compute the outputs they expect from
their own ground truth, never from what the pipeline produced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date

from edustream.ids import make_id

DISTRICTS: dict[str, str] = {
    "310101": "Huangpu",
    "310104": "Xuhui",
    "310105": "Changning",
    "310106": "Jing'an",
    "310107": "Putuo",
    "310109": "Hongkou",
    "310110": "Yangpu",
    "310112": "Minhang",
    "310113": "Baoshan",
    "310114": "Jiading",
    "310115": "Pudong",
    "310116": "Jinshan",
    "310117": "Songjiang",
    "310118": "Qingpu",
    "310120": "Fengxian",
    "310151": "Chongming",
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"

# Stage, the grades in it, and the age at grade 1.
STAGES: dict[str, tuple[int, int]] = {
    "PRIMARY": (5, 6),
    "JUNIOR": (3, 12),
    "SENIOR": (3, 15),
    "VOCATIONAL": (3, 15),
}


@dataclass(frozen=True)
class School:
    """A school with the codes fee collection needs."""

    school_id: str
    name: str
    district_code: str
    stage: str
    collecting_unit_code: str
    receipt_series: str


@dataclass(frozen=True)
class Guardian:
    """A parent or other guardian with a real-name portal account."""

    id_number: str
    name: str
    account: str


@dataclass(frozen=True)
class Student:
    """A student, the school they attend and their guardians."""

    id_number: str
    name: str
    school: School
    stage: str
    grade: int
    boarding: bool
    guardians: tuple[Guardian, ...]
    relations: tuple[str, ...]


@dataclass
class City:
    """The whole synthetic city."""

    seed: int
    schools: list[School] = field(default_factory=list)
    students: list[Student] = field(default_factory=list)


def build_city(seed: int, n_schools: int, n_students: int, today: date) -> City:
    """Generate a city with n_schools schools and n_students students."""
    rng = random.Random(seed)
    city = City(seed=seed)
    used_ids: set[str] = set()
    city.schools = [_school(rng, i, today) for i in range(n_schools)]
    for i in range(n_students):
        school = city.schools[i % n_schools]
        city.students.append(_student(rng, i, school, today, used_ids))
    return city


def _school(rng: random.Random, index: int, today: date) -> School:
    district = rng.choice(list(DISTRICTS))
    stage = rng.choice(list(STAGES))
    return School(
        school_id=f"SCH{index:05d}",
        name=f"{DISTRICTS[district]} School No. {index + 1}",
        district_code=district,
        stage=stage,
        collecting_unit_code=f"{district}{index:04d}",
        # Region (2), category (2: school fees), year (4).
        receipt_series=f"31{21}{today.year:04d}",
    )


def _student(
    rng: random.Random, index: int, school: School, today: date, used: set[str]
) -> Student:
    grades, first_age = STAGES[school.stage]
    grade = rng.randint(1, grades)
    birth_year = today.year - first_age - grade
    id_number = _unique_id(rng, school.district_code, birth_year, used)
    surname = rng.choice(SURNAMES)
    guardians = tuple(
        _guardian(rng, school.district_code, today, surname if g == 0 else None, used)
        for g in range(rng.choice((1, 2, 2)))
    )
    relations = ("FATHER", "MOTHER")[: len(guardians)]
    return Student(
        id_number=id_number,
        name=surname + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
        school=school,
        stage=school.stage,
        grade=grade,
        boarding=rng.random() < 0.3,
        guardians=guardians,
        relations=relations,
    )


def _guardian(
    rng: random.Random, district: str, today: date, surname: str | None, used: set[str]
) -> Guardian:
    id_number = _unique_id(rng, district, today.year - rng.randint(28, 50), used)
    name = (surname or rng.choice(SURNAMES)) + "".join(rng.choices(GIVEN, k=2))
    return Guardian(
        id_number=id_number, name=name, account=f"portal-{rng.getrandbits(48):012x}"
    )


def _unique_id(rng: random.Random, district: str, year: int, used: set[str]) -> str:
    while True:
        birth = date(year, rng.randint(1, 12), rng.randint(1, 28))
        candidate = make_id(district, birth, rng.randint(0, 999))
        if candidate not in used:
            used.add(candidate)
            return candidate
