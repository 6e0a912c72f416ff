"""Erasing a patient's runs from the read models: gone at once, and never brought back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg

from journeys_contracts.commands import RecordDelivery, RetryMessage, SetConsent
from journeys_contracts.deliveries import DeliveryRequested
from journeys_projector import store
from journeys_projector.decode import ConsentFact, Fact
from journeys_projector.plan import ErasureRow, Plan, plan
from tests.integration.projector.helpers import query, snapshot
from tests.unit.projector.facts import SECRET, Story, full_run, start_run, waiting_run

OFFSETS = {("events", 0): 1}
KEY = "ab" * 32


async def _write(database_url: str, rows: Plan) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn,
        conn.transaction(),
    ):
        await store.write(conn, rows, OFFSETS)


def _erasing(
    *stories: Story, facts: Sequence[Fact] = (), erasure_id: uuid.UUID | None = None
) -> Plan:
    rows = plan(list(facts), SECRET)
    erasure = ErasureRow(erasure_id or uuid.uuid4(), KEY, stories[0].last_at + timedelta(seconds=1),
                         tuple(s.run_id for s in stories))  # fmt: skip
    rows.erasures[erasure.erasure_id] = erasure
    return rows


def _facts(*stories: Story) -> list[Fact]:
    return [f for s in stories for f in (start_run(s), *s.events)]


async def _rows_of(database_url: str, *stories: Story) -> list[dict[str, Any]]:
    ids = [s.run_id for s in stories]
    return [
        *await query(database_url, "SELECT run_id FROM runs WHERE run_id = ANY(%s)", ids),
        *await query(database_url, "SELECT run_id FROM run_events WHERE run_id = ANY(%s)", ids),
    ]


async def test_erasure_deletes_the_runs_and_their_timelines_and_records_the_erasure(
    read_models: str,
) -> None:
    first, second = full_run(Story()), waiting_run(Story()).cancelled("wait")
    other = full_run(Story(patient_id="patient-456"))
    await _write(read_models, plan(_facts(first, second, other), SECRET))
    others_before = await _rows_of(read_models, other)

    erasure_id = uuid.uuid4()
    await _write(read_models, _erasing(first, second, erasure_id=erasure_id))

    assert await _rows_of(read_models, first, second) == []
    assert await _rows_of(read_models, other) == others_before
    recorded = await query(read_models, "SELECT * FROM erased_patients")
    assert [(r["erasure_id"], r["patient_key"], r["runs_deleted"]) for r in recorded] == [
        (erasure_id, KEY, 2)
    ]


async def test_a_second_delivery_of_the_erasure_changes_nothing(read_models: str) -> None:
    story = full_run(Story())
    await _write(read_models, plan(_facts(story), SECRET))
    erasure = _erasing(story)
    await _write(read_models, erasure)
    once = await snapshot(read_models), await query(read_models, "SELECT * FROM erased_patients")
    await _write(read_models, erasure)
    assert (
        await snapshot(read_models),
        await query(read_models, "SELECT * FROM erased_patients"),
    ) == once


async def test_a_replay_of_an_erased_runs_facts_does_not_bring_them_back(read_models: str) -> None:
    story, other = full_run(Story()), full_run(Story(patient_id="patient-456"))
    await _write(read_models, plan(_facts(story), SECRET))
    await _write(read_models, _erasing(story))

    await _write(read_models, plan(_facts(story, other), SECRET))

    assert await _rows_of(read_models, story) == []
    assert len(await _rows_of(read_models, other)) == 1 + len(other.events)


async def test_an_erased_runs_facts_projected_in_the_erasures_batch_are_erased_too(
    read_models: str,
) -> None:
    story = waiting_run(Story()).cancelled("wait")
    await _write(read_models, _erasing(story, facts=_facts(story)))
    assert await _rows_of(read_models, story) == []
    assert (await query(read_models, "SELECT runs_deleted FROM erased_patients"))[0] == {
        "runs_deleted": 1
    }


async def test_consent_is_kept_per_channel_by_offset_and_erased_with_the_patient(
    read_models: str,
) -> None:
    story = full_run(Story())
    at = story.last_at

    def consent(granted: bool, offset: int, later: int = 0) -> ConsentFact:
        return ConsentFact(SetConsent(
            consent_id=uuid.uuid4(), patient_key=KEY, channels={"sms": granted}, source="sms",
            changed_at=at + timedelta(milliseconds=later),
        ), offset)  # fmt: skip

    sql = "SELECT granted, command_offset FROM patient_consent WHERE patient_key = %s"
    await _write(read_models, plan([consent(False, 20)], SECRET))
    # A batch of older commands committed late (a replica that lost the partition) changes
    # nothing, even with a later clock.
    await _write(read_models, plan([consent(True, 12, later=500)], SECRET))
    assert await query(read_models, sql, KEY) == [{"granted": False, "command_offset": 20}]

    await _write(read_models, _erasing(story))  # erased one second after `at`
    assert await query(read_models, sql, KEY) == []
    await _write(read_models, plan([consent(False, 20)], SECRET))  # a replay: not brought back
    assert await query(read_models, sql, KEY) == []
    await _write(read_models, plan([consent(False, 30, later=5000)], SECRET))  # the patient back
    assert await query(read_models, sql, KEY) == [{"granted": False, "command_offset": 30}]


async def test_a_retrys_outcome_is_its_attempts_first_report_and_goes_with_the_run(
    read_models: str,
) -> None:
    story = full_run(Story())
    message_id = uuid.uuid4()
    request = DeliveryRequested(
        message_id=message_id, run_id=story.run_id, journey_id=story.journey_id, node_id="n",
        patient_key=KEY, patient_id="p", channel="sms", message="hi", attempt=2,
        requested_at=story.last_at,
    )  # fmt: skip
    retry = RetryMessage(patient_key=KEY, request=request, requested_at=story.last_at)

    def report(attempt: int, delivered: bool) -> RecordDelivery:
        reason = None if delivered else "gateway answered 503"
        return RecordDelivery(run_id=story.run_id, message_id=message_id, channel="sms",
                              delivered=delivered, reason=reason, at=story.last_at,
                              attempt=attempt)  # fmt: skip

    sql = "SELECT attempt, delivered, reason FROM delivery_retries WHERE message_id = %s"
    # The first attempt's own report (before the retry) answers nothing.
    await _write(read_models, plan([*_facts(story), report(1, False)], SECRET))
    await _write(read_models, plan([retry], SECRET))
    assert await query(read_models, sql, message_id) == [
        {"attempt": 2, "delivered": None, "reason": None}
    ]
    await _write(read_models, plan([report(2, True)], SECRET))
    await _write(read_models, plan([report(2, False)], SECRET))  # a resend's: the first stays
    assert await query(read_models, sql, message_id) == [
        {"attempt": 2, "delivered": True, "reason": None}
    ]
    await _write(read_models, _erasing(story))
    assert await query(read_models, sql, message_id) == []
    await _write(read_models, plan([retry], SECRET))  # a replay brings nothing back
    assert await query(read_models, sql, message_id) == []
