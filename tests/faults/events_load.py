"""A load of patient events through `POST /events`: runs that wait, look back, race their
timeouts and exit, each case on a patient of its own, recording what each sent event is for.

What an event is for (`Sent.expects`) is only what the checkers look for on the topics: a
`match` of run R's wait, an `exit` of run R, or a `start` of a run of journey J. Whether it had
to happen (the wait had not ended before the event was on the partition, ...) the checkers
decide from the topics themselves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from standardwebhooks import Webhook

from journeys_runtime.kafka import producer

FORM, BOOKED, RESULT, RACE, CANCELLED = (
    "fault.form", "fault.booked", "fault.result", "fault.race", "fault.cancelled"
)  # fmt: skip
WAIT_TIMEOUT = 60  # long enough to outlast an executor restart (session timeout 10 s)
RACE_TIMEOUT = 6  # events for these runs are sent on either side of it


def _wait(node: str, event: str, timeout: int, then: str, lookback: int = 0) -> dict[str, Any]:
    return {"id": node, "type": "WAIT_FOR_EVENT", "event": event, "timeout_seconds": timeout,
            "lookback_seconds": lookback, "on_event_next_node_id": then,
            "on_timeout_next_node_id": None}  # fmt: skip


def _message(node: str, then: str | None = None) -> dict[str, Any]:
    return {"id": node, "type": "MESSAGE", "message": node, "next_node_id": then}


EXIT = [{"event": CANCELLED}]
EVENT_JOURNEYS: dict[str, dict[str, Any]] = {
    "wait": {"name": "faults: wait for a form", "start_node_id": "hello", "exit_on": EXIT,
             "nodes": [_message("hello", "form"), _wait("form", FORM, WAIT_TIMEOUT, "thanks"),
                       _message("thanks")]},
    "triggered": {"name": "faults: started by a booking", "start_node_id": "hello",
                  "triggers": [{"event": BOOKED}], "exit_on": EXIT,
                  "nodes": [_message("hello", "form"),
                            _wait("form", FORM, WAIT_TIMEOUT, "thanks"), _message("thanks")]},
    "lookback": {"name": "faults: look back", "start_node_id": "pause",
                 "nodes": [{"id": "pause", "type": "DELAY", "duration_seconds": 4,
                            "next_node_id": "result"},
                           _wait("result", RESULT, WAIT_TIMEOUT, "done", lookback=300),
                           _message("done")]},
    "race": {"name": "faults: race the timeout", "start_node_id": "race",
             "nodes": [{**_wait("race", RACE, RACE_TIMEOUT, "got"),
                        "on_timeout_next_node_id": "late"},
                       _message("got"), _message("late")]},
    "exit": {"name": "faults: exit during a delay", "start_node_id": "hello", "exit_on": EXIT,
             "nodes": [_message("hello", "pause"),
                       {"id": "pause", "type": "DELAY", "duration_seconds": 5,
                        "next_node_id": "bye"},
                       _message("bye")]},
}  # fmt: skip

# How a body carries events: the API's own shape, one or a batch, CloudEvents JSON, a signed
# webhook of the source `HOOK_SOURCE` (one event), and a record on another team's topic that
# the ingest reads (`INGEST_TOPIC`, plain JSON).
FORMS = ("json", "batch", "cloudevent", "cloudevents-batch", "hook", "topic")
INGEST_TOPIC = "{topic_prefix}faults.patient-events"  # `fault_stack` fills the prefix in
INGEST_SOURCES = [
    {
        "topic": INGEST_TOPIC,
        "format": "json",
        "eventId": "/eventId",
        "patientId": "/patientId",
        "type": "/type",
        "data": "/data",
    }
]
HOOK_SOURCE = "faults"
HOOK_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
# The API's `API_WEBHOOK_SOURCES` for it: the event where this load puts it in the body.
WEBHOOK_SOURCES = {
    HOOK_SOURCE: {
        "secret": HOOK_SECRET,
        "eventId": "/eventId",
        "patientId": "/patientId",
        "type": "/type",
        "data": "/data",
    }
}


@dataclass
class Sent:
    event_id: str
    patient_id: str
    type: str
    expects: str  # "match", "exit" or "start"
    target: str  # the run (match, exit) or the journey (start)
    forms: list[str] = field(default_factory=list)  # forms answered 202
    at: list[float] = field(default_factory=list)  # monotonic time of each 202


@dataclass
class EventLoad:
    sent: dict[str, Sent] = field(default_factory=dict)  # event id -> what it is for
    runs: dict[str, str] = field(default_factory=dict)  # run id -> journey name
    journeys: dict[str, str] = field(default_factory=dict)  # name -> journey id
    cases: dict[str, int] = field(default_factory=dict)  # kind -> cases begun
    unfinished: dict[str, int] = field(default_factory=dict)  # kind -> cases that gave up
    duplicates_answered: int = 0  # sum of "duplicates" in the 202 answers
    unanswered: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    bad_answers: int = 0  # a 5xx other than 503, or a 503 without Retry-After


def body(form: str, events: list[dict[str, Any]]) -> tuple[str, bytes]:
    """(content type, body) of `events` in `form`; one-event forms take the first."""
    if form in ("hook", "topic"):
        return "application/json", orjson.dumps(events[0])
    if form in ("json", "batch"):
        return "application/json", orjson.dumps(events[0] if form == "json" else {"events": events})
    clouds = [{"specversion": "1.0", "id": e["eventId"], "source": "/faults", "type": e["type"],
               "subject": e["patientId"], "data": e.get("data", {})} for e in events]  # fmt: skip
    if form == "cloudevent":
        return "application/cloudevents+json", orjson.dumps(clouds[0])
    return "application/cloudevents-batch+json", orjson.dumps(clouds)


class Client:
    """The API as the load uses it: retries on no answer and on 503 (as a sender must)."""

    def __init__(self, http: httpx.AsyncClient, load: EventLoad,
                 topic: tuple[AIOKafkaProducer, str] | None = None) -> None:  # fmt: skip
        self.http, self.load, self.topic = http, load, topic

    async def produce(self, content: bytes, event_id: str) -> bool:
        """Another team's record: acknowledged by Kafka is as far as their producer knows."""
        if self.topic is None:
            return False
        producer, topic = self.topic
        try:
            await producer.send_and_wait(topic, content, key=event_id.encode())
        except KafkaError:
            self.load.unanswered += 1
            return False
        return True

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response | None:
        for _ in range(40):
            try:
                response = await self.http.request(method, url, **kw)
            except httpx.HTTPError:
                self.load.unanswered += 1
                await asyncio.sleep(0.5)
                continue
            if response.status_code >= 500 and not (
                response.status_code == 503 and "Retry-After" in response.headers
            ):
                self.load.bad_answers += 1
            if response.status_code != 503:
                return response
            self.load.rejected[503] = self.load.rejected.get(503, 0) + 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        return None

    async def send(self, form: str, events: list[dict[str, Any]]) -> bool:
        content_type, content = body(form, events)
        if form == "topic":
            if not await self.produce(content, events[0]["eventId"]):
                return False
            sent = self.load.sent[events[0]["eventId"]]
            sent.forms.append(form)
            sent.at.append(time.monotonic())
            return True
        headers, url = {"Content-Type": content_type}, "/events"
        if form == "hook":  # a new webhook id each time: the event id in the body names it
            url, msg_id, now = f"/hooks/{HOOK_SOURCE}", f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(HOOK_SECRET).sign(msg_id, now, content),
            }
        response = await self.request("POST", url, content=content, headers=headers)
        if response is None or response.status_code != 202:
            if response is not None:
                code = response.status_code
                self.load.rejected[code] = self.load.rejected.get(code, 0) + 1
            return False
        self.load.duplicates_answered += response.json()["duplicates"]
        for event_id in dict.fromkeys(
            e["eventId"] for e in events[: len(events) if form.endswith("batch") else 1]
        ):
            sent = self.load.sent[event_id]
            sent.forms.append(form)
            sent.at.append(time.monotonic())
        return True

    async def trigger(self, journey: str, patient: str) -> str | None:
        response = await self.request(
            "POST", f"/journeys/{self.load.journeys[journey]}/trigger", json={"id": patient},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )  # fmt: skip
        if response is None or response.status_code != 202:
            return None
        run_id = str(response.json()["runId"])
        self.load.runs[run_id] = journey
        return run_id

    async def status(self, run_id: str) -> str | None:
        response = await self.request("GET", f"/journeys/runs/{run_id}")
        return response.json()["status"] if response and response.status_code == 200 else None

    async def until(self, run_id: str, status: str, within: float = 45.0) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.status(run_id) == status:
                return True
            await asyncio.sleep(0.5)
        return False

    async def triggered_run(self, journey: str, patient: str, within: float = 45.0) -> str | None:
        """The run a booking started for `patient`, once the read model has it."""
        search = {"journeyId": self.load.journeys[journey], "patientId": patient}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            response = await self.request("POST", "/journeys/runs/search", json=search)
            if response is not None and response.status_code == 200 and response.json()["items"]:
                run_id = str(response.json()["items"][0]["runId"])
                self.load.runs[run_id] = journey
                return run_id
            await asyncio.sleep(0.5)
        return None


def new_event(
    load: EventLoad, patient: str, kind: str, expects: str, target: str
) -> dict[str, Any]:
    event_id = f"fault-{uuid.uuid4()}"
    load.sent[event_id] = Sent(event_id, patient, kind, expects, target)
    return {"eventId": event_id, "patientId": patient, "type": kind, "data": {"n": 1}}


Case = Callable[[Client, random.Random, str], Awaitable[bool]]


async def run_event_load(
    api_url: str, api_key: str, mix: dict[str, Case], rate: float, seconds: float,
    ingest: tuple[str, str] | None = None, seed: int = 11,
) -> EventLoad:  # fmt: skip
    """`rate` cases a second for `seconds`, each of a kind drawn from `mix`; waits for all.
    `ingest`: (bootstrap, topic) the ingest reads, for the `topic` form; without, that form
    is never drawn."""
    rng = random.Random(seed)
    load = EventLoad()
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with contextlib.AsyncExitStack() as resources:
        http = await resources.enter_async_context(httpx.AsyncClient(
            base_url=api_url, timeout=15, limits=limits, headers={"X-API-Key": api_key}
        ))  # fmt: skip
        topic = None
        if ingest is not None:
            p = producer(ingest[0])
            await p.start()
            resources.push_async_callback(p.stop)
            topic = (p, ingest[1])
        client = Client(http, load, topic)
        for name, definition in EVENT_JOURNEYS.items():
            response = await http.post("/journeys", json=definition)
            response.raise_for_status()
            load.journeys[name] = response.json()["journeyId"]

        async def one(kind: str, i: int) -> None:
            load.cases[kind] = load.cases.get(kind, 0) + 1
            done = False
            with contextlib.suppress(httpx.HTTPError):
                done = await mix[kind](client, random.Random(rng.random()), f"ev-patient-{i}")
            if not done:
                load.unfinished[kind] = load.unfinished.get(kind, 0) + 1

        tasks = []
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.create_task(one(rng.choice(list(mix)), i)))
            i += 1
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    return load
