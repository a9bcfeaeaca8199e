"""Topics of the proactive student aid flow.

Upstream topics carry ID numbers and names because the registry and civil
affairs own that data; the flow pseudonymises on the way in. Nothing the
flow writes names a person: offers carry the guardian's portal account, a
masked child name and a student pseudonym.

Keys. Upstream topics are keyed as their owners key them. Everything after
intake is keyed by a pseudonym: ``PERSON_FACTS`` by person reference for the
router, and ``STUDENT_FACTS``, ``GUARDIAN_ANSWERS`` and every output by
student reference. The decider reads ``STUDENT_FACTS``, ``GUARDIAN_ANSWERS``
and ``EXPIRY_TICKS`` together, so the three must keep one partition count:
one student's facts and answers then share a partition number and its state.
"""

from __future__ import annotations

from topics.spec import DAY_MS, TopicSpec

REGISTRY_CHANGES = TopicSpec(
    name="aid.registry-changes",
    key="student registry number (G and the ID number, or J and 18 digits)",
    schema="edustream.aid.RegistryChange",
    writer="student registry",
    readers=("aid", "growth"),
    doc="Enrolments, transfers, stage changes, graduations, withdrawals, corrections.",
    personal_data=True,
    retention_ms=30 * DAY_MS,
)
FAMILY_LINKS = TopicSpec(
    name="aid.family-links",
    key="guardian ID number",
    schema="edustream.aid.FamilyLink",
    writer="student registry",
    readers=("aid",),
    doc="Guardian to student links, linked or unlinked, with the relation.",
    personal_data=True,
    retention_ms=30 * DAY_MS,
)
ASSISTANCE_STATUS = TopicSpec(
    name="aid.assistance-status",
    key="person ID number",
    schema="edustream.aid.AssistanceStatus",
    writer="civil affairs",
    readers=("aid",),
    doc="Assistance categories granted or revoked, with validity dates.",
    personal_data=True,
    retention_ms=30 * DAY_MS,
)
GUARDIAN_ANSWERS = TopicSpec(
    name="aid.guardian-answers",
    key="student pseudonym (the offer's student_ref)",
    schema="edustream.aid.GuardianAnswer",
    writer="citizen portal",
    readers=("aid",),
    doc="A guardian's accept (with e-signature reference) or decline of an offer.",
)
PERSON_FACTS = TopicSpec(
    name="aid.person-facts",
    key="person pseudonym (psn_...)",
    schema="edustream.aid.PersonFact",
    writer="aid",
    readers=("aid",),
    doc="Internal: links and assistance statuses re-keyed by person pseudonym.",
)
STUDENT_FACTS = TopicSpec(
    name="aid.student-facts",
    key="student pseudonym (stu_...)",
    schema="edustream.aid.StudentFact",
    writer="aid",
    readers=("aid",),
    doc="Internal: everything that can change one student's eligibility, "
    "re-keyed by student pseudonym.",
)
# The sweep's clock, one tick per partition, read by the decider beside the
# facts: expiry is decided in the partition's own order, so an answer and the
# expiry of its offer can never both win. Values are JSON ({"now": millis});
# the topic carries no Avro because nothing outside the flow reads it.
EXPIRY_TICKS = TopicSpec(
    name="aid.expiry-ticks",
    key="none: each tick is sent to one partition",
    schema=None,
    writer="aid",
    readers=("aid",),
    doc="Internal: wall-clock ticks that make the decider close expired offers.",
    retention_ms=1 * DAY_MS,
)
OFFERS = TopicSpec(
    name="aid.offers",
    key="student pseudonym (stu_...)",
    schema="edustream.aid.Offer",
    writer="aid",
    readers=("guardian notification", "aid figures"),
    doc="Offers pushed to a guardian's portal account; a later offer with the "
    "same offer_id replaces the earlier one.",
    retention_ms=400 * DAY_MS,
)
WITHDRAWALS = TopicSpec(
    name="aid.offer-withdrawals",
    key="student pseudonym (stu_...)",
    schema="edustream.aid.OfferWithdrawal",
    writer="aid",
    readers=("guardian notification", "aid figures"),
    doc="Offers withdrawn because eligibility ended before an answer.",
    retention_ms=400 * DAY_MS,
)
CLOSURES = TopicSpec(
    name="aid.offer-closures",
    key="student pseudonym (stu_...)",
    schema="edustream.aid.OfferClosed",
    writer="aid",
    readers=("guardian notification", "aid figures"),
    doc="Offers closed by a decline or by expiry.",
    retention_ms=400 * DAY_MS,
)
GRANTS = TopicSpec(
    name="aid.grants",
    key="student pseudonym (stu_...)",
    schema="edustream.aid.Grant",
    writer="aid",
    readers=("disbursement", "aid figures"),
    doc="Accepted offers, one grant per offer, for disbursement.",
    retention_ms=400 * DAY_MS,
)
DEAD_LETTERS = TopicSpec(
    name="aid.dead-letters",
    key="the input's key",
    schema="edustream.common.DeadLetter",
    writer="aid",
    readers=("operators", "citizen portal"),
    doc="Aid inputs refused, with reason and original bytes; rejected guardian "
    "answers too, with the rejection as the reason.",
    retention_ms=30 * DAY_MS,
)

ALL: tuple[TopicSpec, ...] = (
    REGISTRY_CHANGES,
    FAMILY_LINKS,
    ASSISTANCE_STATUS,
    GUARDIAN_ANSWERS,
    PERSON_FACTS,
    STUDENT_FACTS,
    EXPIRY_TICKS,
    OFFERS,
    WITHDRAWALS,
    CLOSURES,
    GRANTS,
    DEAD_LETTERS,
)
