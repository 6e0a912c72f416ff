"""The cases of the patient-event load, and which mix of them each scenario drives.

Each case has a patient of its own, so what an event should have done is unambiguous.
"""

from __future__ import annotations

import asyncio
import random
from functools import partial

from tests.faults.events_load import (
    BOOKED,
    CANCELLED,
    FORM,
    FORMS,
    RACE,
    RESULT,
    Case,
    Client,
    new_event,
)


async def deliver(c: Client, rng: random.Random, event: dict[str, object], ways: int) -> bool:
    """Send `event` through `ways` body forms: one after the other or all at once, a batch
    sometimes holding it twice. True when at least one answered 202."""
    forms = rng.sample([f for f in FORMS if f != "topic" or c.topic is not None], ways)
    bodies = [[event, event] if f.endswith("batch") and rng.random() < 0.3 else [event]
              for f in forms]  # fmt: skip
    if ways > 1 and rng.random() < 0.5:
        answers = await asyncio.gather(*(c.send(f, b) for f, b in zip(forms, bodies, strict=True)))
        return any(answers)
    return any([await c.send(f, b) for f, b in zip(forms, bodies, strict=True)])


async def wait_case(c: Client, rng: random.Random, patient: str, ways: int = 1,
                    hold: float = 6.0) -> bool:  # fmt: skip
    """A run waits for a form; the form comes up to `hold` seconds after the load saw it wait."""
    run = await c.trigger("wait", patient)
    if run is None or not await c.until(run, "waiting_event"):
        return False
    await asyncio.sleep(rng.uniform(0, hold))
    return await deliver(c, rng, new_event(c.load, patient, FORM, "match", run), ways)


async def triggered_case(c: Client, rng: random.Random, patient: str, ways: int = 1,
                         hold: float = 6.0) -> bool:  # fmt: skip
    """A booking starts a run by the journey's trigger; then its form resumes it."""
    booked = new_event(c.load, patient, BOOKED, "start", c.load.journeys["triggered"])
    if not await deliver(c, rng, booked, ways):
        return False
    run = await c.triggered_run("triggered", patient)
    if run is None or not await c.until(run, "waiting_event"):
        return False
    await asyncio.sleep(rng.uniform(0, hold))
    return await deliver(c, rng, new_event(c.load, patient, FORM, "match", run), ways)


async def lookback_case(c: Client, rng: random.Random, patient: str) -> bool:
    """The result comes before the wait begins: before the run is even started, or during
    the 4 s delay ahead of the wait. The wait must find it by look-back."""
    if rng.random() < 0.5:
        event = new_event(c.load, patient, RESULT, "match", "")
        if not await deliver(c, rng, event, 1):
            return False
        run = await c.trigger("lookback", patient)
        c.load.sent[str(event["eventId"])].target = run or ""
        return run is not None
    run = await c.trigger("lookback", patient)
    if run is None:
        return False
    await asyncio.sleep(rng.uniform(0, 2.5))
    return await deliver(c, rng, new_event(c.load, patient, RESULT, "match", run), 1)


async def race_case(c: Client, rng: random.Random, patient: str) -> bool:
    """The event comes on either side of the wait's 6 s timeout: one of them wins, once. Sent
    at a time counted from the trigger's 202 (the wait begins soon after), not from when the
    read model shows the wait, which on a busy machine is often after the timeout."""
    run = await c.trigger("race", patient)
    if run is None:
        return False
    await asyncio.sleep(rng.uniform(3, 10))
    return await deliver(c, rng, new_event(c.load, patient, RACE, "match", run), 1)


async def exit_delay_case(c: Client, rng: random.Random, patient: str) -> bool:
    """The exit comes during the run's 5 s delay, or about when it elapses."""
    run = await c.trigger("exit", patient)
    if run is None or not await c.until(run, "waiting_delay"):
        return False
    await asyncio.sleep(rng.uniform(0, 5.5))
    return await deliver(c, rng, new_event(c.load, patient, CANCELLED, "exit", run), 1)


async def exit_wait_case(c: Client, rng: random.Random, patient: str) -> bool:
    """The exit comes during a wait; a third of the time with the awaited form at once."""
    run = await c.trigger("wait", patient)
    if run is None or not await c.until(run, "waiting_event"):
        return False
    await asyncio.sleep(rng.uniform(0, 2))
    cancel = deliver(c, rng, new_event(c.load, patient, CANCELLED, "exit", run), 1)
    if rng.random() < 1 / 3:
        form = deliver(c, rng, new_event(c.load, patient, FORM, "match", run), 1)
        return all(await asyncio.gather(cancel, form))
    return await cancel


MIXES: dict[str, dict[str, Case]] = {
    "13": {"wait": wait_case, "triggered": triggered_case, "race": race_case},
    "14": {"wait": partial(wait_case, ways=2), "triggered": partial(triggered_case, ways=2),
           "race": race_case},
    "15": {"lookback": lookback_case},
    "16": {"exit_delay": exit_delay_case, "exit_wait": exit_wait_case, "race": race_case},
}  # fmt: skip
