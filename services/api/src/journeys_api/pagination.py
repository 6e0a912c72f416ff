"""Keyset pagination: an opaque cursor holding the (created_at, id) of the last item served."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from journeys_api.errors import Loc, invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Key:
    """Items are served in (created_at, id) order, oldest first; a cursor resumes after one."""

    created_at: datetime
    id: UUID


def encode_cursor(key: Key) -> str:
    raw = json.dumps([key.created_at.isoformat(), str(key.id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, loc: Loc = ("query", "cursor")) -> Key | None:
    """The key a cursor names; a 422 naming `cursor` (at `loc`) when it is not one this API
    issued."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, ident = json.loads(raw)
        key = Key(datetime.fromisoformat(created_at), UUID(ident))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise invalid(loc, "cursor is not one this API issued") from exc
    if key.created_at.tzinfo is None:
        raise invalid(loc, "cursor is not one this API issued")
    return key


def next_cursor(keys: list[Key], limit: int) -> str | None:
    """Callers fetch `limit + 1` rows: an extra row means there is a next page."""
    return encode_cursor(keys[limit - 1]) if len(keys) > limit else None
