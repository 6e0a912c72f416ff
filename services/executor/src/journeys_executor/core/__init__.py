"""The journey state machine: pure, synchronous, no I/O, no clock, no randomness."""

from journeys_executor.core.decide import Decision, Rejection, decide, fail
from journeys_executor.core.evolve import evolve, fold
from journeys_executor.core.state import RunState

__all__ = ["Decision", "Rejection", "RunState", "decide", "evolve", "fail", "fold"]
