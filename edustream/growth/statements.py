"""xAPI-style statements: the entries of a student's lifelong archive.

Duties:

- the ``Statement`` record, flat for Avro, with ``to_xapi_json`` for the
  nested xAPI form (actor account, verb, object, result, context);
- build statements from visits, mentor confirmations, organisers' awards and
  voids, each with an id derived from its source, so a replay rebuilds the
  same id;
- refuse a confirmation or award whose activity is unknown, whose mentor is
  not the activity's, whose time is in the future or whose student is not
  enrolled;
- give each statement a canonical content hash (everything but ``stored``),
  by which an archive tells a duplicate from a conflict.

The actor is always an opaque account. A voiding statement's actor is the
organiser who voided; ``archive_account`` still names the student whose
archive holds it, so it is keyed to the same partition.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edustream.growth.events import (
    Activity,
    CertificateAward,
    EnrolmentFact,
    MentorConfirmation,
    Void,
)
from edustream.growth.identity import derive_id
from edustream.growth.rejections import Reason, Rejection
from edustream.growth.visits import Visit
from edustream.growth.vocabulary import ActivityKind, Category
from edustream.growth.wire import (
    Fields,
    millis_to_datetime,
    reading,
    to_bool,
    to_millis,
    to_optional_text,
    to_text,
)

# Confirmations and awards are stamped by people's devices; the same minute
# of drift the venue devices get.
FUTURE_TOLERANCE_MS = 60_000

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


class Verb(StrEnum):
    """The verbs of the archive; each value is the verb's IRI."""

    ATTENDED = "http://adlnet.gov/expapi/verbs/attended"
    COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
    # ADL defines no "earned"; this is the registered xAPI verb for badges.
    EARNED = "http://id.tincanapi.com/verb/earned"
    VOIDED = "http://adlnet.gov/expapi/verbs/voided"

    @property
    def display_en(self) -> str:
        """The English display word, e.g. ``attended``."""
        return self.name.lower()

    @property
    def display_zh(self) -> str:
        """The Chinese display word, e.g. 参加."""
        return _VERB_ZH[self]


_VERB_ZH = {
    Verb.ATTENDED: "参加",
    Verb.COMPLETED: "完成",
    Verb.EARNED: "获得",
    Verb.VOIDED: "作废",
}


class ObjectType(StrEnum):
    """What a statement's object is: an activity, or another statement."""

    ACTIVITY = "Activity"
    STATEMENT_REF = "StatementRef"


# Activity-type IRIs: registered xAPI/ActivityStreams ones where one fits.
_COURSE_TYPE = "http://adlnet.gov/expapi/activities/course"
PLACE_TYPE = "http://activitystrea.ms/schema/1.0/place"
_BADGE_TYPE = "http://activitystrea.ms/schema/1.0/badge"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The addresses and names a deployment mints statements under.

    That is the account home page, the base of its own IRIs and the issuer
    name on certificates. The defaults sit under a reserved example domain;
    a deployment passes its own portal's addresses.
    """

    home_page: str = "https://growth.edustream.example"
    iri_base: str = "https://growth.edustream.example/xapi"
    issuer_name: str = "City Education Bureau 市教育局"

    def activity_iri(self, activity_id: str) -> str:
        """The object id of a catalogued activity."""
        return f"{self.iri_base}/activities/{activity_id}"

    def venue_iri(self, venue_id: str) -> str:
        """The object id of a venue visited without an activity."""
        return f"{self.iri_base}/venues/{venue_id}"

    def award_iri(self, award_id: str) -> str:
        """The object id of an organiser's award."""
        return f"{self.iri_base}/awards/{award_id}"

    def activity_type(self, kind: ActivityKind | None) -> str:
        """The definition type of an activity of ``kind`` (``None``: a venue)."""
        if kind is None:
            return PLACE_TYPE
        if kind is ActivityKind.COURSE:
            return _COURSE_TYPE
        return f"{self.iri_base}/activity-types/{kind.value.lower()}"

    def extension(self, name: str) -> str:
        """The IRI of a context extension."""
        return f"{self.iri_base}/extensions/{name}"


DEFAULT_VOCABULARY = Vocabulary()


@dataclass(frozen=True, slots=True)
class Statement:
    """One archive entry, flattened from the xAPI shape."""

    id: str
    archive_account: str
    actor_account: str
    actor_home_page: str
    verb_id: str
    verb_display: str
    object_type: ObjectType
    object_id: str
    object_name: str | None
    object_definition_type: str | None
    result_duration: str | None
    result_completion: bool | None
    context_category: Category | None
    context_venue_id: str | None
    context_school_id: str | None
    context_district_code: str | None
    context_flagged_auto_closed: bool
    context_registration: str | None
    context_group_id: str | None
    context_issuer: str | None
    context_void_reason: str | None
    timestamp: int
    stored: int

    @property
    def is_void(self) -> bool:
        """Whether this statement voids another."""
        return self.verb_id == Verb.VOIDED.value

    def to_dict(self) -> dict[str, Any]:
        """The statement as a flat dict for fastavro and JSON.

        The statement id doubles as the event id and ``stored`` as the event
        time, so a replayed statement is the same event.
        """
        category = self.context_category
        return {
            "event_id": self.id,
            "occurred_at": self.stored,
            "id": self.id,
            "archive_account": self.archive_account,
            "actor_account": self.actor_account,
            "actor_home_page": self.actor_home_page,
            "verb_id": self.verb_id,
            "verb_display": self.verb_display,
            "object_type": self.object_type.value,
            "object_id": self.object_id,
            "object_name": self.object_name,
            "object_definition_type": self.object_definition_type,
            "result_duration": self.result_duration,
            "result_completion": self.result_completion,
            "context_category": None if category is None else category.value,
            "context_venue_id": self.context_venue_id,
            "context_school_id": self.context_school_id,
            "context_district_code": self.context_district_code,
            "context_flagged_auto_closed": self.context_flagged_auto_closed,
            "context_registration": self.context_registration,
            "context_group_id": self.context_group_id,
            "context_issuer": self.context_issuer,
            "context_void_reason": self.context_void_reason,
            "timestamp": self.timestamp,
            "stored": self.stored,
        }

    @classmethod
    def from_dict(cls, data: Fields) -> Statement:
        """Read a statement from fastavro or JSON; poison if malformed."""
        with reading("Statement"):
            category = data["context_category"]
            completion = data["result_completion"]
            return cls(
                id=to_text(data["id"]),
                archive_account=to_text(data["archive_account"]),
                actor_account=to_text(data["actor_account"]),
                actor_home_page=to_text(data["actor_home_page"]),
                verb_id=to_text(data["verb_id"]),
                verb_display=to_text(data["verb_display"]),
                object_type=ObjectType(data["object_type"]),
                object_id=to_text(data["object_id"]),
                object_name=to_optional_text(data["object_name"]),
                object_definition_type=to_optional_text(data["object_definition_type"]),
                result_duration=to_optional_text(data["result_duration"]),
                result_completion=None if completion is None else to_bool(completion),
                context_category=None if category is None else Category(category),
                context_venue_id=to_optional_text(data["context_venue_id"]),
                context_school_id=to_optional_text(data["context_school_id"]),
                context_district_code=to_optional_text(data["context_district_code"]),
                context_flagged_auto_closed=to_bool(
                    data["context_flagged_auto_closed"]
                ),
                context_registration=to_optional_text(data["context_registration"]),
                context_group_id=to_optional_text(data["context_group_id"]),
                context_issuer=to_optional_text(data["context_issuer"]),
                context_void_reason=to_optional_text(data["context_void_reason"]),
                timestamp=to_millis(data["timestamp"]),
                stored=to_millis(data["stored"]),
            )

    def to_xapi_json(
        self, vocabulary: Vocabulary = DEFAULT_VOCABULARY
    ) -> dict[str, Any]:
        """The statement in nested xAPI 1.0.3 form."""
        xapi: dict[str, Any] = {
            "id": self.id,
            "actor": _xapi_actor(self),
            "verb": _xapi_verb(self),
            "object": _xapi_object(self),
        }
        result = _xapi_result(self)
        if result:
            xapi["result"] = result
        context = _xapi_context(self, vocabulary)
        if context:
            xapi["context"] = context
        xapi["timestamp"] = _iso_instant(self.timestamp)
        xapi["stored"] = _iso_instant(self.stored)
        return xapi


def content_hash(statement: Statement) -> str:
    """SHA-256 over the canonical JSON of everything but ``stored``.

    Two deliveries of one statement differ only in when they were stored;
    any other difference under one id is a conflict.
    """
    fields = statement.to_dict()
    del fields["stored"], fields["occurred_at"]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def statement_for_visit(
    visit: Visit, *, now: int, vocabulary: Vocabulary = DEFAULT_VOCABULARY
) -> Statement:
    """The ``attended`` statement of a visit; its id is the visit id."""
    if visit.activity_id is None:
        object_id = vocabulary.venue_iri(visit.venue_id)
    else:
        object_id = vocabulary.activity_iri(visit.activity_id)

    return Statement(
        id=visit.visit_id,
        archive_account=visit.student_account,
        actor_account=visit.student_account,
        actor_home_page=vocabulary.home_page,
        verb_id=Verb.ATTENDED.value,
        verb_display=Verb.ATTENDED.display_en,
        object_type=ObjectType.ACTIVITY,
        object_id=object_id,
        object_name=visit.title,
        object_definition_type=vocabulary.activity_type(visit.activity_kind),
        result_duration=iso_duration(visit.duration_ms // 1000),
        result_completion=not visit.auto_closed,
        context_category=visit.category,
        context_venue_id=visit.venue_id,
        context_school_id=visit.school_id,
        context_district_code=visit.district_code,
        context_flagged_auto_closed=visit.auto_closed,
        context_registration=None,
        context_group_id=None,
        context_issuer=None,
        context_void_reason=None,
        timestamp=visit.started_at,
        stored=now,
    )


def statements_for_confirmation(
    confirmation: MentorConfirmation,
    activity: Activity | None,
    enrolments: Mapping[str, EnrolmentFact],
    *,
    now: int,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
) -> tuple[list[Statement], list[Rejection]]:
    """One ``completed`` statement per confirmed student, and the refusals.

    ``enrolments`` maps student accounts to their latest enrolment fact; a
    student missing from it is refused as not enrolled. A fault of the
    confirmation itself (unknown activity, wrong mentor, future time) refuses
    it once, for every student.
    """
    screened = _screen_confirmation(confirmation, activity, now)
    if isinstance(screened, Rejection):
        return [], [screened]

    statements: list[Statement] = []
    rejections: list[Rejection] = []
    for position, student in enumerate(confirmation.student_accounts, start=1):
        built = statement_for_confirmation(
            confirmation,
            student,
            activity,
            enrolments.get(student),
            now=now,
            vocabulary=vocabulary,
        )
        if isinstance(built, Rejection):
            message = f"student at position {position} is not enrolled"
            rejections.append(Rejection(built.reason, built.source_event_id, message))
        else:
            statements.append(built)
    return statements, rejections


def statement_for_confirmation(
    confirmation: MentorConfirmation,
    student_account: str,
    activity: Activity | None,
    enrolment: EnrolmentFact | None,
    *,
    now: int,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
) -> Statement | Rejection:
    """The ``completed`` statement of one student named in a confirmation."""
    if student_account not in confirmation.student_accounts:
        raise ValueError("the student is not named in the confirmation")

    screened = _screen_confirmation(confirmation, activity, now)
    if isinstance(screened, Rejection):
        return screened
    if enrolment is None or not enrolment.enrolled:
        message = "a confirmed student is not enrolled"
        return Rejection(Reason.NOT_ENROLLED, confirmation.event_id, message)

    return _confirmation_statement(
        confirmation,
        student_account,
        screened,
        enrolment,
        now=now,
        vocabulary=vocabulary,
    )


def _confirmation_statement(
    confirmation: MentorConfirmation,
    student_account: str,
    activity: Activity,
    enrolment: EnrolmentFact,
    *,
    now: int,
    vocabulary: Vocabulary,
) -> Statement:
    statement_id = derive_id(
        "confirmation-statement", confirmation.confirmation_id, student_account
    )
    registration = derive_id("group", activity.activity_id, confirmation.group_id)
    return Statement(
        id=statement_id,
        archive_account=student_account,
        actor_account=student_account,
        actor_home_page=vocabulary.home_page,
        verb_id=Verb.COMPLETED.value,
        verb_display=Verb.COMPLETED.display_en,
        object_type=ObjectType.ACTIVITY,
        object_id=vocabulary.activity_iri(activity.activity_id),
        object_name=activity.name,
        object_definition_type=vocabulary.activity_type(activity.kind),
        result_duration=iso_duration(confirmation.minutes * 60),
        result_completion=True,
        context_category=activity.category,
        context_venue_id=activity.venue_id,
        context_school_id=enrolment.school_id,
        context_district_code=enrolment.district_code,
        context_flagged_auto_closed=False,
        context_registration=registration,
        context_group_id=confirmation.group_id,
        context_issuer=None,
        context_void_reason=None,
        timestamp=confirmation.confirmed_at,
        stored=now,
    )


def _screen_confirmation(
    confirmation: MentorConfirmation, activity: Activity | None, now: int
) -> Activity | Rejection:
    event_id = confirmation.event_id
    if (
        activity is None
        or activity.deleted
        or activity.activity_id != confirmation.activity_id
    ):
        message = "confirmation names an activity not in the catalogue"
        return Rejection(Reason.UNKNOWN_ACTIVITY, event_id, message)
    if activity.mentor_account != confirmation.mentor_account:
        message = "confirming account is not the activity's mentor"
        return Rejection(Reason.NOT_MENTOR, event_id, message)
    if confirmation.confirmed_at > now + FUTURE_TOLERANCE_MS:
        message = "confirmation time is ahead of the clock"
        return Rejection(Reason.FUTURE_TIME, event_id, message)
    return activity


def statement_for_award(
    award: CertificateAward,
    enrolment: EnrolmentFact | None,
    *,
    now: int,
    vocabulary: Vocabulary = DEFAULT_VOCABULARY,
) -> Statement | Rejection:
    """The ``earned`` statement of an organiser's award, or its refusal."""
    if award.occurred_at > now + FUTURE_TOLERANCE_MS:
        message = "award time is ahead of the clock"
        return Rejection(Reason.FUTURE_TIME, award.event_id, message)
    if enrolment is None or not enrolment.enrolled:
        message = "awarded student is not enrolled"
        return Rejection(Reason.NOT_ENROLLED, award.event_id, message)

    return Statement(
        id=derive_id("award-statement", award.award_id),
        archive_account=award.student_account,
        actor_account=award.student_account,
        actor_home_page=vocabulary.home_page,
        verb_id=Verb.EARNED.value,
        verb_display=Verb.EARNED.display_en,
        object_type=ObjectType.ACTIVITY,
        object_id=vocabulary.award_iri(award.award_id),
        object_name=award.title,
        object_definition_type=_BADGE_TYPE,
        result_duration=None,
        result_completion=True,
        context_category=award.category,
        context_venue_id=None,
        context_school_id=enrolment.school_id,
        context_district_code=enrolment.district_code,
        context_flagged_auto_closed=False,
        context_registration=None,
        context_group_id=None,
        context_issuer=award.issuer,
        context_void_reason=None,
        timestamp=award.occurred_at,
        stored=now,
    )


def statement_for_void(
    void: Void, *, now: int, vocabulary: Vocabulary = DEFAULT_VOCABULARY
) -> Statement:
    """The ``voided`` statement: a StatementRef to the revoked entry."""
    return Statement(
        id=derive_id("void-statement", void.event_id),
        archive_account=void.student_account,
        actor_account=void.by,
        actor_home_page=vocabulary.home_page,
        verb_id=Verb.VOIDED.value,
        verb_display=Verb.VOIDED.display_en,
        object_type=ObjectType.STATEMENT_REF,
        object_id=void.statement_id,
        object_name=None,
        object_definition_type=None,
        result_duration=None,
        result_completion=None,
        context_category=None,
        context_venue_id=None,
        context_school_id=None,
        context_district_code=None,
        context_flagged_auto_closed=False,
        context_registration=None,
        context_group_id=None,
        context_issuer=None,
        context_void_reason=void.reason,
        timestamp=void.occurred_at,
        stored=now,
    )


def iso_duration(seconds: int) -> str:
    """Whole ``seconds`` as an ISO 8601 duration, e.g. ``PT1H30M``."""
    if seconds < 0:
        raise ValueError("a duration cannot be negative")

    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if secs or text == "PT":
        text += f"{secs}S"
    return text


def duration_seconds(text: str) -> int:
    """Read a duration written by ``iso_duration`` back into seconds."""
    match = _DURATION.match(text)
    if match is None or text == "PT":
        raise ValueError(f"not a duration this archive writes: {text!r}")
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def _iso_instant(millis: int) -> str:
    moment = millis_to_datetime(millis)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _xapi_actor(statement: Statement) -> dict[str, Any]:
    account = {"homePage": statement.actor_home_page, "name": statement.actor_account}
    return {"objectType": "Agent", "account": account}


def _xapi_verb(statement: Statement) -> dict[str, Any]:
    display = {"en-US": statement.verb_display}
    if statement.verb_id in _VERB_IRIS:
        display["zh-CN"] = Verb(statement.verb_id).display_zh
    return {"id": statement.verb_id, "display": display}


_VERB_IRIS = frozenset(v.value for v in Verb)


def _xapi_object(statement: Statement) -> dict[str, Any]:
    found: dict[str, Any] = {
        "objectType": statement.object_type.value,
        "id": statement.object_id,
    }
    if statement.object_type is ObjectType.STATEMENT_REF:
        return found

    definition: dict[str, Any] = {}
    if statement.object_name is not None:
        definition["name"] = {"zh-CN": statement.object_name}
    if statement.object_definition_type is not None:
        definition["type"] = statement.object_definition_type
    if definition:
        found["definition"] = definition
    return found


def _xapi_result(statement: Statement) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if statement.result_duration is not None:
        result["duration"] = statement.result_duration
    if statement.result_completion is not None:
        result["completion"] = statement.result_completion
    return result


def _xapi_context(statement: Statement, vocabulary: Vocabulary) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if statement.context_registration is not None:
        context["registration"] = statement.context_registration

    extensions = {
        vocabulary.extension(name): value
        for name, value in _extension_values(statement).items()
        if value is not None
    }
    if extensions:
        context["extensions"] = extensions
    return context


def _extension_values(statement: Statement) -> dict[str, Any]:
    category = statement.context_category
    values: dict[str, Any] = {
        "category": None if category is None else category.value,
        "venue-id": statement.context_venue_id,
        "school-id": statement.context_school_id,
        "district-code": statement.context_district_code,
        "group-id": statement.context_group_id,
        "issuer": statement.context_issuer,
        "void-reason": statement.context_void_reason,
    }
    if statement.is_void:
        values["archive-account"] = statement.archive_account
    else:
        values["flagged-auto-closed"] = statement.context_flagged_auto_closed
    return values
