"""Records on `journeys.deliveries.v1`: the messages the executor asks the delivery service to send.

A `journeys.message.requested.v1` event is the public fact that a run asked for a message; the
delivery request beside it, in the same transaction, is the work order: what to send, to whom,
by which channel. It is internal (the delivery service is its only reader) and keyed by the
patient key, on the partition numbered like the command that caused it, so one patient's
requests reach the delivery service in the order their runs made them.

A sealed run's request is `journeys.delivery.requested.v2`: `patientId`, `message`, `phone`,
`email` and `subject` sealed under the patient's data key, which travels wrapped in `dataKey`
(as in `start_run.v2`) so the delivery service can open them. Erasing the patient makes every
copy noise.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid5

from pydantic import Field, TypeAdapter, ValidationError

from journeys_contracts.definition import ChannelName, JourneyDefinition, MessageNode
from journeys_contracts.keys import PatientKey
from journeys_contracts.sealed import SealedValue, WrappedDataKey
from journeys_contracts.templates import TemplateRenderError, render
from journeys_contracts.wire import UtcDatetime, WireModel, raise_for_unknown_type


def _unset(value: object) -> bool:
    return value is None  # as in `events._unset`


class DeliveryRequested(WireModel):
    """Send message `message_id` of run `run_id` (its MESSAGE node `node_id`) to the patient.

    `message_id` is the idempotency key every channel passes to its provider. `channel` is the
    one the node or the patient's context chose; None leaves it to the delivery service's
    default. `attempt` counts sends of this message, from 1."""

    type: Literal["journeys.delivery.requested.v1"] = "journeys.delivery.requested.v1"
    message_id: UUID
    run_id: UUID
    journey_id: UUID
    node_id: str
    patient_key: PatientKey
    patient_id: str
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    message: str
    attempt: Annotated[int, Field(ge=1)] = 1
    requested_at: UtcDatetime
    phone: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The patient context's `phone`, for the SMS channel."""
    email: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The patient context's `email`, for the email channel."""
    subject: Annotated[str | None, Field(exclude_if=_unset)] = None
    """The email's subject: the node's `subject`, else the journey's name."""


def delivery_request(
    *,
    message_id: UUID,
    run_id: UUID,
    journey_id: UUID,
    node_id: str,
    patient_key: str,
    patient_id: str,
    channel: ChannelName | None,
    message: str,
    attempt: int,
    requested_at: datetime,
    context: dict[str, Any],
    definition: JourneyDefinition | None,
) -> DeliveryRequested:
    """The work order of one message (the executor's, and an operator's retry through the
    API): what, to whom (the patient context's `phone` and `email`), by which channel, with
    which subject (the node's `subject` rendered over the context, else the journey's name; a
    subject the context cannot fill falls back to the name: the message itself is rendered,
    and it is what the patient needs)."""
    subject = None
    if definition is not None:
        subject = definition.name
        node = definition.node(node_id)
        if isinstance(node, MessageNode) and node.subject:
            with contextlib.suppress(TemplateRenderError):
                subject = render(node.subject, context)
    return DeliveryRequested(
        message_id=message_id, run_id=run_id, journey_id=journey_id, node_id=node_id,
        patient_key=patient_key, patient_id=patient_id, channel=channel, message=message,
        attempt=attempt, requested_at=requested_at, phone=_text(context.get("phone")),
        email=_text(context.get("email")), subject=subject,
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class DeliveryRequestedSealed(WireModel):
    """`journeys.delivery.requested.v1` with `patientId`, `message` and the address and subject
    sealed, and the data key that opens them wrapped under the deployment's key-encryption
    key."""

    type: Literal["journeys.delivery.requested.v2"] = "journeys.delivery.requested.v2"
    message_id: UUID
    run_id: UUID
    journey_id: UUID
    node_id: str
    patient_key: PatientKey
    patient_id: SealedValue
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset)] = None
    message: SealedValue
    attempt: Annotated[int, Field(ge=1)] = 1
    requested_at: UtcDatetime
    phone: Annotated[SealedValue | None, Field(exclude_if=_unset)] = None
    email: Annotated[SealedValue | None, Field(exclude_if=_unset)] = None
    subject: Annotated[SealedValue | None, Field(exclude_if=_unset)] = None
    data_key: WrappedDataKey


Delivery = Annotated[DeliveryRequested | DeliveryRequestedSealed, Field(discriminator="type")]
DELIVERY_ADAPTER: TypeAdapter[Delivery] = TypeAdapter(Delivery)
DELIVERY_TYPES: tuple[type[WireModel], ...] = (DeliveryRequested, DeliveryRequestedSealed)


def delivery_id(message_id: UUID, attempt: int) -> str:
    """The `ce_id` of a delivery request: one per send of a message."""
    return str(uuid5(message_id, f"delivery:{attempt}"))


def decode_delivery(data: bytes) -> Delivery:
    """Parse a delivery request; raises `UnknownRecordType` for a type of a newer version (skip
    it), pydantic.ValidationError on anything malformed (poison)."""
    try:
        return DELIVERY_ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise_for_unknown_type(exc)
