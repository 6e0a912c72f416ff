"""A patient's erasure read from Kafka: the runs' rows go with the offsets, and stay gone."""

from __future__ import annotations

from typing import Any

import psycopg

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
    running,
)  # fmt: skip
from tests.unit.projector.facts import Story, erased, full_run, start_run, waiting_run


def _records(topics: Topics, *stories: Story) -> list[Any]:
    return [r for s in stories for r in (
        command_record(topics, start_run(s), s.patient_id),
        *[event_record(topics, e) for e in s.events],
    )]  # fmt: skip


async def _rows(database_url: str, *stories: Story) -> dict[str, int]:
    ids = [s.run_id for s in stories]
    counts = {}
    for table in ("runs", "run_events"):
        found = await query(
            database_url, f"SELECT count(*) AS n FROM {table} WHERE run_id = ANY(%s)", ids
        )
        counts[table] = found[0]["n"]
    return counts


async def test_patient_erased_deletes_the_patients_runs_and_a_replay_does_not_bring_them_back(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    ended = full_run(Story(patient_id="patient-erased"))
    cancelled = waiting_run(Story(patient_id="patient-erased")).cancelled("wait")
    other = waiting_run(Story(patient_id="patient-kept"))
    erasure = erased(ended, cancelled, patient_key=key_of("patient-erased"))
    settings = projector_settings(kafka_bootstrap, read_models, topics)
    async with running(settings):
        await produce(kafka_bootstrap, _records(topics, ended, cancelled, other))
        await caught_up(read_models, kafka_bootstrap, topics)
        assert (await _rows(read_models, ended, cancelled))["runs"] == 2
        others = await _rows(read_models, other)
        await produce(kafka_bootstrap, [erased_record(topics, erasure)])
        await caught_up(read_models, kafka_bootstrap, topics)

    assert await _rows(read_models, ended, cancelled) == {"runs": 0, "run_events": 0}
    assert await _rows(read_models, other) == others == {"runs": 1, "run_events": len(other.events)}
    recorded = await query(
        read_models, "SELECT erasure_id, patient_key, runs_deleted FROM erased_patients"
    )
    assert recorded == [
        {"erasure_id": erasure.erasure_id, "patient_key": erasure.patient_key, "runs_deleted": 2}
    ]

    # Offsets of the commands topic lost: its StartRuns, which no erasure follows there, replay.
    async with await psycopg.AsyncConnection.connect(read_models, autocommit=True) as conn:
        await conn.execute("DELETE FROM projector_offsets WHERE topic = %s", [topics.commands])
    async with running(settings):
        await caught_up(read_models, kafka_bootstrap, topics)

    assert await _rows(read_models, ended, cancelled) == {"runs": 0, "run_events": 0}
    assert await _rows(read_models, other) == others
    assert len(await query(read_models, "SELECT * FROM erased_patients")) == 1
