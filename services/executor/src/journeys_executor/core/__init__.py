"""The journey state machine: pure, synchronous, no I/O, no clock, no randomness."""

from journeys_executor.core.decide import Decision, Rejection, decide, fail
from journeys_executor.core.erase import ERASED_REASON, Erasure, erase
from journeys_executor.core.evolve import evolve, fold
from journeys_executor.core.inputs import EventInput, ExitRun, MatchEvent, PatientEvent, TriggerRun
from journeys_executor.core.patient import (
    EventPolicy,
    PatientState,
    Reception,
    receive,
    triggered_run_id,
)
from journeys_executor.core.state import RunState

__all__ = [
    "ERASED_REASON",
    "Decision",
    "Erasure",
    "EventInput",
    "EventPolicy",
    "ExitRun",
    "MatchEvent",
    "PatientEvent",
    "PatientState",
    "Reception",
    "Rejection",
    "RunState",
    "TriggerRun",
    "decide",
    "erase",
    "evolve",
    "fail",
    "fold",
    "receive",
    "triggered_run_id",
]
