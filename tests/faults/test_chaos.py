"""`edustream chaos`: the demo city under every fault, checked by id.

Each test runs one fault in the harness's bounded form (a smaller city,
fewer kills, a shorter outage, a smaller burst) as a user runs it, and
reads the harness's JSON report. A row holds when nothing is missing,
nothing doubled, nothing unexpected, nothing leaked and no check failed;
the tests also hold the counts to what the fault must have done, so a
fault that quietly did nothing cannot pass. The full form of every fault
is the slow test at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edustream.demo.chaos import BOUNDED, FAULTS

pytestmark = pytest.mark.e2e

SEED = 20260917


def _run_chaos(tmp_path: Path, fault: str, *, bounded: bool) -> dict[str, Any]:
    report = tmp_path / "chaos.json"
    env = {
        **os.environ,
        "EDUSTREAM_LOG_FORMAT": "json",
        "EDUSTREAM_CHANNEL_KEYS_DIR": str(tmp_path / "keys"),
    }
    args = ["--fault", fault, "--seed", str(SEED), "--report", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "edustream", "chaos", *args]
        + (["--bounded"] if bounded else []),
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        check=False,
    )
    assert report.exists(), done.stdout + done.stderr[-3000:]
    rows = json.loads(report.read_text())
    assert len(rows) == 1
    row: dict[str, Any] = rows[0]
    assert done.returncode == (0 if row["ok"] else 1)
    return row


def _assert_clean(row: dict[str, Any]) -> None:
    assert row["problems"] == [], row
    assert (row["missing"], row["doubled"], row["unexpected"], row["leaks"]) == (
        0,
        0,
        0,
        0,
    ), row
    assert row["inputs"] > 3_000
    assert row["outputs"] > 900
    assert row["dead_letters"] > 0


@pytest.mark.timeout(600)
def test_worker_killed_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """kill -9 of the worker while it produces, restarted each time: every
    output once, receipt numbers consecutive, read models in step."""
    row = _run_chaos(tmp_path, "crash", bounded=True)

    _assert_clean(row)
    assert row["injected"] == BOUNDED.kills


@pytest.mark.timeout(600)
def test_worker_killed_mid_rebalance_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    """A second worker joins; the first dies as the group rebalances, and
    then the other way round."""
    row = _run_chaos(tmp_path, "rebalance", bounded=True)

    _assert_clean(row)
    assert row["injected"] == 2 * BOUNDED.rebalances


@pytest.mark.timeout(600)
def test_redis_outage_pauses_flows_and_the_backlog_drains(tmp_path: Path) -> None:
    """Redis hangs, then refuses connections, while payments arrive: the
    billing flow retries instead of skipping, and every receipt comes out
    afterwards with its number."""
    row = _run_chaos(tmp_path, "redis", bounded=True)

    _assert_clean(row)
    assert row["injected"] == 1
    assert any("retries: worker" in note for note in row["notes"])


@pytest.mark.timeout(600)
def test_poison_burst_lands_in_dead_letters_and_good_events_flow(
    tmp_path: Path,
) -> None:
    """Random bytes, truncated Avro, unknown schema ids and a 5 MB record,
    mixed into the city's inputs: each one dead-lettered with its reason,
    every good output still there once."""
    row = _run_chaos(tmp_path, "poison", bounded=True)

    _assert_clean(row)
    assert row["injected"] == BOUNDED.burst + 1
    assert row["dead_letters"] > BOUNDED.burst
    assert any("good outputs/s" in note for note in row["notes"])


@pytest.mark.timeout(600)
def test_inputs_replayed_from_earlier_offsets_change_nothing(tmp_path: Path) -> None:
    """The worker crashes and its group is rewound to earlier offsets: every
    input after them is delivered again, and no output appears twice."""
    row = _run_chaos(tmp_path, "redelivery", bounded=True)

    _assert_clean(row)
    assert row["injected"] > 1_000


@pytest.mark.timeout(600)
def test_inputs_sent_again_after_later_ones_change_nothing(tmp_path: Path) -> None:
    """Records of every input partition copied to its end: each input comes
    again, after inputs that first came later; a copy is dead-lettered
    exactly when its original was, and no output appears twice."""
    row = _run_chaos(tmp_path, "duplicates", bounded=True)

    _assert_clean(row)
    assert row["injected"] > 1_000


@pytest.mark.timeout(600)
def test_forged_replayed_and_foreign_requests_are_refused_and_recorded(
    tmp_path: Path,
) -> None:
    """Replayed and tampered payment callbacks, answers to another family's
    offer and queries for another family's archive: each refused and
    recorded, none with an effect."""
    row = _run_chaos(tmp_path, "security", bounded=True)

    _assert_clean(row)
    assert row["injected"] > 3 * BOUNDED.probes


@pytest.mark.timeout(600)
def test_no_id_number_or_name_reaches_an_output_topic_or_a_log(
    tmp_path: Path,
) -> None:
    """Refused records from the registry and civil-affairs topics, under
    their real keys: every output topic (values and keys) and every log
    line is scanned for ID numbers and names, and none is found."""
    row = _run_chaos(tmp_path, "privacy", bounded=True)

    _assert_clean(row)
    assert row["injected"] >= BOUNDED.probes


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_full_fault_loses_and_doubles_nothing(tmp_path: Path, fault: str) -> None:
    """The full form: the whole city, 20 kills, three rebalances, a 30 s
    outage, a burst of 10,000 malformed records, 20 probes of each kind."""
    row = _run_chaos(tmp_path, fault, bounded=False)

    _assert_clean(row)
