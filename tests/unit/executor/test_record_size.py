"""The one record size limit: checked before sending, at the limit and one byte over."""

from __future__ import annotations

import pytest

from journeys_runtime import kafka
from journeys_runtime.kafka import (
    RECORD_MAX_BYTES,
    REQUEST_MAX_BYTES,
    RecordTooLargeError,
    check_record_size,
    record_size,
)
from journeys_runtime.topics import Topics

KEY = b"k" * 64
HEADERS = [("ce_type", b"journeys.run.started.v1"), ("ce_subject", b"x" * 36)]


def test_a_value_of_exactly_the_limit_may_be_sent() -> None:
    check_record_size("event", KEY, b"v" * RECORD_MAX_BYTES, HEADERS)


def test_a_value_one_byte_over_the_limit_is_refused_with_its_size() -> None:
    with pytest.raises(RecordTooLargeError) as refused:
        check_record_size("event", KEY, b"v" * (RECORD_MAX_BYTES + 1), HEADERS)
    assert (refused.value.size, refused.value.limit) == (RECORD_MAX_BYTES + 1, RECORD_MAX_BYTES)
    assert str(refused.value) == f"event is {RECORD_MAX_BYTES + 1} bytes, over the limit of " \
        f"{RECORD_MAX_BYTES}"  # fmt: skip


def test_key_and_headers_count_against_the_request_limit() -> None:
    value = b"v" * 1000
    room = REQUEST_MAX_BYTES - record_size(KEY, value, [])
    fits = [("h", b"x" * (room - len("h") - 8))]
    while record_size(KEY, value, fits) < REQUEST_MAX_BYTES:  # varint lengths: settle exactly
        fits = [("h", fits[0][1] + b"x")]
    while record_size(KEY, value, fits) > REQUEST_MAX_BYTES:
        fits = [("h", fits[0][1][:-1])]
    assert record_size(KEY, value, fits) == REQUEST_MAX_BYTES
    check_record_size("event", KEY, value, fits)
    with pytest.raises(RecordTooLargeError):
        check_record_size("event", KEY, value, [("h", fits[0][1] + b"x")])


async def test_a_record_of_the_largest_value_with_its_key_and_headers_fits_every_limit() -> None:
    """What the check lets through, the producer, the topics and the broker take."""
    biggest = record_size(KEY, b"v" * RECORD_MAX_BYTES, HEADERS)
    assert biggest <= REQUEST_MAX_BYTES
    assert kafka.producer("127.0.0.1:1")._max_request_size == REQUEST_MAX_BYTES
    for name, configs in Topics("t.").configs().items():
        assert configs["max.message.bytes"] == str(REQUEST_MAX_BYTES), name


def test_the_local_broker_takes_what_the_topics_take() -> None:
    from pathlib import Path

    from journeys_stack.kafka import KafkaBroker

    properties = KafkaBroker(Path("/nonexistent")).server_properties()
    assert properties["message.max.bytes"] == str(REQUEST_MAX_BYTES)
    assert properties["replica.fetch.max.bytes"] == str(REQUEST_MAX_BYTES)
