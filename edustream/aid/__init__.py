"""Proactive student aid: offers pushed to guardians, with no application.

The bureau matches students against social-assistance records and offers aid
to a linked guardian, who accepts with an electronic signature or declines.
The student takes no part and nothing is published.

This package is the pure core of the flow, free of Kafka, Faust and Redis:

- ``inputs``: upstream events (registry changes, family links, assistance
  statuses, guardian answers);
- ``intake``: pseudonymises upstream events into ``records``;
- ``router``: first stage, per person, addresses ``facts`` to students;
- ``decider``: second stage, per student, makes offers and grants
  (``eligibility`` judges, ``outputs`` are what it publishes);
- ``policy``: the versioned aid policy file;
- ``pipeline``: both stages in memory.
"""

from edustream.aid.decider import (
    OfferSlot,
    StudentDecider,
    StudentMessage,
    StudentState,
    answer,
    replay,
    student_key,
    sweep,
)
from edustream.aid.facts import (
    LinkFact,
    PersonFact,
    RoutedFact,
    StatusFact,
    StudentFact,
    person_fact_from_dict,
    person_fact_to_dict,
    student_fact_from_dict,
    student_fact_to_dict,
)
from edustream.aid.inputs import (
    AssistanceStatus,
    FamilyLink,
    GuardianAnswer,
    RegistryChange,
)
from edustream.aid.intake import Intake
from edustream.aid.outputs import (
    AidOutput,
    Basis,
    Grant,
    Offer,
    OfferClosed,
    OfferWithdrawal,
    RejectedAnswer,
)
from edustream.aid.pipeline import AidInput, AidPipeline, Outputs, run_pipeline
from edustream.aid.policy import Policy, load_default_policy, load_policy
from edustream.aid.records import LinkRecord, RegistryRecord, StatusRecord
from edustream.aid.router import PersonState, person_key, route

__all__ = [
    "AidInput",
    "AidOutput",
    "AidPipeline",
    "AssistanceStatus",
    "Basis",
    "FamilyLink",
    "Grant",
    "GuardianAnswer",
    "Intake",
    "LinkFact",
    "LinkRecord",
    "Offer",
    "OfferClosed",
    "OfferSlot",
    "OfferWithdrawal",
    "Outputs",
    "PersonFact",
    "PersonState",
    "Policy",
    "RegistryChange",
    "RegistryRecord",
    "RejectedAnswer",
    "RoutedFact",
    "StatusFact",
    "StatusRecord",
    "StudentDecider",
    "StudentFact",
    "StudentMessage",
    "StudentState",
    "answer",
    "load_default_policy",
    "load_policy",
    "person_fact_from_dict",
    "person_fact_to_dict",
    "person_key",
    "replay",
    "route",
    "run_pipeline",
    "student_fact_from_dict",
    "student_fact_to_dict",
    "student_key",
    "sweep",
]
