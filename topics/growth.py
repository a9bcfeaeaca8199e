"""Topics of the lifelong growth archive.

Students appear only as opaque accounts. Venue and activity catalogues are
compacted: the latest record per id is the catalogue.

Keys. Everything the archive agent reads (scans, confirmations, awards, voids
and enrolment facts) is keyed by the student's account, so one student's
inputs share a partition and the agent's table state. A mentor confirming a
group writes one confirmation record per confirmed student, keyed by that
student. Guardianships are keyed by the guardian's account: only the archive
read model reads them.
"""

from __future__ import annotations

from topics.spec import DAY_MS, Cleanup, TopicSpec

VENUES = TopicSpec(
    name="growth.venues",
    key="venue id",
    schema="edustream.growth.Venue",
    writer="venue catalogue",
    readers=("growth",),
    doc="Venues with district, five-education categories, hours and capacity.",
    cleanup=Cleanup.COMPACT,
    retention_ms=-1,
)
ACTIVITIES = TopicSpec(
    name="growth.activities",
    key="activity id",
    schema="edustream.growth.Activity",
    writer="venue catalogue",
    readers=("growth",),
    doc="Courses and activities with venue, category, planned hours and mentor.",
    cleanup=Cleanup.COMPACT,
    retention_ms=-1,
)
SCANS = TopicSpec(
    name="growth.scans",
    key="student account",
    schema="edustream.growth.Scan",
    writer="venue devices",
    readers=("growth",),
    doc="Check-ins and check-outs scanned at venue devices.",
)
CONFIRMATIONS = TopicSpec(
    name="growth.mentor-confirmations",
    key="student account",
    schema="edustream.growth.MentorConfirmation",
    writer="mentors",
    readers=("growth",),
    doc="Mentor confirmations for project-based learning and study tours; one "
    "record per confirmed student, keyed by that student.",
)
AWARDS = TopicSpec(
    name="growth.certificate-awards",
    key="student account",
    schema="edustream.growth.CertificateAward",
    writer="organisers",
    readers=("growth",),
    doc="Certificates awarded by organisers.",
)
VOIDS = TopicSpec(
    name="growth.voids",
    key="student account",
    schema="edustream.growth.Void",
    writer="organisers",
    readers=("growth",),
    doc="Voiding statements that revoke an archive entry.",
)
ENROLMENTS = TopicSpec(
    name="growth.enrolments",
    key="student account",
    schema="edustream.growth.EnrolmentFact",
    writer="growth",
    readers=("growth",),
    doc="Internal: registry enrolment re-keyed by the student's opaque account.",
)
STATEMENTS = TopicSpec(
    name="growth.statements",
    key="student account",
    schema="edustream.growth.Statement",
    writer="growth",
    readers=("archive read model",),
    doc="xAPI-style statements: the entries of each student's archive.",
    retention_ms=-1,
)
GUARDIANSHIPS = TopicSpec(
    name="growth.guardianships",
    key="guardian account",
    schema="edustream.portal.Guardianship",
    writer="citizen portal",
    readers=("archive read model",),
    doc="Which student accounts a guardian's portal account may look up; the "
    "portal binds them after real-name checks.",
    retention_ms=-1,
)
CERTIFICATES = TopicSpec(
    name="growth.certificates",
    key="student account",
    schema="edustream.growth.Certificate",
    writer="growth",
    readers=("archive read model", "guardian notification"),
    doc="Certificates issued, and withdrawn when voids make them no longer hold.",
    retention_ms=-1,
)
DEAD_LETTERS = TopicSpec(
    name="growth.dead-letters",
    key="the input's key",
    schema="edustream.common.DeadLetter",
    writer="growth",
    readers=("operators",),
    doc="Growth inputs refused, with reason and original bytes.",
    retention_ms=30 * DAY_MS,
)

ALL: tuple[TopicSpec, ...] = (
    VENUES,
    ACTIVITIES,
    SCANS,
    CONFIRMATIONS,
    AWARDS,
    VOIDS,
    ENROLMENTS,
    GUARDIANSHIPS,
    STATEMENTS,
    CERTIFICATES,
    DEAD_LETTERS,
)
