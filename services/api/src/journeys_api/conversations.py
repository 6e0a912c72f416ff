"""A patient's conversation: the messages their journeys sent them and the replies they sent
back, in the order they happened, as a CRM's chat view shows them.

Messages out are the runs' `journeys.message.*` events, grouped by message id: the text from
its (last) `message.requested` or `message.deferred`, its status from its last event. Replies
in are the patient's `message.replied` events, whose data the projector keeps for this
(`projector_0011_replies.sql`). Both are sealed under the patient's data key when the patient
has one; a row sealed under a key that is gone (the patient was erased, the projector has not
deleted the row yet) is left out.
"""

from __future__ import annotations

from typing import Any, get_args

from journeys_api import sealed_rows
from journeys_api.read_models import Row
from journeys_api.resources import Resources
from journeys_api.views import ConversationMessage, ConversationView, MessageStatus

_STATUS_OF = {f"journeys.message.{status}.v1": status for status in get_args(MessageStatus)}
_TEXT_FROM = ("journeys.message.requested.v1", "journeys.message.deferred.v1")
_KEYWORDS = ("stop", "start", "help")


async def conversation(resources: Resources, patient_key: str, limit: int) -> ConversationView:
    """The patient's last `limit` messages, out and in, oldest first."""
    # One more of each than asked for: whether older messages exist, exactly.
    out, replies = await resources.read_models.conversation(patient_key, limit + 1)
    key = None
    if any(map(sealed_rows.is_sealed_event, out)) or any(r["data_sealed"] for r in replies):
        key = await resources.data_keys.get(patient_key)
    messages = _messages_out(out, key) + _replies_in(replies, patient_key, key)
    messages.sort(key=lambda m: (m.at, m.direction == "in"))
    return ConversationView(messages=messages[-limit:], more=len(messages) > limit)


def _messages_out(rows: list[Row], key: Any) -> list[ConversationMessage]:
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        event = sealed_rows.open_event(row, key)
        if event is None:  # sealed under a key that is gone
            continue
        data, kind = event["data"], event["type"]
        message = found.setdefault(data["messageId"], {
            "direction": "out", "at": event["occurred_at"], "message_id": data["messageId"],
            "run_id": row["run_id"], "journey_id": row["journey_id"], "node_id": data.get("nodeId"),
        })  # fmt: skip
        status = _STATUS_OF.get(kind)
        if status is None:
            continue
        message["status"] = status
        message["reason"] = data.get("reason") if status in ("failed", "suppressed",
                                                             "deferred") else None  # fmt: skip
        if data.get("channel") is not None:
            message["channel"] = data["channel"]
        if kind in _TEXT_FROM:
            message["text"] = data.get("message")
    return [ConversationMessage.model_validate(m) for m in found.values()]


def _replies_in(rows: list[Row], patient_key: str, key: Any) -> list[ConversationMessage]:
    replies = []
    for row in rows:
        data = sealed_rows.open_reply(row, patient_key, key)
        if not isinstance(data, dict):  # gone with its key, or a sender's non-object data
            continue
        text, channel, keyword = data.get("body"), data.get("channel"), data.get("keyword")
        replies.append(ConversationMessage(
            direction="in", at=row["occurred_at"], event_id=row["event_id"],
            text=text if isinstance(text, str) else None,
            channel=channel if isinstance(channel, str) else None,
            keyword=keyword if keyword in _KEYWORDS else None,
        ))  # fmt: skip
    return replies
