"""JSON Schemas (draft 2020-12) of everything other teams integrate with, and the CLI keeping them.

`python -m journeys_contracts.schemas write` regenerates `contracts/schemas/<kind>/<type>.json`,
`check` lists drift, `publish` freezes schemas not yet frozen under `published/v1/`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from journeys_contracts.audit import AccessRecorded
from journeys_contracts.commands import COMMAND_TYPES
from journeys_contracts.definition import StrictJourneyDefinition
from journeys_contracts.deliveries import DELIVERY_TYPES
from journeys_contracts.events import EVENT_TYPES, type_of
from journeys_contracts.events_sealed import SEALED_EVENT_TYPES
from journeys_contracts.journeys import JourneyDefined
from journeys_contracts.sealed import clear_type

BASE_URI = "https://schemas.patient-journeys.dev"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Producers write every field (`model_dump_json` excludes nothing), so the wire is the
# serialization shape; readers tolerate added fields, so defaulted fields stay optional.
MODE: JsonSchemaMode = "serialization"
SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
KINDS = ("events", "commands", "journeys", "definition", "audit", "deliveries")
PUBLISHED = Path("published") / "v1"

# Used where a model has no docstring of its own; every contract needs one or the other.
DESCRIPTIONS = {
    "journeys.run.started.v1": "A run began (always seq 1): the patient context and the exact "
    "journey definition the run executes for its whole life.",
    "journeys.node.entered.v1": "The run entered a node of its journey.",
    "journeys.message.requested.v1": "A MESSAGE node asks for `message` to be delivered to the "
    "patient; `messageId` is the channel's idempotency key.",
    "journeys.message.sent.v1": "The channel accepted message `messageId`; the run continues.",
    "journeys.message.failed.v1": "Message `messageId` could not be delivered, finally: every "
    "attempt failed, or a failure another attempt would not change. The run goes on at the "
    "node's `on_failure_next_node_id`, else at its `next_node_id`.",
    "journeys.condition.evaluated.v1": "A CONDITIONAL node was evaluated against the patient "
    "context; `nextNodeId` is the branch taken (null ends the run).",
    "journeys.delay.started.v1": "A DELAY node started timer `timerId`, due at `dueAt`; "
    "the run waits.",
    "journeys.delay.elapsed.v1": "Timer `timerId` fired (never before `dueAt`); the run continues.",
    "journeys.run.completed.v1": "The run reached a null next node and ended (terminal).",
    "journeys.run.failed.v1": "The run cannot continue and ended (terminal).",
    "journeys.run.cancelled.v1": "The run was cancelled before it ended (terminal); its pending "
    "timer, if any, was cancelled with it.",
    "journey-definition.v1": "The body of POST /journeys: a journey as submitted.",
}


class _NoFieldTitles(GenerateJsonSchema):
    """Field titles derived from camelCase aliases ("Journeyid") add noise, not meaning; the
    request body's strict classes are named as the contract they close (`StrictMessageNode` is
    a closed `MessageNode`)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def normalize_name(self, name: str) -> str:
        return super().normalize_name(re.sub(r"\bStrict(?=[A-Z])", "", name))


@dataclass(frozen=True)
class Contract:
    kind: str
    name: str
    model: type[BaseModel]

    @property
    def path(self) -> Path:
        return Path(self.kind) / f"{self.name}.json"

    @property
    def schema_id(self) -> str:
        return f"{BASE_URI}/{self.path.as_posix()}"


def contracts() -> list[Contract]:
    """Every published shape: events, commands, definitions-topic records, the HTTP body, audit
    records, and delivery requests (read by the delivery service alone, but held to the same
    evolution rules: the executor and the delivery service are upgraded one at a time)."""
    return [
        *(Contract("events", type_of(m), m) for m in EVENT_TYPES),
        *(Contract("events", type_of(m), m) for m in SEALED_EVENT_TYPES),
        *(Contract("commands", type_of(m), m) for m in COMMAND_TYPES),
        Contract("journeys", type_of(JourneyDefined), JourneyDefined),
        Contract("definition", "journey-definition.v1", StrictJourneyDefinition),
        Contract("audit", type_of(AccessRecorded), AccessRecorded),
        *(Contract("deliveries", type_of(m), m) for m in DELIVERY_TYPES),
    ]


def _description(name: str) -> str:
    if name in DESCRIPTIONS or not name.endswith(".v2"):
        return DESCRIPTIONS[name]
    clear = next(m for m in EVENT_TYPES if type_of(m) == clear_type(name))
    described = clear.__dict__.get("__doc__") or DESCRIPTIONS[clear_type(name)]
    return (f"{' '.join(described.split())} The `{clear_type(name)}` event with its patient "
            "data sealed under the patient's data key (`patientId`, and `patientContext`, "
            "`message`, `reason`, `note` or `eventData` where present), and `patientKey` "
            "added.")  # fmt: skip


def schema_of(contract: Contract) -> dict[str, Any]:
    generated = contract.model.model_json_schema(
        by_alias=True, mode=MODE, schema_generator=_NoFieldTitles
    )
    description = contract.model.__dict__.get("__doc__") or _description(contract.name)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": contract.schema_id,
        **generated,
        "description": " ".join(description.split()),
    }
    if contract.kind in ("events", "commands", "audit", "deliveries"):
        # decode_event/decode_command dispatch on `type`: a record without it never decodes.
        schema["required"] = ["type", *(f for f in schema["required"] if f != "type")]
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generate() -> dict[Path, str]:
    """Relative path -> file text, for every contract."""
    return {c.path: render(schema_of(c)) for c in contracts()}


def _committed(root: Path) -> set[Path]:
    return {p.relative_to(root) for kind in KINDS for p in (root / kind).glob("*.json")}


def drift(root: Path = SCHEMAS_DIR) -> list[str]:
    """Differences between the committed schemas under `root` and the current models."""
    expected = generate()
    stale = sorted(_committed(root) - set(expected))
    problems = [f"stale: {path} has no model any more" for path in stale]
    for path, text in sorted(expected.items()):
        target = root / path
        if not target.exists():
            problems.append(f"missing: {path}")
        elif target.read_text() != text:
            problems.append(f"differs: {path}")
    return problems


def write(root: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every schema, remove files of models that are gone; returns what changed."""
    expected = generate()
    changed = []
    for path in sorted(_committed(root) - set(expected)):
        (root / path).unlink()
        changed.append(path)
    for path, text in sorted(expected.items()):
        target = root / path
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed


def publish(root: Path = SCHEMAS_DIR) -> list[Path]:
    """Freeze, under published/v1, the schemas of types not frozen yet; never overwrite one."""
    frozen = []
    for path, text in sorted(generate().items()):
        target = root / PUBLISHED / path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            frozen.append(path)
    return frozen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journeys_contracts.schemas")
    parser.add_argument("action", choices=("write", "check", "publish"))
    parser.add_argument("--dir", type=Path, default=SCHEMAS_DIR, help="the schemas directory")
    args = parser.parse_args(argv)
    if args.action == "check":
        problems = drift(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m journeys_contracts.schemas write", file=sys.stderr)
        return 1 if problems else 0
    done = write(args.dir) if args.action == "write" else publish(args.dir)
    for path in done:
        print(f"{args.action}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
