"""Errors reach the logs by type only: an exception's text may quote patient data.

A validation error can echo a patient context, a KeyError the key it missed: nothing of their
text or traceback is written, from our code or from a library's. What the executor logs of an
error is its type, in the `error` field, next to our own message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class TypesOnly(logging.Filter):
    """Replaces a record's exception (and stack) with the exception's type name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            if error is not None and not hasattr(record, "error"):
                record.error = type(error).__name__
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def scrub_exceptions(logger: logging.Logger | None = None) -> None:
    """Every handler of `logger` (the root by default) writes errors by type only."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, TypesOnly) for f in handler.filters):
            handler.addFilter(TypesOnly())


def log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's handler for errors nobody awaited: asyncio's own would print the
    exception's text and traceback."""
    error = context.get("exception")
    log.error(
        "unhandled error in a task or callback",
        extra={"error": type(error).__name__ if error is not None else None},
    )
