"""Cursors are opaque round trips of a (created_at, id) key; anything else is a 422."""

from __future__ import annotations

import base64
import string
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.exceptions import RequestValidationError

from journeys_api.pagination import Key, decode_cursor, encode_cursor, next_cursor

KEY = Key(datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=UTC), uuid.uuid4())


def test_cursor_round_trips_to_the_microsecond() -> None:
    assert decode_cursor(encode_cursor(KEY)) == KEY


def test_cursor_is_url_safe_and_unpadded() -> None:
    cursor = encode_cursor(KEY)

    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(None) is None


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'["2025-03-01T09:30:00+00:00"]', b'["yesterday", "x"]',
     b'["2025-03-01T09:30:00", "3f0c6d7e-2b1a-4c5d-9e8f-0a1b2c3d4e5f"]', b"{}"],
)  # fmt: skip
def test_foreign_cursor_is_422_naming_cursor(raw: bytes) -> None:
    cursor = base64.urlsafe_b64encode(raw).decode()

    with pytest.raises(RequestValidationError) as caught:
        decode_cursor(cursor)

    [error] = caught.value.errors()
    assert error["loc"] == ("query", "cursor")


def test_next_cursor_only_when_a_row_beyond_the_page_was_fetched() -> None:
    keys = [Key(KEY.created_at + timedelta(seconds=i), uuid.uuid4()) for i in range(3)]

    assert next_cursor(keys, 3) is None
    assert decode_cursor(next_cursor(keys, 2)) == keys[1]
