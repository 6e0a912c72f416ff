"""The publisher logs a failed connection to Kafka by the error's type, never its text: a
library's error message can quote what it was sending, patient data included."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from journeys_api.publisher import Publisher
from journeys_runtime.logs import json_handler
from journeys_runtime.topics import Topics

CANARY = "Canary-Patient-7c1d Quillon"


class _RefusedError(Exception):
    pass


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the publisher's logger writes through the service's JSON handler."""
    out = io.StringIO()
    handler = json_handler("api")
    handler.setStream(out)  # type: ignore[attr-defined]
    logger = logging.getLogger("journeys_api.publisher")
    logger.handlers[:], propagate = [handler], logger.propagate
    logger.propagate = False
    yield out
    logger.handlers.clear()
    logger.propagate = propagate


def _publisher(
    monkeypatch: pytest.MonkeyPatch, failures: int, connected: asyncio.Event
) -> Publisher:
    """A publisher whose first `failures` connections fail with the canary in the message."""
    attempts = 0

    async def connect(self: Publisher) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise _RefusedError(f"broker refused a record for {CANARY}")
        connected.set()

    monkeypatch.setattr(Publisher, "_connect", connect)
    return Publisher("127.0.0.1:1", Topics(), 1, create_topics=False, timeout=1.0)


def _records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_failed_first_connection_is_logged_by_type_only(
    monkeypatch: pytest.MonkeyPatch, logged: io.StringIO
) -> None:
    publisher = _publisher(monkeypatch, failures=1, connected=asyncio.Event())

    await publisher.start()
    await publisher.stop()

    assert CANARY not in logged.getvalue()
    assert [r["error"] for r in _records(logged)] == ["_RefusedError"]


async def test_a_failed_reconnection_is_logged_by_type_only(
    monkeypatch: pytest.MonkeyPatch, logged: io.StringIO
) -> None:
    connected = asyncio.Event()
    publisher = _publisher(monkeypatch, failures=2, connected=connected)

    await publisher.start()
    async with asyncio.timeout(5):
        await connected.wait()
    await publisher.stop()

    assert CANARY not in logged.getvalue()
    assert [r["error"] for r in _records(logged)] == ["_RefusedError", "_RefusedError"]
