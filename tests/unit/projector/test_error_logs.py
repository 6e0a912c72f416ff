"""The projector logs a failing database by the error's type only: its text may quote a row."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition

from journeys_projector.batch import BatchProjector
from journeys_runtime.backoff import StoppedError

CANARY = "Canary-Patient-5f3e Zzyzx"


async def test_a_failing_database_is_logged_by_type_without_its_text(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stopping = asyncio.Event()
    attempts = 0

    async def connect(*_: Any, **__: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            stopping.set()
        raise psycopg.OperationalError(f"server closed the connection while writing {CANARY}")

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", connect)
    projector = BatchProjector(
        "postgresql://unused",
        None,
        {},
        "dlq",
        stopping,
        max_delay=0.01,  # type: ignore[arg-type]
        patient_key_secret="unused",
    )
    with caplog.at_level(logging.WARNING), pytest.raises(StoppedError):
        await projector.stored_offsets([TopicPartition("events", 0)])
    written = caplog.text + "".join(str(vars(r)) for r in caplog.records)  # extras included
    assert CANARY not in written
    retries = [
        r for r in caplog.records if r.getMessage() == "loading stored offsets failed, retrying"
    ]
    assert [r.error for r in retries] == ["OperationalError"] * 3  # type: ignore[attr-defined]
