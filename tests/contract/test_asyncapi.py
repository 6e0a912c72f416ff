"""contracts/asyncapi.yaml documents every topic, header and type the code actually uses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from journeys_contracts import schemas
from journeys_contracts.envelope import CloudEvent, event_id, sealed_event_id
from journeys_contracts.events import PatientErased, type_of
from journeys_contracts.events_sealed import SEALED_EVENT_TYPES
from journeys_contracts.sealed import SEALED_FIELDS
from journeys_runtime.dlq import dlq_headers
from journeys_runtime.topics import Topics

ASYNCAPI = schemas.SCHEMAS_DIR.parent / "asyncapi.yaml"
DOC: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
MESSAGES: dict[str, Any] = DOC["components"]["messages"]
TOPICS = Topics(prefix="{prefix}")
CHANNEL_TOPICS = {
    "definitions": TOPICS.definitions,
    "commands": TOPICS.commands,
    "events": TOPICS.events,
    "sealedEvents": TOPICS.sealed_events,
    "deadLetters": TOPICS.dlq,
    "audit": TOPICS.audit,
}


def pointer(ref: str) -> Any:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in refs(v)
        ]
    return [r for v in node for r in refs(v)] if isinstance(node, list) else []


def test_is_an_asyncapi_3_document() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert DOC["info"]["title"]
    assert DOC["info"]["version"] == "1.0.0"


def test_every_contract_type_is_a_message_with_its_committed_schema() -> None:
    by_name = {m["name"]: m for m in MESSAGES.values()}
    for contract in schemas.contracts():
        if contract.kind == "definition":  # the HTTP body, not a Kafka record
            continue
        message = by_name[contract.name]
        assert message["payload"]["schema"]["$ref"] == f"./schemas/{contract.path.as_posix()}"
        assert message["payload"]["schemaFormat"] == "application/schema+json;version=2020-12"


SEALED_EVENTS = {type_of(m) for m in SEALED_EVENT_TYPES}


def carried(channel: str) -> set[str]:
    return {pointer(m["$ref"])["name"] for m in DOC["channels"][channel]["messages"].values()}


def test_each_topic_carries_exactly_its_own_types() -> None:
    kinds = {"definitions": "journeys", "commands": "commands", "audit": "audit"}
    for channel, kind in kinds.items():
        assert carried(channel) == {c.name for c in schemas.contracts() if c.kind == kind}, channel
    events = {c.name for c in schemas.contracts() if c.kind == "events"}
    assert carried("events") == events - SEALED_EVENTS
    # The erasure notice carries no patient data: both event topics have it as it is.
    assert carried("sealedEvents") == SEALED_EVENTS | {type_of(PatientErased)}
    assert events >= SEALED_EVENTS


def test_every_channel_message_is_sent_by_an_operation() -> None:
    sent: dict[str, set[str]] = {}
    for operation in DOC["operations"].values():
        if operation["action"] == "send":
            channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
            sent.setdefault(channel, set()).update(
                pointer(pointer(m["$ref"])["$ref"])["name"] for m in operation["messages"]
            )
    for channel in DOC["channels"]:
        assert sent.get(channel) == carried(channel) or channel == "deadLetters", channel


def test_the_sealed_events_channel_tells_a_consumer_what_it_can_read() -> None:
    text = " ".join(DOC["channels"]["sealedEvents"]["description"].split())
    for field in SEALED_FIELDS:
        assert f"`{field}`" in text, field
    for phrase in ("key-encryption keys", "`journeys.events.v1`", "`EXECUTOR_EMIT_EVENTS_V1`",
                   "`sealedTwin: true`", "needs patient ids"):  # fmt: skip
        assert phrase in text, phrase


def test_the_documented_id_of_a_sealed_event_is_the_one_computed() -> None:
    documented = DOC["components"]["schemas"]["cloudEventHeaders"]["properties"]["ce_id"]
    assert 'uuid5(<its v1 twin\'s id>, "sealed")' in " ".join(documented["description"].split())
    twin = event_id("6f1c1a52-3c7e-4b55-9d8a-2f0e5b7a9c01", 3)
    assert sealed_event_id(twin) == str(uuid.uuid5(uuid.UUID(twin), "sealed")) != twin


def test_every_reference_resolves() -> None:
    for ref in refs(DOC):
        if ref.startswith("#/"):
            assert pointer(ref) is not None, ref
        else:
            assert (ASYNCAPI.parent / ref).is_file(), ref


@pytest.mark.parametrize("channel", CHANNEL_TOPICS)
def test_channel_address_and_topic_config_match_the_topics_created(channel: str) -> None:
    documented = DOC["channels"][channel]
    created = {spec.name: spec.topic_configs for spec in TOPICS.specs(partitions=1)}
    assert documented["address"] == CHANNEL_TOPICS[channel]
    assert "prefix" in documented["parameters"]
    config = documented["bindings"]["kafka"]["topicConfiguration"]
    actual = created[CHANNEL_TOPICS[channel]]
    assert config["cleanup.policy"] == [actual["cleanup.policy"]]
    assert str(config.get("retention.ms", "")) == actual.get("retention.ms", "")


def test_cloudevent_headers_are_the_ones_producers_write() -> None:
    written = CloudEvent(
        "id", "journeys.run.started.v1", "/journeys/executor", "run", datetime.now(UTC)
    )
    documented = DOC["components"]["schemas"]["cloudEventHeaders"]
    names = [name for name, _ in written.headers()]
    assert sorted(documented["required"]) == sorted(names)
    assert set(documented["properties"]) == set(names)


def test_dead_letter_headers_are_the_ones_dlq_headers_adds() -> None:
    added = dlq_headers([], topic="t", partition=0, offset=1, stage="decode", error="E")
    documented = DOC["components"]["schemas"]["deadLetterHeaders"]
    assert set(documented["required"]) == {name for name, _ in added}


def test_describes_ordering_seq_delivery_and_evolution() -> None:
    text = DOC["info"]["description"]
    for phrase in ("read_committed", "(runId, seq)", "additive only", "HMAC-SHA256", "prefix"):
        assert phrase in text, phrase


def test_keys_are_documented_per_topic() -> None:
    patient_keyed = DOC["components"]["messageTraits"]["patientKeyed"]
    assert patient_keyed["bindings"]["kafka"]["key"]["pattern"] == "^[0-9a-f]{64}$"
    for channel in ("commands", "events", "sealedEvents"):
        for message in DOC["channels"][channel]["messages"].values():
            assert pointer(message["$ref"])["traits"] == [
                {"$ref": "#/components/messageTraits/patientKeyed"}
            ]
    assert MESSAGES["journeyDefined"]["bindings"]["kafka"]["key"]["format"] == "uuid"
