"""Sealed runs: their events come from `journeys.events.v2` and their rows hold envelopes only.

A sealed run's events are on both topics (v2 sealed, v1 in clear with `sealedTwin`): the
projector takes the v2 copy, skips the v1 twin, and keeps nothing of the patient in clear.
An unsealed run is projected from v1 as before, now with its patient key.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from prometheus_client import REGISTRY

from journeys_contracts.envelope import header
from journeys_contracts.sealed import clear_type
from journeys_runtime.sealing import open_fields, open_value
from journeys_runtime.shredding import DataKey
from journeys_runtime.topics import Topics
from tests.integration.projector.helpers import (
    caught_up,
    command_record,
    erased_record,
    event_record,
    key_of,
    produce,
    projector_settings,
    query,
    run_row,
    running,
    sealed_command_record,
    sealed_event_record,
    twin_record,
)  # fmt: skip
from tests.integration.projector.test_dead_letters import _dead_letters
from tests.unit.projector.facts import CONTEXT, Story, erased, full_run, start_run, waiting_run

MARKER = "CANARY-sealed-4f1c"  # in the sealed patient's id and failure reason only
SKIPPED = "journeys_projector_records_skipped_total"


def _sealed_records(topics: Topics, story: Story, key: DataKey) -> list[Any]:
    """What the API and the executor write for a sealed run: StartRunSealed, then each event
    on v2 and its clear twin on v1 (same transaction, so either order may be read first)."""
    records: list[Any] = [sealed_command_record(topics, start_run(story), key)]
    for event in story.events:
        records += [twin_record(topics, event), sealed_event_record(topics, event, key)]
    return records


def _clear_records(topics: Topics, story: Story) -> list[Any]:
    return [command_record(topics, start_run(story), story.patient_id),
            *[event_record(topics, e) for e in story.events]]  # fmt: skip


def _skipped(reason: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == SKIPPED and sample.labels.get("reason") == reason
    )


async def _texts(database_url: str, run_id: uuid.UUID) -> str:
    """Every cell of the run's rows, as PostgreSQL prints them."""
    rows = await query(
        database_url,
        "SELECT r::text AS t FROM runs r WHERE run_id = %s "
        "UNION ALL SELECT e::text FROM run_events e WHERE run_id = %s",
        run_id, run_id,
    )  # fmt: skip
    return "\n".join(r["t"] for r in rows)


async def _timeline(database_url: str, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return await query(
        database_url,
        "SELECT seq, type, occurred_at, data FROM run_events WHERE run_id = %s ORDER BY seq",
        run_id,
    )


def _progress(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["status"], row["current_node_id"], row["wake_at"], row["last_seq"],
            row["created_at"], row["updated_at"])  # fmt: skip


async def test_a_sealed_runs_v2_events_project_to_a_sealed_row_and_the_v1_twins_are_skipped(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    key = DataKey.generate()
    sealed = waiting_run(Story(patient_id=f"patient-{MARKER}"))
    clear = waiting_run(Story(patient_id="patient-clear"))
    skipped_before = _skipped("sealed_twin")
    await produce(
        kafka_bootstrap, _sealed_records(topics, sealed, key) + _clear_records(topics, clear)
    )

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    row, reference = (
        await run_row(read_models, sealed.run_id),
        await run_row(read_models, clear.run_id),
    )
    assert row is not None
    assert reference is not None
    assert _progress(row) == _progress(reference), "status, node, seq as on the v1 path"
    patient = key_of(sealed.patient_id)
    assert (row["patient_id"], row["patient_key"], row["error"], row["error_sealed"]) == (
        None, patient, None, None,
    )  # fmt: skip
    assert open_value(key, patient, "patientId", row["patient_id_sealed"]) == sealed.patient_id
    assert open_value(key, patient, "patientContext", row["patient_context"]) == CONTEXT
    text = await _texts(read_models, sealed.run_id)
    for clear_value in (MARKER, CONTEXT["id"], "Hi!"):
        assert clear_value not in text

    timeline = await _timeline(read_models, sealed.run_id)
    assert len(timeline) == len(sealed.events), "each event once: the twins were skipped"
    assert _skipped("sealed_twin") - skipped_before == len(sealed.events)
    for stored, event in zip(timeline, sealed.events, strict=True):
        assert (stored["seq"], clear_type(stored["type"]), stored["occurred_at"]) == (
            event.seq, event.type, event.occurred_at,
        )  # fmt: skip
        assert stored["data"]["type"] == stored["type"]
        expected = event.model_dump(mode="json", by_alias=True, exclude={"sealed_twin"})
        assert open_fields(stored["data"], key) == expected, "the v2 JSON as received"
    reference_timeline = await _timeline(read_models, clear.run_id)
    assert [(e["seq"], e["type"]) for e in reference_timeline] == [
        (e["seq"], clear_type(e["type"])) for e in timeline
    ]


async def test_start_run_sealed_alone_makes_a_queued_sealed_row(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    key = DataKey.generate()
    story = Story(patient_id=f"patient-{MARKER}")
    await produce(kafka_bootstrap, [sealed_command_record(topics, start_run(story), key)])

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    row = await run_row(read_models, story.run_id)
    assert row is not None
    patient = key_of(story.patient_id)
    assert (row["status"], row["patient_id"], row["patient_key"], row["created_at"]) == (
        "queued", None, patient, story.requested_at,
    )  # fmt: skip
    assert open_value(key, patient, "patientId", row["patient_id_sealed"]) == story.patient_id
    assert open_value(key, patient, "patientContext", row["patient_context"]) == CONTEXT
    assert MARKER not in await _texts(read_models, story.run_id)
    assert "wrapped" not in await _texts(read_models, story.run_id), "no data key kept"


async def test_run_failed_v2_stores_the_reason_sealed(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    key = DataKey.generate()
    story = Story(patient_id="patient-failing").started().failed(f"boom {MARKER}")
    await produce(kafka_bootstrap, _sealed_records(topics, story, key))

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    row = await run_row(read_models, story.run_id)
    assert row is not None
    assert (row["status"], row["error"], row["last_seq"]) == ("failed", None, 2)
    patient = key_of(story.patient_id)
    assert open_value(key, patient, "reason", row["error_sealed"]) == f"boom {MARKER}"
    assert MARKER not in await _texts(read_models, story.run_id)


async def test_an_unsealed_run_projects_from_v1_as_before_with_its_patient_key(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    story = Story(patient_id="patient-unsealed").started().failed("boom")
    await produce(kafka_bootstrap, _clear_records(topics, story))

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    row = await run_row(read_models, story.run_id)
    assert row is not None
    assert (row["status"], row["patient_id"], row["patient_context"], row["error"]) == (
        "failed", "patient-unsealed", CONTEXT, "boom",
    )  # fmt: skip
    assert (row["patient_key"], row["patient_id_sealed"], row["error_sealed"]) == (
        key_of("patient-unsealed"), None, None,
    )  # fmt: skip
    timeline = await _timeline(read_models, story.run_id)
    assert [e["type"] for e in timeline] == [e.type for e in story.events]


async def test_patient_erased_on_both_topics_erases_the_sealed_run_once(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    key = DataKey.generate()
    story = full_run(Story(patient_id="patient-sealed-erased"))
    erasure = erased(story, patient_key=key_of(story.patient_id))
    settings = projector_settings(kafka_bootstrap, read_models, topics)
    async with running(settings):
        await produce(kafka_bootstrap, _sealed_records(topics, story, key))
        await caught_up(read_models, kafka_bootstrap, topics)
        assert await run_row(read_models, story.run_id) is not None
        await produce(kafka_bootstrap, [erased_record(topics, erasure, sealed=True),
                                        erased_record(topics, erasure)])  # fmt: skip
        await caught_up(read_models, kafka_bootstrap, topics)

    assert await run_row(read_models, story.run_id) is None
    assert await _timeline(read_models, story.run_id) == []
    recorded = await query(read_models, "SELECT erasure_id, runs_deleted FROM erased_patients")
    assert recorded == [{"erasure_id": erasure.erasure_id, "runs_deleted": 1}]


async def test_v2_records_of_a_newer_type_are_tolerated_and_poison_is_dead_lettered(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    key = DataKey.generate()
    story = waiting_run(Story(patient_id="patient-v2-next"))
    records = [sealed_event_record(topics, e, key) for e in story.events]
    topic, record_key, value, headers = records[-1]
    newer = {**json.loads(value or b""), "type": "journeys.run.escalated.v2",
             "seq": len(story.events) + 1}  # fmt: skip
    records.append((topic, record_key, json.dumps(newer).encode(), headers))
    records.append((topic, record_key, b"{not json", headers))
    await produce(kafka_bootstrap, records)

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    timeline = await _timeline(read_models, story.run_id)
    assert [e["seq"] for e in timeline] == list(range(1, len(story.events) + 2))
    assert timeline[-1]["type"] == "journeys.run.escalated.v2"
    row = await run_row(read_models, story.run_id)
    assert row is not None
    assert (row["status"], row["last_seq"]) == ("waiting_delay", len(story.events) + 1)
    (letter,) = await _dead_letters(kafka_bootstrap, topics, 1)
    assert letter.value == b"{not json"
    assert header(letter.headers, "dlq_source_topic") == topics.sealed_events


async def test_a_poison_start_run_sealed_is_dead_lettered_without_its_data_key(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    story = Story(patient_id="patient-poison")
    topic, record_key, value, headers = sealed_command_record(
        topics, start_run(story), DataKey.generate()
    )
    malformed = {**json.loads(value or b""), "requestedAt": "yesterday"}
    await produce(kafka_bootstrap, [(topic, record_key, json.dumps(malformed).encode(), headers)])

    async with running(projector_settings(kafka_bootstrap, read_models, topics)):
        await caught_up(read_models, kafka_bootstrap, topics)

    (letter,) = await _dead_letters(kafka_bootstrap, topics, 1)
    assert json.loads(letter.value) == {k: v for k, v in malformed.items() if k != "dataKey"}
    assert header(letter.headers, "dlq_stripped") == "dataKey"
    assert header(letter.headers, "dlq_source_topic") == topics.commands
