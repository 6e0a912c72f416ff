"""The pure projection: facts in, the row changes of one batch out, coalesced per run.

Every change is idempotent against the tables: journeys and events are insert-if-absent,
a run row is created once (its `created_at` only ever moves earlier), and run fields are
updated only by events newer than the row's `last_seq`; an erasure deletes its runs' rows
and records itself once. So applying a plan twice, or two overlapping plans, leaves the same
rows as applying each fact once, in order.

A sealed run (started by `StartRunSealed`, its events from `journeys.events.v2`) is planned
like an unsealed one, by the `.v1` twin of each event's type; only where patient data goes
differs: its envelopes are kept as they came (the projector has no key to open them).

A patient event (`RecordPatientEvent`, clear or sealed) becomes a receipt: who (the patient
key), what, when and the way in, never the patient's id; its data only when it is a reply to
our messages (sealed as it came, for the patient's conversation). What it did is
read off the runs' events that name its receipt id: `run.started` (a trigger started the run),
`event.matched` (a wait was met) and `run.exited` (the journey's `exit_on` ended it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from pydantic_core import to_json

from journeys_contracts import events as ev
from journeys_contracts import events_sealed as es
from journeys_contracts.audit import AccessRecorded
from journeys_contracts.commands import (
    REPLIED,
    RecordDelivery,
    RecordPatientEvent,
    RecordPatientEventSealed,
    RetryMessage,
    StartRun,
    StartRunSealed,
)
from journeys_contracts.journeys import JourneyDefined
from journeys_contracts.keys import patient_key
from journeys_contracts.sealed import clear_type
from journeys_contracts.statuses import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    WAITING_DELAY,
    WAITING_EVENT,
)
from journeys_projector.decode import ConsentFact, Fact, UnknownSealedEvent

RUN_FIELDS = (
    "status", "current_node_id", "wake_at", "error", "error_sealed", "waiting_event_type",
    "waiting_until",
)  # fmt: skip

STARTED, RESUMED, EXITED = "started", "resumed", "exited"
"""What a patient event did to a run (`event_effects.effect`)."""

RunEventFact = ev.RunEvent | ev.UnknownEvent | es.SealedRunEvent | UnknownSealedEvent


@dataclass(frozen=True)
class JourneyRow:
    journey_id: UUID
    name: str
    definition: str
    created_at: datetime


@dataclass(frozen=True)
class RunRow:
    """A run as first known, `queued`; inserted if absent (else `created_at` may move earlier).

    Unsealed: `patient_id` and `patient_context` in clear, `patient_id_sealed` None. Sealed:
    `patient_id` None, `patient_id_sealed` and `patient_context` the envelopes' JSON."""

    run_id: UUID
    journey_id: UUID
    patient_id: str | None
    patient_id_sealed: str | None
    patient_context: str
    patient_key: str
    created_at: datetime

    @classmethod
    def clear(cls, fact: StartRun | ev.RunStarted, secret: str, created_at: datetime) -> RunRow:
        return cls(fact.run_id, fact.journey_id, fact.patient_id, None,
                   _json(fact.patient_context), patient_key(secret, fact.patient_id),
                   created_at)  # fmt: skip

    @classmethod
    def sealed(cls, fact: StartRunSealed | es.RunStartedSealed, created_at: datetime) -> RunRow:
        return cls(fact.run_id, fact.journey_id, None, _envelope(fact.patient_id),
                   _envelope(fact.patient_context), fact.patient_key, created_at)  # fmt: skip


@dataclass(frozen=True)
class EventRow:
    run_id: UUID
    seq: int
    type: str
    occurred_at: datetime
    data: str


@dataclass(frozen=True)
class AuditRow:
    audit_id: UUID
    occurred_at: datetime
    subject: str | None
    action: str
    method: str
    route: str
    status: int
    outcome: str
    request_id: str
    journey_id: UUID | None
    run_ids: list[UUID]
    patient_keys: list[str]

    @classmethod
    def of(cls, record: AccessRecorded) -> AuditRow:
        return cls(
            record.audit_id, record.occurred_at, record.subject, record.action.value,
            record.method, record.route, record.status, record.outcome.value,
            record.request_id, record.journey_id, list(record.run_ids),
            list(record.patient_keys),
        )  # fmt: skip


@dataclass(frozen=True)
class ConsentRow:
    """A patient's consent to one channel as last set, and by which command (its offset on
    the commands partition orders a patient's changes)."""

    patient_key: str
    channel: str
    granted: bool
    source: str
    consent_id: UUID
    changed_at: datetime
    command_offset: int


@dataclass(frozen=True)
class RetryRow:
    """An operator's retry of a message: attempt `attempt` of message `message_id`."""

    message_id: UUID
    attempt: int
    run_id: UUID
    requested_at: datetime


@dataclass(frozen=True)
class ReportRow:
    """The delivery service's report of one attempt; kept only where it answers a retry."""

    message_id: UUID
    attempt: int
    delivered: bool
    channel: str
    reason: str | None
    reported_at: datetime


@dataclass(frozen=True)
class ErasureRow:
    """A patient's erasure: its runs' rows go, and its run ids are remembered so no replay
    brings them back."""

    erasure_id: UUID
    patient_key: str
    erased_at: datetime
    run_ids: tuple[UUID, ...]

    @classmethod
    def of(cls, event: ev.PatientErased) -> ErasureRow:
        return cls(event.erasure_id, event.patient_key, event.erased_at, tuple(event.run_ids))


@dataclass(frozen=True)
class ReceiptRow:
    """A patient event as a way in recorded it: never the patient's id. Its data only for a
    reply (`REPLIED`), for the patient's conversation: sealed as it came (`data_sealed`, the
    envelope's JSON), or clear from a clear command (`data`, None if PostgreSQL would refuse
    its JSON: a U+0000 in it)."""

    receipt_id: UUID
    event_id: str
    patient_key: str
    event_type: str
    source: str
    occurred_at: datetime
    received_at: datetime
    data: str | None = None
    data_sealed: str | None = None

    @classmethod
    def of(cls, command: RecordPatientEvent | RecordPatientEventSealed) -> ReceiptRow:
        data = sealed = None
        if command.event_type == REPLIED:
            text = to_json(command.event_data).decode()
            if isinstance(command, RecordPatientEventSealed):
                sealed = text
            elif "\\u0000" not in text:
                data = text
        return cls(command.receipt_id, command.event_id, command.patient_key,
                   command.event_type, command.source, command.occurred_at,
                   command.received_at, data, sealed)  # fmt: skip


@dataclass(frozen=True)
class ClinicEventRow:
    """A patient event's figures for its clinic's weekly analytics, apart from the patient:
    `fact_id` is an HMAC of the receipt id under the deployment's secret."""

    fact_id: str
    clinic_id: str
    event_type: str
    occurred_at: datetime
    revenue: Decimal | None
    treatment_type: str | None

    @classmethod
    def of(
        cls, command: RecordPatientEvent | RecordPatientEventSealed, secret: str
    ) -> ClinicEventRow | None:
        facts = command.clinic
        if facts is None:
            return None
        fact_id = hmac.new(secret.encode(), f"clinic-event:{command.receipt_id}".encode(),
                           hashlib.sha256).hexdigest()  # fmt: skip
        revenue = Decimal(facts.revenue_amount) if facts.revenue_amount else None
        return cls(fact_id, facts.clinic_id, command.event_type, command.occurred_at, revenue,
                   facts.treatment_type)  # fmt: skip


@dataclass(frozen=True)
class EffectRow:
    """Run `run_id` was started, resumed or exited by the event of `receipt_id`, as its event
    `seq` says."""

    receipt_id: UUID
    run_id: UUID
    seq: int
    journey_id: UUID
    effect: str
    node_id: str | None
    occurred_at: datetime


@dataclass
class RunChange:
    """The run fields the batch's events set, each with the seq of the event that set it last.

    The store applies a field only if its seq is newer than the row's `last_seq`: exactly
    what applying the events one by one, skipping those already applied, would leave.
    """

    run_id: UUID
    last_seq: int = 0
    updated_at: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)

    def apply(self, event: RunEventFact) -> None:
        for name, value in run_fields(event).items():
            if event.seq > self.seqs.get(name, 0):
                self.values[name], self.seqs[name] = value, event.seq
        if event.seq > self.last_seq:
            self.last_seq, self.updated_at = event.seq, event.occurred_at


@dataclass
class Plan:
    patient_key_secret: str
    """Keys the patient ids of unsealed runs, as the API and the executor do."""
    journeys: dict[UUID, JourneyRow] = field(default_factory=dict)
    runs: dict[UUID, RunRow] = field(default_factory=dict)
    events: dict[tuple[UUID, int], EventRow] = field(default_factory=dict)
    changes: dict[UUID, RunChange] = field(default_factory=dict)
    audits: dict[UUID, AuditRow] = field(default_factory=dict)
    erasures: dict[UUID, ErasureRow] = field(default_factory=dict)
    receipts: dict[UUID, ReceiptRow] = field(default_factory=dict)
    effects: dict[tuple[UUID, int], EffectRow] = field(default_factory=dict)
    consents: dict[tuple[str, str], ConsentRow] = field(default_factory=dict)
    retries: dict[UUID, RetryRow] = field(default_factory=dict)
    clinic_events: dict[str, ClinicEventRow] = field(default_factory=dict)
    reports: dict[tuple[UUID, int], ReportRow] = field(default_factory=dict)

    def add(self, fact: Fact) -> None:
        if isinstance(fact, JourneyDefined):
            self._journey(fact)
        elif isinstance(fact, AccessRecorded):
            self.audits.setdefault(fact.audit_id, AuditRow.of(fact))
        elif isinstance(fact, ev.PatientErased):
            self.erasures.setdefault(fact.erasure_id, ErasureRow.of(fact))
        elif isinstance(fact, StartRun):
            self._run(RunRow.clear(fact, self.patient_key_secret, fact.requested_at))
        elif isinstance(fact, StartRunSealed):
            self._run(RunRow.sealed(fact, fact.requested_at))
        elif isinstance(fact, RecordPatientEvent | RecordPatientEventSealed):
            self.receipts.setdefault(fact.receipt_id, ReceiptRow.of(fact))
            clinic_event = ClinicEventRow.of(fact, self.patient_key_secret)
            if clinic_event is not None:
                self.clinic_events.setdefault(clinic_event.fact_id, clinic_event)
        elif isinstance(fact, ConsentFact):
            self._consent(fact)
        elif isinstance(fact, RetryMessage):
            r = fact.request
            self.retries.setdefault(
                r.message_id, RetryRow(r.message_id, r.attempt, r.run_id, fact.requested_at)
            )
        elif isinstance(fact, RecordDelivery):
            if fact.attempt < 2:  # a retry is never a message's first attempt
                return
            self.reports.setdefault((fact.message_id, fact.attempt), ReportRow(
                fact.message_id, fact.attempt, fact.delivered, fact.channel, fact.reason, fact.at,
            ))  # fmt: skip
        else:
            self._event(fact)

    def _consent(self, fact: ConsentFact) -> None:
        c = fact.command
        for channel, granted in c.channels.items():
            key = (c.patient_key, channel)
            known = self.consents.get(key)
            if known is None or fact.offset > known.command_offset:
                self.consents[key] = ConsentRow(
                    c.patient_key, channel, granted, c.source, c.consent_id, c.changed_at,
                    fact.offset,
                )  # fmt: skip

    def _journey(self, fact: JourneyDefined) -> None:
        if fact.journey_id not in self.journeys:
            self.journeys[fact.journey_id] = JourneyRow(
                fact.journey_id,
                fact.definition.name,
                fact.definition.model_dump_json(),
                fact.created_at,
            )

    def _run(self, row: RunRow) -> None:
        known = self.runs.get(row.run_id)
        if known is None or row.created_at < known.created_at:
            self.runs[row.run_id] = row

    def _event(self, event: RunEventFact) -> None:
        key = (event.run_id, event.seq)
        if key in self.events:
            return
        self.events[key] = EventRow(
            event.run_id, event.seq, event.type, event.occurred_at,
            event.model_dump_json(by_alias=True),
        )  # fmt: skip
        # Commands and events are separate topics: the run may be news to us here.
        if isinstance(event, ev.RunStarted):
            self._run(RunRow.clear(event, self.patient_key_secret, event.occurred_at))
        elif isinstance(event, es.RunStartedSealed):
            self._run(RunRow.sealed(event, event.occurred_at))
        self.changes.setdefault(event.run_id, RunChange(event.run_id)).apply(event)
        effect = effect_of(event)
        if effect is not None:
            self.effects[key] = effect


def plan(facts: list[Fact], patient_key_secret: str) -> Plan:
    """The row changes of a batch of facts, in the order they were consumed."""
    out = Plan(patient_key_secret)
    for fact in facts:
        out.add(fact)
    return out


_NOT_WAITING: dict[str, Any] = {"waiting_event_type": None, "waiting_until": None}
_ENDED: dict[str, Any] = {"wake_at": None, **_NOT_WAITING}

# By `.v1` type: a `.v2` event has the same fields under the same names, so it is read by its
# v1 twin's entry (its sealed `reason` is redirected to `error_sealed` by `run_fields`).
_RUN_FIELDS: dict[str, Callable[[Any], dict[str, Any]]] = {
    ev.type_of(ev.RunStarted): lambda e: {"status": IN_PROGRESS,
                                          "current_node_id": e.start_node_id},
    ev.type_of(ev.NodeEntered): lambda e: {"status": IN_PROGRESS, "current_node_id": e.node_id},
    ev.type_of(ev.DelayStarted): lambda e: {"status": WAITING_DELAY, "wake_at": e.due_at},
    ev.type_of(ev.DelayElapsed): lambda e: {"status": IN_PROGRESS, "wake_at": None},
    ev.type_of(ev.EventWaiting): lambda e: {"status": WAITING_EVENT,
                                            "waiting_event_type": e.event_type,
                                            "waiting_until": e.due_at},
    ev.type_of(ev.EventMatched): lambda e: {"status": IN_PROGRESS, **_NOT_WAITING},
    ev.type_of(ev.EventTimedOut): lambda e: {"status": IN_PROGRESS, **_NOT_WAITING},
    ev.type_of(ev.RunCompleted): lambda e: {"status": COMPLETED, **_ENDED},
    ev.type_of(ev.RunFailed): lambda e: {"status": FAILED, "error": e.reason, **_ENDED},
    ev.type_of(ev.RunCancelled): lambda e: {"status": CANCELLED, **_ENDED},
}  # fmt: skip


def run_fields(event: RunEventFact) -> dict[str, Any]:
    """The run-row fields one event sets; events not listed here only enter the timeline (and
    advance the run's `last_seq`). An event of a type this version does not know sets none:
    only the version that knows it can say what it changes."""
    if isinstance(event, ev.UnknownEvent | UnknownSealedEvent):
        return {}
    sealed = isinstance(event, es.SealedEventBase)
    read = _RUN_FIELDS.get(clear_type(event.type) if sealed else event.type)
    if read is None:
        return {}
    fields = read(event)
    if sealed and "error" in fields:
        fields["error_sealed"] = _envelope(fields.pop("error"))
    return fields


def effect_of(event: RunEventFact) -> EffectRow | None:
    """What the patient event named by `event` did to its run, if `event` names one."""
    receipt: UUID | None
    match event:
        case ev.RunStarted() | es.RunStartedSealed():
            effect, receipt, node_id = STARTED, event.trigger_receipt_id, None
        case ev.EventMatched() | es.EventMatchedSealed():
            effect, receipt, node_id = RESUMED, event.receipt_id, event.node_id
        case ev.RunExited() | es.RunExitedSealed():
            effect, receipt, node_id = EXITED, event.receipt_id, event.node_id
        case _:
            return None
    if receipt is None:
        return None
    return EffectRow(receipt, event.run_id, event.seq, event.journey_id, effect, node_id,
                     event.occurred_at)  # fmt: skip


def _envelope(value: BaseModel) -> str:
    return value.model_dump_json()


def _json(value: Any) -> str:
    return to_json(value).decode()
