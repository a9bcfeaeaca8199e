"""`edustream demo`: the whole city through every flow, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edustream.demo.runner import build_scenarios
from edustream.ids import find_ids
from edustream.settings import Settings

pytestmark = pytest.mark.e2e

SEED = 20260901
REQUIRED_KINDS = {
    "aid.offers",
    "aid.withdrawals",
    "aid.grants",
    "aid.rejected_answers",
    "billing.receipts",
    "billing.red_receipts",
    "billing.remittances",
    "billing.exceptions",
    "billing.rejected_callbacks",
    "growth.records",
    "growth.certificates",
    "growth.voided",
    "growth.rejected",
    "dead_letters",
}


def test_demo_matches_every_kind_and_leaks_nothing(tmp_path: Path) -> None:
    """Exit 0; expected == observed for every kind; no ID number or name in
    the dumps, the worker's log or the demo's own log."""
    report, dump = tmp_path / "r.json", tmp_path / "d"
    env = {
        **os.environ,
        "EDUSTREAM_LOG_FORMAT": "json",
        "EDUSTREAM_CHANNEL_KEYS_DIR": str(tmp_path / "keys"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edustream",
            "demo",
            "--report",
            str(report),
            "--dump",
            str(dump),
            "--seed",
            str(SEED),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    written = json.loads(report.read_text())
    outputs = written["outputs"]
    assert set(outputs) >= REQUIRED_KINDS
    for kind, row in outputs.items():
        assert row["expected"] == row["observed"], kind
    assert outputs["aid.offers"]["expected"] > 0
    assert outputs["billing.receipts"]["expected"] > 0
    assert outputs["growth.records"]["expected"] > 0

    texts = {p.name: p.read_text(encoding="utf-8") for p in dump.iterdir()}
    texts["demo stderr"] = done.stderr
    texts["demo stdout"] = done.stdout
    texts["worker log"] = Path(written["worker_log"]).read_text(encoding="utf-8")
    secrets = set().union(
        *(
            s.secrets
            for s in build_scenarios(
                Settings(channel_keys_dir=tmp_path / "keys2"), SEED, 1.0
            )
        )
    )
    assert len(secrets) > 100
    for where, text in texts.items():
        assert find_ids(text) == [], where
        leaked = [s for s in secrets if s in text]
        assert leaked == [], where
