"""The lifelong growth archive: pure domain rules, no I/O.

Modules, in the order data flows through them:

- ``vocabulary``: the five educations, scan directions, activity kinds;
- ``events``: input records (venues, activities, scans, confirmations,
  awards, voids, enrolment facts);
- ``visits``: check-ins paired with check-outs into visits;
- ``statements``: xAPI-style statements built from visits, confirmations,
  awards and voids;
- ``archive``: one student's statements, with duplicates, conflicts and
  voids resolved;
- ``aggregates``: counts per student, school and district;
- ``certificates``: rules kept as data, issuing and withdrawing
  certificates;
- ``report``: a student's growth report as JSON and as a standalone page;
- ``terms``, ``identity``, ``rejections``, ``wire``: terms and local days,
  deterministic ids, refusal reasons, dict conversions.
"""
