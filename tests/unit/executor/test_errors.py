"""The executor logs errors by type only: an exception's text may carry patient data."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from journeys_executor.errors import log_unhandled, scrub_exceptions
from journeys_runtime.logs import json_handler

CANARY = "Canary-Patient-5f3e Zzyzx"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A JSON handler like the service's, on a logger of its own, scrubbed like the root."""
    out = io.StringIO()
    handler = json_handler("executor")
    handler.setStream(out)  # type: ignore[attr-defined]
    logger = logging.getLogger("journeys_executor.test_errors")
    logger.handlers[:] = [handler]
    logger.propagate = False
    scrub_exceptions(logger)
    yield out
    logger.handlers.clear()


def test_a_logged_exception_leaves_its_type_and_not_its_text(captured: io.StringIO) -> None:
    logger = logging.getLogger("journeys_executor.test_errors")
    try:
        raise KeyError(CANARY)
    except KeyError:
        logger.exception("command could not be processed")
        logger.warning("retrying", exc_info=True, stack_info=True)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["command could not be processed", "retrying"]
    assert all(line["error"] == "KeyError" for line in lines)
    assert CANARY not in captured.getvalue()
    assert "Traceback" not in captured.getvalue()


def test_an_error_nobody_awaited_is_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="journeys_executor.errors"):
            log_unhandled(loop, {"message": CANARY, "exception": ValueError(CANARY)})
    finally:
        loop.close()
    (record,) = caplog.records
    assert record.error == "ValueError"  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert CANARY not in record.getMessage()
