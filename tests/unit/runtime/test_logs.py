"""Every service logs errors by type only: an exception's text may carry patient data."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from journeys_runtime import setup
from journeys_runtime.logs import configure_logging, json_handler, log_unhandled
from journeys_runtime.ops import OpsServer

CANARY = "Canary-Patient-5f3e Zzyzx"


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The service's JSON handler, on a logger of its own, with nothing added."""
    out = io.StringIO()
    handler = json_handler("test")
    handler.setStream(out)  # type: ignore[attr-defined]
    logger = logging.getLogger("journeys_runtime.test_logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    yield out
    logger.handlers.clear()


def test_the_json_handler_writes_an_exception_by_type_not_its_text(captured: io.StringIO) -> None:
    logger = logging.getLogger("journeys_runtime.test_logs")
    try:
        raise KeyError(CANARY)
    except KeyError:
        logger.exception("command could not be processed")
        logger.warning("retrying", exc_info=True, stack_info=True)
    written = lines(captured.getvalue())
    assert [line["message"] for line in written] == ["command could not be processed", "retrying"]
    assert all(line["error"] == "KeyError" for line in written)
    assert CANARY not in captured.getvalue()
    assert "Traceback" not in captured.getvalue()


def test_a_database_error_is_told_by_type_and_sqlstate(captured: io.StringIO) -> None:
    logger = logging.getLogger("journeys_runtime.test_logs")
    try:
        raise psycopg.errors.StringDataRightTruncation(f"value too long: {CANARY}")
    except psycopg.Error:
        logger.warning("row refused", exc_info=True)
    (line,) = lines(captured.getvalue())
    assert line["error"] == "StringDataRightTruncation (SQLSTATE 22001)"
    assert CANARY not in captured.getvalue()


def test_an_error_that_ends_the_process_is_logged_by_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The root logger and the hooks are restored after every test (tests/conftest.py).
    configure_logging("test")
    try:
        raise ValueError(CANARY)
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    (line,) = lines(err)
    assert line["level"] == "CRITICAL"
    assert line["error"] == "ValueError"
    assert CANARY not in err


def test_an_error_that_ends_a_thread_is_logged_by_type(capsys: pytest.CaptureFixture[str]) -> None:
    # The root logger and the hooks are restored after every test (tests/conftest.py).
    configure_logging("test")

    def fail() -> None:
        raise ValueError(CANARY)

    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    err = capsys.readouterr().err
    (line,) = lines(err)
    assert line["error"] == "ValueError"
    assert CANARY not in err


def test_an_error_nobody_awaited_is_logged_by_type(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="journeys_runtime.logs"):
            log_unhandled(loop, {"message": CANARY, "exception": ValueError(CANARY)})
    finally:
        loop.close()
    (record,) = caplog.records
    assert record.error == "ValueError"  # type: ignore[attr-defined]
    assert record.exc_info is None
    assert CANARY not in caplog.text


async def test_a_readiness_check_that_raises_is_logged_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check() -> dict[str, bool]:
        raise KeyError(CANARY)

    with caplog.at_level(logging.WARNING, logger="journeys_runtime.ops"):
        response = await OpsServer("127.0.0.1", 0, check)._ready_view(None)  # type: ignore[arg-type]
    assert response.status == 503
    assert CANARY not in caplog.text
    (record,) = caplog.records
    assert record.error == "KeyError"  # type: ignore[attr-defined]
    assert record.exc_info is None


def test_topics_not_applied_are_logged_by_type(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(*_: Any) -> None:
        raise OSError(f"cannot reach {CANARY}")

    monkeypatch.setattr(setup, "topics", fail)
    with caplog.at_level(logging.ERROR, logger="journeys_runtime.setup"):
        assert setup.topics_main("apply", None) == 1  # type: ignore[arg-type]
    assert CANARY not in caplog.text
    (record,) = caplog.records
    assert record.error == "OSError"  # type: ignore[attr-defined]


def test_setup_not_done_in_time_is_logged_by_type(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(*_: Any) -> None:
        raise psycopg.OperationalError(f"connection to {CANARY} refused")

    monkeypatch.setattr(setup, "wait_for_setup", fail)
    with caplog.at_level(logging.ERROR, logger="journeys_runtime.setup"):
        assert setup.wait_main(None) == 1  # type: ignore[arg-type]
    assert CANARY not in caplog.text
    (record,) = caplog.records
    assert record.error == "OperationalError"  # type: ignore[attr-defined]


def test_setup_still_tells_what_it_waits_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def pending(*_: Any) -> None:
        raise setup.NotSetUpError("migrations pending: scheduler_0002")

    monkeypatch.setattr(setup, "wait_for_setup", pending)
    with caplog.at_level(logging.ERROR, logger="journeys_runtime.setup"):
        assert setup.wait_main(None) == 1  # type: ignore[arg-type]
    (record,) = caplog.records
    assert record.problem == "migrations pending: scheduler_0002"  # type: ignore[attr-defined]
