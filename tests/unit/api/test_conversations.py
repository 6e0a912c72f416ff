"""A patient's conversation, pure: the runs' message events grouped into messages (text as
rendered, the last status), replies as they came, both merged oldest first, the last `limit`
kept and `more` exact. The read models and the data keys are stand-ins; the SQL behind them
runs on PostgreSQL in tests/e2e/test_sms_replies.py and tests/integration/api."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from journeys_api import conversations

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RUN, JOURNEY = uuid.uuid4(), uuid.uuid4()


def event(seq: int, kind: str, minutes: int, mid: str = "m1", **data: Any) -> dict[str, Any]:
    """A run event of message `mid`, as the read model keeps an unsealed one."""
    return {"run_id": RUN, "journey_id": JOURNEY, "seq": seq, "occurred_at": T0 + timedelta(
        minutes=minutes), "type": f"journeys.message.{kind}.v1", "patient_id": "p-1",
        "patient_key": "k" * 64, "patient_id_sealed": None,
        "data": {"messageId": str(uuid.uuid5(RUN, mid)), "nodeId": "ask", **data}}  # fmt: skip


def reply(minutes: int, body: Any, keyword: str | None = None) -> dict[str, Any]:
    return {"receipt_id": uuid.uuid4(), "event_id": f"sms:{minutes}", "data_sealed": None,
            "occurred_at": T0 + timedelta(minutes=minutes), "received_at": T0,
            "data": body if not isinstance(body, str) else
            {"channel": "sms", "body": body, "keyword": keyword}}  # fmt: skip


class Stand:
    """What `conversation` asks of the resources: the two queries' rows, at most `limit`
    of each as the SQL would give them, and no data key (nothing here is sealed)."""

    def __init__(self, out: list[dict[str, Any]], replies: list[dict[str, Any]]) -> None:
        async def rows(key: str, limit: int) -> tuple[list[Any], list[Any]]:
            ids = sorted({e["data"]["messageId"] for e in out},
                         key=lambda m: min(e["occurred_at"] for e in out
                                           if e["data"]["messageId"] == m))[-limit:]  # fmt: skip
            newest = sorted(replies, key=lambda r: r["received_at"], reverse=True)[:limit]
            return [e for e in out if e["data"]["messageId"] in ids], newest

        async def no_key(key: str) -> None:
            return None

        self.read_models = SimpleNamespace(conversation=rows)
        self.data_keys = SimpleNamespace(get=no_key)


async def test_out_and_in_merge_oldest_first_each_message_with_its_last_word() -> None:
    out = [
        event(1, "requested", 0, message="Any pain today?", channel="sms"),
        event(2, "retrying", 1, reason="gateway answered 503"),
        event(3, "sent", 2, channel="sms"),
        event(4, "suppressed", 10, "m2", channel="sms", reason="consent"),
        event(5, "deferred", 20, "m3", message="Your visit is at 9.", reason="quiet hours"),
    ]
    replies = [reply(5, "STOP", "stop"), reply(6, {"not": "a reply"}), reply(7, 42)]
    view = await conversations.conversation(Stand(out, replies), "k" * 64, 10)  # type: ignore[arg-type]

    said = [(m.direction, m.text, m.status or m.keyword, m.reason) for m in view.messages]
    assert said == [
        ("out", "Any pain today?", "sent", None),
        ("in", "STOP", "stop", None),
        ("in", None, None, None),  # a sender's data without a text: the reply, no text
        ("out", None, "suppressed", "consent"),
        ("out", "Your visit is at 9.", "deferred", "quiet hours"),
    ]
    assert view.more is False
    assert [m.channel for m in view.messages if m.direction == "out"] == ["sms", "sms", None]


async def test_the_last_limit_are_kept_and_more_says_older_ones_exist() -> None:
    out = [event(i + 1, "requested", 2 * i, f"m{i}", message=f"m{i}") for i in range(3)]
    replies = [reply(2 * i + 1, f"r{i}") for i in range(3)]
    stand = Stand(out, replies)

    four = await conversations.conversation(stand, "k" * 64, 4)  # type: ignore[arg-type]
    assert [m.text for m in four.messages] == ["r0", "m1", "r1", "m2", "r2"][-4:]
    assert four.more is True
    six = await conversations.conversation(stand, "k" * 64, 6)  # type: ignore[arg-type]
    assert len(six.messages) == 6
    assert six.more is False
