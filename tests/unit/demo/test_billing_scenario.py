"""The billing demo's expected outputs agree with the flow's own steps.

The scenario counts what must come out from its stories alone. Here every
phase is played through the same code the demo runs, without a broker:
callbacks are verified by the channels' verifiers as the ingress does
(callbacks inside a phase in shuffled order, as concurrent posts arrive),
published records and verified callbacks go through the billing flow's
steps, remittance entries through the remittance step, and each output is
counted with the scenario's own kinds.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from avro_schemas import default_codec
from edustream.billing.issuing import ReceiptIssuer
from edustream.channels import alipay, unionpay, wechat
from edustream.channels.keys import VerifierConfig
from edustream.channels.normalised import NormalisedCallback
from edustream.demo.billing import scenario
from edustream.demo.scenario import HttpCallback, Publication, Scenario
from edustream.errors import PoisonError
from edustream.http.payments import callback_record, payment_event
from edustream.ids import find_ids
from edustream.settings import Settings, get_settings
from streams import billing as flow
from streams.runtime import Input, Outbox, settle
from tests.unit.streams.test_billing_agent import Numberer
from topics import billing

TODAY = date(2026, 9, 15)
PARTITIONS = get_settings().partitions
codec = default_codec()


@dataclass
class Played:
    """Everything the flow sent, and what the ingress and runtime refused."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    entries: list[tuple[bytes | None, bytes, int | None]] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    dead_letters: int = 0
    wrong_status: list[str] = field(default_factory=list)

    def count(self, scenario: Scenario) -> dict[str, int]:
        """Distinct ids per kind, as the demo's output counter finds them."""
        counted = {}
        for kind in scenario.kinds:
            found = self.records.get(kind.topic.name, [])
            counted[kind.name] = len({kind.id_of(r) for r in found if kind.where(r)})
        counted["billing.rejected_callbacks"] = len(self.rejected)
        counted["billing.dead_letters"] = self.dead_letters
        return counted


@pytest.fixture
def played() -> Iterator[Played]:
    """Capture the flow's sends; keep table writes in memory only."""
    result = Played()

    async def send(
        spec: Any,
        key: str | None,
        schema: str,
        record: dict[str, Any],
        *,
        partition: int | None = None,
    ) -> asyncio.Future[None]:
        value = codec.encode(schema, record)
        if spec is billing.REMITTANCE_ENTRIES:
            result.entries.append((key.encode() if key else None, value, partition))
        result.records.setdefault(spec.name, []).append(codec.decode(value)[1])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    tables = (flow.bills, flow.parked, flow.orders, flow.remittance)
    # Collecting units repeat across seeds; each play starts from empty
    # tables, as each demo run starts from an empty broker.
    for table in tables:
        table.data.clear()
    numberer = Numberer()
    with (
        mock.patch.object(flow, "_send", send),
        mock.patch.object(flow, "_numberer", return_value=numberer),
        mock.patch.object(
            flow, "_issuer", return_value=ReceiptIssuer(numberer=lambda: numberer)
        ),
        mock.patch.object(tables[0], "send_changelog"),
        mock.patch.object(tables[1], "send_changelog"),
        mock.patch.object(tables[2], "send_changelog"),
        mock.patch.object(tables[3], "send_changelog"),
    ):
        yield result


@pytest.mark.parametrize("seed", [2031, 2032])
async def test_expected_outputs_match_the_flow(
    seed: int, played: Played, tmp_path: Path
) -> None:
    """Played through verification and the flow's steps, every kind comes
    out exactly as often as the scenario expects, callbacks get the HTTP
    status it expects, and no output carries a secret."""
    settings = Settings(channel_keys_dir=tmp_path / "keys")
    built = scenario(settings, seed, 0.15, TODAY)
    verifier = VerifierConfig.load(settings.channel_keys_dir)
    shuffle = random.Random(seed)

    for phase in built.phases:
        for publication in phase.publications:
            await _publish(played, publication)
        callbacks = list(phase.callbacks)
        shuffle.shuffle(callbacks)
        for callback in callbacks:
            await _post(played, callback, verifier)

    assert played.count(built) == built.expected
    assert played.wrong_status == []
    _assert_no_secrets(played, built)


def test_scenario_size_and_keys(tmp_path: Path) -> None:
    """The default scenario stays within the demo's budget of callbacks and
    saves the keys the ingress loads."""
    settings = Settings(channel_keys_dir=tmp_path / "keys")
    built = scenario(settings, 7, 1.0, TODAY)

    callbacks = sum(len(phase.callbacks) for phase in built.phases)
    records = sum(len(phase.publications) for phase in built.phases)
    assert 1_500 <= callbacks <= 3_000
    assert callbacks + records <= 8_000
    assert VerifierConfig.load(settings.channel_keys_dir).wechat_mchid
    assert all(count > 0 for count in built.expected.values())
    assert built.phases[-1].wait_for == ("billing.remittances",)


async def _publish(played: Played, publication: Publication) -> None:
    """A record the demo produces straight to a topic, through its step."""
    key = publication.key
    item = Input(key, publication.value, publication.spec.name, _partition(key), 0, 0)
    if publication.spec is billing.DAY_CLOSES:
        await _run(played, flow.day_close_step, item)
    else:
        await _run(played, _order_step, item)


async def _order_step(item: Input) -> str:
    """An order input through the flow's step, its outbox settled as the
    runtime settles it: outputs first, then the state that records them."""
    outbox = Outbox()
    outcome = await flow.order_step(item, outbox)
    await settle([outbox])
    return outcome


async def _post(
    played: Played, callback: HttpCallback, verifier: VerifierConfig
) -> None:
    """Verify as the ingress does; publish the callback or record a refusal."""
    channel = callback.path.rsplit("/", 1)[-1]
    try:
        verified = _verify(channel, callback, verifier)
    except PoisonError:
        played.rejected.add(f"{channel}:{hashlib.sha256(callback.body).hexdigest()}")
        if callback.expect_status != 400:
            played.wrong_status.append(f"{channel} refused")
        return

    if callback.expect_status not in (200, 204):
        played.wrong_status.append(f"{channel} accepted")
    event = payment_event(verified)
    value = codec.encode(
        flow.CALLBACK_SCHEMA, callback_record(event, datetime.now(UTC))
    )
    key = event.order_id.encode()
    await _run(
        played,
        _order_step,
        Input(key, value, billing.CALLBACKS.name, _partition(key), 0, 0),
    )


def _verify(
    channel: str, callback: HttpCallback, verifier: VerifierConfig
) -> NormalisedCallback:
    content_type = callback.headers.get("Content-Type")
    if channel == "alipay":
        return alipay.verify_notification(callback.body, content_type, verifier)
    if channel == "unionpay":
        return unionpay.verify_notification(callback.body, content_type, verifier)
    return wechat.verify_notification(
        callback.headers, callback.body, verifier, now=datetime.now(UTC)
    )


async def _run(played: Played, step: Any, item: Input) -> None:
    """One input through a step, then every remittance entry it caused."""
    try:
        await step(item)
    except PoisonError:
        played.dead_letters += 1

    while played.entries:
        key, value, partition = played.entries.pop(0)
        where = _partition(key) if partition is None else partition
        entry = Input(key, value, billing.REMITTANCE_ENTRIES.name, where, 0, 0)
        await _run(played, flow.remittance_step, entry)


def _partition(key: bytes | None) -> int:
    """A stable partition per key, as a keyed producer picks one."""
    return 0 if key is None else zlib.crc32(key) % PARTITIONS


def _assert_no_secrets(played: Played, built: Scenario) -> None:
    text = repr(played.records)
    assert find_ids(text) == []
    assert not [s for s in built.secrets if len(s) > 2 and s in text]
