"""`erase`: a patient's runs end and are forgotten; the events that say so.

Erasure is about a patient, not one run, so it is not a `decide` command: it takes every run
of the patient the partition holds. Each run that has not ended is cancelled as a `CancelRun`
would cancel it (its pending timer with it, no message delivered), and one `PatientErased`
names all of the runs, ended or not, whose state the caller then drops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from journeys_contracts import commands as cmd
from journeys_contracts import events as ev
from journeys_executor.core.decide import Decision, Rejection, decide
from journeys_executor.core.state import RunState

ERASED_REASON = "patient data erased"


@dataclass(frozen=True)
class Erasure:
    cancellations: list[Decision]
    """One per run that had not ended: its `RunCancelled`, and the state it ends in."""
    erased: ev.PatientErased


def erase(states: Iterable[RunState], command: cmd.ErasePatient, now: datetime) -> Erasure:
    """The events erasing `command`'s patient, whose runs are `states` (any order; the runs,
    with those the command names, are listed by run id). No runs (a repeated erasure) still
    answers, with no run ids."""
    runs = sorted(states, key=lambda state: str(state.run_id))
    cancellations = []
    for state in runs:
        if state.ended:
            continue
        cancel = cmd.CancelRun(
            run_id=state.run_id, requested_at=command.requested_at, reason=ERASED_REASON
        )
        decision = decide(state, cancel, now)
        if isinstance(decision, Rejection):  # cannot happen: only ended runs refuse a cancel
            raise RuntimeError(decision.reason)
        cancellations.append(decision)
    erased = ev.PatientErased(
        erasure_id=command.erasure_id,
        patient_key=command.patient_key,
        erased_at=now,
        # The requester's runs too: one the partition has forgotten is still erased downstream.
        run_ids=sorted({state.run_id for state in runs} | set(command.run_ids), key=str),
    )
    return Erasure(cancellations, erased)
