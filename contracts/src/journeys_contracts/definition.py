"""Journey definitions: the wire shape upstream systems submit, and its graph rules.

Two variants of one shape. `JourneyDefinition` (and its nodes and condition) is what Kafka
records carry: it ignores fields it does not know, so a later version may add an optional node
field without breaking readers that are still running the old version. `StrictJourneyDefinition`
is what the API accepts: an unknown field there is a client's typo, refused with a 422. The
strict classes subclass the tolerant ones, so a strict definition goes wherever a tolerant one
is expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from journeys_contracts.templates import template_errors

Operator = Literal[
    "==", "!=", ">", ">=", "<", "<=",
    "eq", "ne", "gt", "gte", "lt", "lte",
    "in", "not_in", "exists", "contains",
]  # fmt: skip

NodeId = Annotated[str, Field(min_length=1, max_length=200)]

EVENT_TYPE_PATTERN = r"^[a-z0-9_.-]+$"
EventType = Annotated[str, Field(min_length=1, max_length=200, pattern=EVENT_TYPE_PATTERN)]
"""A patient event's type, as upstream systems name it: `appointment.booked`."""

MAX_WAIT_SECONDS = 5 * 366 * 86400
"""The longest DELAY or WAIT_FOR_EVENT timeout: five years."""

_EXAMPLE: dict[str, Any] = {
    "name": "Hip replacement recovery",
    "start_node_id": "welcome",
    "nodes": [
        {"id": "welcome", "type": "MESSAGE", "message": "Welcome!", "next_node_id": "age_check"},
        {
            "id": "age_check",
            "type": "CONDITIONAL",
            "condition": {"field": "age", "operator": ">", "value": 65},
            "on_true_next_node_id": "wait",
            "on_false_next_node_id": None,
        },
        {"id": "wait", "type": "DELAY", "duration_seconds": 86400, "next_node_id": "checkin"},
        {
            "id": "checkin",
            "type": "MESSAGE",
            "message": "How is your recovery going?",
            "next_node_id": None,
        },
    ],
}


def _unset(value: Any) -> bool:
    """Optional node fields added later are left out while unset, so a definition that uses
    none of them serializes byte for byte as before them."""
    return value is None


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Condition(_Tolerant):
    """A test of one patient-context field; `field` is a dotted path (`patient.` optional)."""

    field: Annotated[str, Field(min_length=1, max_length=200)]
    operator: Operator
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Condition:
        if self.operator in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"operator '{self.operator}' needs a list value")
        # `0 in (None, True, False)` is true in Python: test the type, not equality.
        if self.operator == "exists" and not (self.value is None or isinstance(self.value, bool)):
            raise ValueError("operator 'exists' takes no value, or true/false")
        if self.operator in (">", ">=", "<", "<=", "gt", "gte", "lt", "lte") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float | str)
        ):
            raise ValueError(f"operator '{self.operator}' needs a number or string value")
        return self


ChannelName = Literal["sms", "email", "webhook", "console"]
"""Where a message goes: an SMS gateway, SMTP, the deployment's own messaging gateway (a signed
HTTP POST), or the delivery service's log (local runs)."""
CHANNELS: frozenset[str] = frozenset(get_args(ChannelName))

CHANNEL = (
    "The channel to send by. Unset: the patient context's `preferred_channel`, if it names "
    "one, else the delivery service's default (`DELIVERY_DEFAULT_CHANNEL`)."
)


ON_FAILURE = (
    "Where the run goes when the message finally cannot be delivered (every attempt failed, or "
    "a failure that another attempt would not change). Unset: the run goes on to "
    "`next_node_id` as after a sent message; the failure is in its timeline either way."
)


SUBJECT = "The email's subject line (the email channel only); unset: the journey's name."
TEMPLATES = (
    'The message per language (`{"en": "...", "es": "..."}`): the patient context\'s '
    "`language` chooses (an exact tag, else its primary subtag), falling back to `message`. "
    "`message`, each template and `subject` are Jinja2 templates over the patient context "
    "(`{{ first_name }}`), rendered in a sandbox; a field the context lacks fails the message "
    "(`message.failed`, reason `template`)."
)
LanguageTag = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")]
"""A BCP 47 language tag as patient contexts carry it: `en`, `es`, `es-MX`, `pt-BR`."""


class MessageNode(_Tolerant):
    """Send `message` to the patient, then continue to `next_node_id`."""

    id: NodeId
    type: Literal["MESSAGE"]
    message: Annotated[str, Field(min_length=1, max_length=10_000)]
    next_node_id: NodeId | None = None
    channel: Annotated[ChannelName | None, Field(exclude_if=_unset, description=CHANNEL)] = None
    on_failure_next_node_id: Annotated[
        NodeId | None, Field(exclude_if=_unset, description=ON_FAILURE)
    ] = None
    subject: Annotated[
        str | None, Field(min_length=1, max_length=200, exclude_if=_unset, description=SUBJECT)
    ] = None
    templates: Annotated[
        dict[LanguageTag, Annotated[str, Field(min_length=1, max_length=10_000)]] | None,
        Field(max_length=50, exclude_if=_unset, description=TEMPLATES),
    ] = None


class EventMatch(_Tolerant):
    """Patient events of type `event`, and, when `when` is set, only those it holds for. The
    condition's dotted path reads `event.type`, `event.id`, `event.occurredAt` and
    `event.data.*` beside the patient context."""

    event: EventType
    when: Condition | None = None


class DelayNode(_Tolerant):
    """Wait `duration_seconds`, surviving any restart, then continue."""

    id: NodeId
    type: Literal["DELAY"]
    # strict: `true` or `"5"` must be a 422, never a coerced 1- or 5-second delay.
    duration_seconds: Annotated[
        float, Field(strict=True, ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)
    ]
    next_node_id: NodeId | None = None


class ConditionalNode(_Tolerant):
    """Evaluate `condition` against the patient context and branch."""

    id: NodeId
    type: Literal["CONDITIONAL"]
    condition: Condition
    on_true_next_node_id: NodeId | None = None
    on_false_next_node_id: NodeId | None = None


class WaitForEventNode(_Tolerant):
    """Wait for a patient event of type `event` (for which `when` holds) for at most
    `timeout_seconds`; continue at `on_event_next_node_id` when it comes, else at
    `on_timeout_next_node_id` (null ends the run, as elsewhere). An event that arrived up to
    `lookback_seconds` before the wait began counts as if it came during it. The event's data
    joins the run's context under `events.<node id>`."""

    id: NodeId
    type: Literal["WAIT_FOR_EVENT"]
    event: EventType
    when: Condition | None = None
    timeout_seconds: Annotated[
        float, Field(strict=True, gt=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)
    ]
    lookback_seconds: Annotated[
        float, Field(strict=True, ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)
    ] = 0
    # Both required, null allowed: a missing branch is a client's mistake, a null one ends.
    on_event_next_node_id: NodeId | None
    on_timeout_next_node_id: NodeId | None


AnyNode = MessageNode | DelayNode | ConditionalNode | WaitForEventNode
Node = Annotated[AnyNode, Field(discriminator="type")]

Reentry = Literal["always", "if_not_active", "once"]


QUIET_HOURS = (
    "When this journey's messages may not go out, `HH:MM-HH:MM` in the patient's time zone "
    "(the context's `timezone`, IANA): `21:00-08:00` crosses midnight; equal ends mean never. "
    "A message due inside is deferred to the first minute after (`message.deferred`). Unset: "
    "the deployment's `EXECUTOR_QUIET_HOURS`."
)
QuietWindow = Annotated[
    str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$")
]

TRIGGERS = "Patient events that start a run of this journey for their patient."
REENTRY = (
    "Whether a trigger starts a run for a patient who already has one: `always`; "
    "`if_not_active` (the default: not while the patient has a run of this journey that has "
    "not ended); `once` (never again once a trigger started one for the patient)."
)
EXIT_ON = "Patient events that end the patient's active runs of this journey (`cancelled`)."


def _empty(value: Any) -> bool:
    return not value


def _default_reentry(value: Any) -> bool:
    return value == "if_not_active"


class JourneyDefinition(_Tolerant):
    """A journey as submitted: a graph of nodes entered at `start_node_id`."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    name: Annotated[str, Field(min_length=1, max_length=200)]
    start_node_id: NodeId
    nodes: Annotated[list[Node], Field(min_length=1, max_length=1000)]
    # The event fields are left out of records while unset (`exclude_if`), so a journey that
    # uses none of them travels exactly as it did before they existed.
    triggers: Annotated[
        list[EventMatch], Field(max_length=50, exclude_if=_empty, description=TRIGGERS)
    ] = []
    reentry: Annotated[Reentry, Field(exclude_if=_default_reentry, description=REENTRY)] = (
        "if_not_active"
    )
    exit_on: Annotated[
        list[EventMatch], Field(max_length=50, exclude_if=_empty, description=EXIT_ON)
    ] = []
    quiet_hours: Annotated[
        QuietWindow | None, Field(exclude_if=_unset, description=QUIET_HOURS)
    ] = None

    def node(self, node_id: str) -> AnyNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


# The strict classes keep their tolerant parent's title and description: in the published
# JSON Schema of the request body they are the same contract, only closed.


class StrictCondition(Condition):
    """A test of one patient-context field; `field` is a dotted path (`patient.` optional)."""

    model_config = ConfigDict(extra="forbid", title="Condition")


class StrictMessageNode(MessageNode):
    """Send `message` to the patient, then continue to `next_node_id`."""

    model_config = ConfigDict(extra="forbid", title="MessageNode")


class StrictDelayNode(DelayNode):
    """Wait `duration_seconds`, surviving any restart, then continue."""

    model_config = ConfigDict(extra="forbid", title="DelayNode")


class StrictConditionalNode(ConditionalNode):
    """Evaluate `condition` against the patient context and branch."""

    model_config = ConfigDict(extra="forbid", title="ConditionalNode")

    condition: StrictCondition


class StrictEventMatch(EventMatch):
    """Patient events of type `event`, and, when `when` is set, only those it holds for. The
    condition's dotted path reads `event.type`, `event.id`, `event.occurredAt` and
    `event.data.*` beside the patient context."""

    model_config = ConfigDict(extra="forbid", title="EventMatch")

    when: StrictCondition | None = None


class StrictWaitForEventNode(WaitForEventNode):
    """Wait for a patient event of type `event` (for which `when` holds) for at most
    `timeout_seconds`; continue at `on_event_next_node_id` when it comes, else at
    `on_timeout_next_node_id` (null ends the run, as elsewhere). An event that arrived up to
    `lookback_seconds` before the wait began counts as if it came during it. The event's data
    joins the run's context under `events.<node id>`."""

    model_config = ConfigDict(extra="forbid", title="WaitForEventNode")

    when: StrictCondition | None = None


StrictNode = Annotated[
    StrictMessageNode | StrictDelayNode | StrictConditionalNode | StrictWaitForEventNode,
    Field(discriminator="type"),
]


class StrictJourneyDefinition(JourneyDefinition):
    """A journey as submitted: a graph of nodes entered at `start_node_id`."""

    model_config = ConfigDict(extra="forbid", title="JourneyDefinition")

    # A list of the strict nodes where the parent has a list of nodes: list is invariant.
    nodes: Annotated[list[StrictNode], Field(min_length=1, max_length=1000)]  # type: ignore[assignment]
    triggers: Annotated[
        list[StrictEventMatch], Field(max_length=50, exclude_if=_empty, description=TRIGGERS)
    ] = []  # type: ignore[assignment]
    exit_on: Annotated[
        list[StrictEventMatch], Field(max_length=50, exclude_if=_empty, description=EXIT_ON)
    ] = []  # type: ignore[assignment]


@dataclass(frozen=True)
class GraphError:
    """One broken graph rule, located like a pydantic error (`loc` under the body)."""

    loc: tuple[str | int, ...]
    msg: str


def successors(node: AnyNode) -> Iterator[tuple[str, str]]:
    """Yield (field name, target id) for every outgoing edge of a node."""
    if isinstance(node, ConditionalNode):
        if node.on_true_next_node_id is not None:
            yield "on_true_next_node_id", node.on_true_next_node_id
        if node.on_false_next_node_id is not None:
            yield "on_false_next_node_id", node.on_false_next_node_id
    elif isinstance(node, WaitForEventNode):
        if node.on_event_next_node_id is not None:
            yield "on_event_next_node_id", node.on_event_next_node_id
        if node.on_timeout_next_node_id is not None:
            yield "on_timeout_next_node_id", node.on_timeout_next_node_id
    elif node.next_node_id is not None:
        yield "next_node_id", node.next_node_id
    if isinstance(node, MessageNode) and node.on_failure_next_node_id is not None:
        yield "on_failure_next_node_id", node.on_failure_next_node_id


def graph_errors(definition: JourneyDefinition) -> list[GraphError]:
    """Check the graph rules (ids unique, every reference and the start resolve, every node
    reachable, every cycle passes a positive DELAY or a WAIT_FOR_EVENT); an empty list means
    the graph is sound."""
    errors: list[GraphError] = []
    index: dict[str, int] = {}
    for i, node in enumerate(definition.nodes):
        if node.id in index:
            errors.append(
                GraphError(
                    ("nodes", i, "id"),
                    f"node id '{node.id}' repeats the id of nodes[{index[node.id]}]",
                )
            )
        else:
            index[node.id] = i
    if definition.start_node_id not in index:
        errors.append(
            GraphError(
                ("start_node_id",),
                f"start_node_id '{definition.start_node_id}' does not match any node id",
            )
        )
    for i, node in enumerate(definition.nodes):
        for field, target in successors(node):
            if target not in index:
                errors.append(
                    GraphError(("nodes", i, field), f"'{target}' does not match any node id")
                )
    if errors:
        return errors
    errors.extend(_unreachable(definition, index))
    errors.extend(_delay_free_cycles(definition, index))
    return errors


def template_errors_of(definition: JourneyDefinition) -> list[GraphError]:
    """Every MESSAGE text, template and subject that is not a valid template (its syntax; a
    field the context lacks can only be known when a run renders it)."""
    errors: list[GraphError] = []
    for i, node in enumerate(definition.nodes):
        if not isinstance(node, MessageNode):
            continue
        texts: list[tuple[tuple[str | int, ...], str]] = [(("nodes", i, "message"), node.message)]
        if node.subject is not None:
            texts.append((("nodes", i, "subject"), node.subject))
        for language, text in (node.templates or {}).items():
            texts.append((("nodes", i, "templates", language), text))
        for loc, text in texts:
            problem = template_errors(text)
            if problem is not None:
                errors.append(GraphError(loc, problem))
    return errors


def _unreachable(definition: JourneyDefinition, index: dict[str, int]) -> list[GraphError]:
    seen = {definition.start_node_id}
    stack = [definition.start_node_id]
    while stack:
        for _, target in successors(definition.nodes[index[stack.pop()]]):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return [
        GraphError(
            ("nodes", i, "id"),
            f"node '{n.id}' is unreachable from start_node_id '{definition.start_node_id}'",
        )
        for i, n in enumerate(definition.nodes)
        if n.id not in seen
    ]


def _delay_free_cycles(definition: JourneyDefinition, index: dict[str, int]) -> list[GraphError]:
    """Find cycles that can loop without waiting: edges leaving a positive DELAY or a
    WAIT_FOR_EVENT are cut. (A wait met at once by a look-back event consumes that event: the
    run's next wait only sees events after it, so such a loop ends when they do.)"""

    def edges(node_id: str) -> list[str]:
        node = definition.nodes[index[node_id]]
        if isinstance(node, WaitForEventNode):
            return []
        if isinstance(node, DelayNode) and node.duration_seconds > 0:
            return []
        # Both branches of a CONDITIONAL may name one node: walk it (and report its cycle) once.
        return list(dict.fromkeys(target for _, target in successors(node)))

    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(index, white)
    errors: list[GraphError] = []
    for root in index:
        if colour[root] != white:
            continue
        path: list[str] = [root]
        iters = [iter(edges(root))]
        colour[root] = grey
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iters.pop()
            elif colour[nxt] == grey:
                cycle = [*path[path.index(nxt) :], nxt]
                errors.append(
                    GraphError(
                        ("nodes", index[nxt], "id"),
                        f"cycle {' -> '.join(cycle)} can loop without passing a DELAY "
                        "with duration_seconds > 0 or a WAIT_FOR_EVENT",
                    )
                )
            elif colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iters.append(iter(edges(nxt)))
    return errors
