"""Deeply nested JSON: a 422 naming the depth limit on every route that takes a body.

A trigger whose context nested objects 900 levels deep was answered 500: the body parsed,
and then its command could not be serialised. Past about 1,000 levels Python's parser gave
up and the answer was a 400 that named nothing. Below 255 levels the API accepted a
context the executor's parser (200 levels) could not read. The limit is now checked on the
body's bytes before anything parses it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeys_api.json_depth import depth
from journeys_api.publisher import Record
from journeys_contracts.commands import StartRun, decode_command
from journeys_contracts.definition import JourneyDefinition
from tests.unit.api.conftest import AUTH, JOURNEY_ID, offline_app
from tests.unit.api.journeys import HIP_REPLACEMENT_JOURNEY, hip_replacement_journey

LIMIT = 32  # API_MAX_JSON_DEPTH's default
RUN_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def nested_objects(levels: int) -> bytes:
    """`{"id":"p1","x":{"a":{"a":…1…}}}`: the body nests `levels` objects deep."""
    inner = levels - 1  # the context object itself is the first level
    return b'{"id":"p1","x":' + b'{"a":' * inner + b"1" + b"}" * inner + b"}"


def nested_arrays(levels: int) -> bytes:
    """`{"id":"p1","x":[[…]]}`: the body nests `levels` containers deep."""
    return b'{"id":"p1","x":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


def accepting_app() -> FastAPI:
    """Validation as served, the journey known, and commands serialised as the producer
    would (`to_json`) into a list instead of Kafka."""
    app = offline_app()
    resources = app.state.resources
    definition = JourneyDefinition.model_validate(HIP_REPLACEMENT_JOURNEY)
    sent: list[bytes] = []

    async def journey(_: Any) -> JourneyDefinition:
        return definition

    async def publish(_topic: str, _key: str, record: Record, **_: Any) -> None:
        sent.append(record.to_json())

    resources.journeys.get = journey
    resources.publish = publish
    app.state.sent = sent
    return app


async def post(app: FastAPI, path: str, body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=AUTH) as c:
        return await c.post(path, content=body, headers={"Content-Type": "application/json"})


def assert_names_the_limit(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body"]
    assert f"limit of {LIMIT} levels" in error["msg"]
    assert "p1" not in response.text


TRIGGER = f"/journeys/{JOURNEY_ID}/trigger"


async def test_a_context_nesting_objects_900_deep_is_422_naming_the_limit() -> None:
    assert_names_the_limit(await post(accepting_app(), TRIGGER, nested_objects(900)))


async def test_50000_nested_arrays_are_422_naming_the_limit() -> None:
    assert_names_the_limit(await post(accepting_app(), TRIGGER, nested_arrays(50_000)))


async def test_a_context_one_level_over_the_limit_is_422() -> None:
    assert_names_the_limit(await post(accepting_app(), TRIGGER, nested_objects(LIMIT + 1)))


def test_the_bodies_nest_as_deep_as_they_say() -> None:
    assert depth(nested_objects(LIMIT)) == depth(nested_arrays(LIMIT)) == LIMIT


async def test_a_context_at_the_limit_is_accepted_and_its_command_reads_back() -> None:
    app = accepting_app()
    response = await post(app, TRIGGER, nested_objects(LIMIT))
    assert response.status_code == 202, response.text
    (command,) = [decode_command(raw) for raw in app.state.sent]
    assert isinstance(command, StartRun)
    assert command.patient_context == json.loads(nested_objects(LIMIT))


@pytest.mark.parametrize(
    "path",
    ["/journeys", TRIGGER, f"/journeys/runs/{RUN_ID}/cancel"],
)
async def test_every_route_taking_json_refuses_a_deep_body(path: str) -> None:
    app = accepting_app()
    for body in (nested_objects(900), nested_arrays(50_000), nested_objects(LIMIT + 1)):
        assert_names_the_limit(await post(app, path, body))


async def test_a_definition_with_a_deep_condition_value_is_422_naming_the_limit() -> None:
    journey = hip_replacement_journey()
    value: Any = 65
    for _ in range(LIMIT):
        value = [value]
    journey["nodes"][1]["condition"] = {"field": "age", "operator": "in", "value": value}
    assert_names_the_limit(await post(accepting_app(), "/journeys", json.dumps(journey).encode()))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", 0),
        (b'"just a string"', 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets inside strings do not nest
        (b'{"a": "quote \\" then [[[", "b": [[]]}', 3),  # nor after an escaped quote
        (b'{"a": "\\\\", "b": [[]]}', 3),  # an escaped backslash ends before the quote
        (b"[[],[],[[]]]", 3),
    ],
)
def test_depth_counts_containers_outside_strings(body: bytes, expected: int) -> None:
    assert depth(body) == expected


# A JSON value nested to a known depth: containers (objects or arrays) wrapped around a leaf,
# each with optional siblings, leaves including strings full of brackets and quotes.
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.text(alphabet='[]{}"\\ab', max_size=12),
)  # fmt: skip


@st.composite
def nested(draw: st.DrawFn) -> tuple[Any, int]:
    levels = draw(st.integers(min_value=0, max_value=3 * LIMIT))
    value: Any = draw(LEAVES)
    for _ in range(levels):
        siblings = draw(st.lists(LEAVES, max_size=2))
        if draw(st.booleans()):
            value = [*siblings, value]
        else:
            value = {**{f"s{i}": s for i, s in enumerate(siblings)}, "k": value}
    return value, levels


APP = accepting_app()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nested())
def test_any_nesting_is_accepted_up_to_the_limit_and_refused_past_it(
    drawn: tuple[Any, int],
) -> None:
    value, levels = drawn
    context = {"id": "p1", "x": value}
    body = json.dumps(context).encode()
    body_depth = levels + 1  # the context object itself is one level
    assert depth(body) == body_depth
    APP.state.sent.clear()

    response = asyncio.run(post(APP, TRIGGER, body))

    if body_depth <= LIMIT:
        assert response.status_code == 202, response.text
        (command,) = [decode_command(raw) for raw in APP.state.sent]
        assert isinstance(command, StartRun)
        assert command.patient_context == context
    else:
        assert_names_the_limit(response)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(reference_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(reference_depth, value), default=0)
    return 0


JSON_VALUES = st.recursive(
    LEAVES | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text('[]{}"\\k', max_size=4), inner, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_depth_agrees_with_the_parsed_value(value: Any, ascii_only: bool) -> None:
    assert depth(json.dumps(value, ensure_ascii=ascii_only).encode()) == reference_depth(value)
