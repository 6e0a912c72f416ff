"""JSON logs on stderr, with the run and trace ids of the work in hand and no patient data.

Errors reach the logs by type only: a validation error can echo a patient context, a KeyError
the key it missed, a database error the row it refused. Nothing of an exception's text or
traceback is written, whether our code logs it, a library does, a task nobody awaited raises
it, or it ends the process; what is logged is its type, in the `error` field, next to our own
message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading
from types import TracebackType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger(__name__)

run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
trace_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if not hasattr(record, "run_id"):
            record.run_id = run_id_var.get()
        if not hasattr(record, "trace_id"):
            record.trace_id = trace_id_var.get()
        return True


def describe_error(exc: BaseException) -> str:
    """What may be logged, or put in a header, of an error: its type, and a database error's
    SQLSTATE (a code, never the row)."""
    sqlstate = getattr(exc, "sqlstate", None)
    return f"{type(exc).__name__} (SQLSTATE {sqlstate})" if sqlstate else type(exc).__name__


class TypesOnly(logging.Filter):
    """Replaces a record's exception (and stack) with the exception's type name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            if error is not None and not hasattr(record, "error"):
                record.error = describe_error(error)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's handler for errors nobody awaited: asyncio's own would print the
    exception's text and traceback."""
    error = context.get("exception")
    log.error(
        "unhandled error in a task or callback",
        extra={"error": describe_error(error) if error is not None else None},
    )


def _log_crash(kind: type[BaseException], error: BaseException, _: TracebackType | None) -> None:
    """Python's report of an error that ends the process would print its text."""
    log.critical("stopped on an error", extra={"error": describe_error(error)})


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    error = args.exc_value
    log.critical(
        "a thread stopped on an error",
        extra={"error": describe_error(error) if error is not None else args.exc_type.__name__},
    )


def json_handler(service: str) -> logging.Handler:
    """A stderr handler writing one JSON object per line, errors by type only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_ContextFilter(service))
    handler.addFilter(TypesOnly())
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    """Replace the root handlers with one JSON handler, and make an error that ends the process
    or a thread reach it by type; idempotent."""
    handler = json_handler(service)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    sys.excepthook = _log_crash
    threading.excepthook = _log_thread_crash
