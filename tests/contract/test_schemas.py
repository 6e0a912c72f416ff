"""The committed JSON Schemas: in step with the models, and only ever evolved additively."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from jsonschema import Draft202012Validator

from journeys_contracts import schemas
from journeys_contracts.events import EventBase
from tests.contract.compat import breaking_changes

ROOT = schemas.SCHEMAS_DIR
PUBLISHED = ROOT / schemas.PUBLISHED
ACCEPTED = ROOT / "published" / "accepted-changes.json"
WRITE = "python -m journeys_contracts.schemas write"
GENERATED = {str(path): json.loads(text) for path, text in schemas.generate().items()}


def committed(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for kind in schemas.KINDS for p in (root / kind).glob("*.json")
    )


def test_committed_schemas_equal_the_generated_ones() -> None:
    problems = schemas.drift()
    assert not problems, f"schemas drifted from the models; run `{WRITE}`:\n" + "\n".join(problems)


def test_every_schema_is_a_valid_2020_12_schema_with_id_title_and_description() -> None:
    for path, schema in GENERATED.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://schemas.patient-journeys.dev/{path}"
        assert schema["title"], path
        assert schema["description"], path


def test_events_and_commands_require_their_type() -> None:
    for path, schema in GENERATED.items():
        if path.startswith(("events/", "commands/")):
            assert schema["required"][0] == "type", path
            assert schema["properties"]["type"]["const"] == Path(path).stem


@pytest.mark.parametrize("path", committed(ROOT))
def test_current_models_evolve_committed_schemas_additively(path: str) -> None:
    old = json.loads((ROOT / path).read_text())
    assert breaking_changes(old, GENERATED[path]) == []


def accepted_changes() -> dict[str, set[str]]:
    """The reviewed exceptions: changes that needed every reader upgraded first, by schema."""
    accepted: dict[str, set[str]] = {}
    for entry in json.loads(ACCEPTED.read_text()):
        assert entry["reason"].strip(), "every accepted change says why it is safe"
        for path in entry["schemas"]:
            accepted.setdefault(path, set()).update(entry["changes"])
    return accepted


@pytest.mark.parametrize("path", committed(PUBLISHED))
def test_current_models_evolve_published_v1_schemas_additively(path: str) -> None:
    assert path in GENERATED, f"published type {path} was removed: a breaking change"
    old = json.loads((PUBLISHED / path).read_text())
    problems = breaking_changes(old, GENERATED[path])
    unexpected = [p for p in problems if p not in accepted_changes().get(path, set())]
    assert unexpected == [], (
        f"{path} breaks its published v1 schema: add optional fields instead, publish a v2 "
        f"type, or (a change readers must take first) list it with its reason in {ACCEPTED}:\n"
        + "\n".join(unexpected)
    )


def test_every_accepted_change_is_one_the_check_still_finds() -> None:
    """An exception nobody needs any more would silently accept the next change like it."""
    for path, changes in accepted_changes().items():
        problems = breaking_changes(json.loads((PUBLISHED / path).read_text()), GENERATED[path])
        assert sorted(changes - set(problems)) == [], f"stale entries for {path} in {ACCEPTED}"


def test_every_type_is_frozen_as_published() -> None:
    missing = sorted(set(GENERATED) - set(committed(PUBLISHED)))
    assert not missing, f"run `python -m journeys_contracts.schemas publish` to freeze {missing}"


def test_check_reports_drift_and_write_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert schemas.main(["check", "--dir", str(tmp_path)]) == 1
    assert schemas.main(["write", "--dir", str(tmp_path)]) == 0
    assert schemas.main(["check", "--dir", str(tmp_path)]) == 0
    run_started = tmp_path / "events" / "journeys.run.started.v1.json"
    run_started.write_text("{}\n")
    (tmp_path / "events" / "journeys.run.renamed.v1.json").write_text("{}\n")
    capsys.readouterr()

    assert schemas.main(["check", "--dir", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "differs: events/journeys.run.started.v1.json" in err
    assert "stale: events/journeys.run.renamed.v1.json" in err
    assert WRITE in err
    assert schemas.main(["write", "--dir", str(tmp_path)]) == 0
    assert schemas.drift(tmp_path) == []
    assert not (tmp_path / "events" / "journeys.run.renamed.v1.json").exists()


def test_files_are_sorted_two_space_json_with_a_trailing_newline(tmp_path: Path) -> None:
    schemas.write(tmp_path)
    text = (tmp_path / "commands" / "journeys.command.fire_timer.v1.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_publish_never_overwrites_a_frozen_schema(tmp_path: Path) -> None:
    frozen = tmp_path / schemas.PUBLISHED / "events" / "journeys.run.failed.v1.json"
    frozen.parent.mkdir(parents=True)
    frozen.write_text('{"frozen": true}\n')

    published = schemas.publish(tmp_path)

    assert frozen.read_text() == '{"frozen": true}\n'
    assert Path("events/journeys.run.failed.v1.json") not in published
    assert len(published) == len(GENERATED) - 1


class RunCompletedWithoutLastNode(EventBase):
    """A would-be change that drops `lastNodeId`: the published schema must catch it."""

    type: Literal["journeys.run.completed.v1"] = "journeys.run.completed.v1"


def test_a_breaking_model_change_is_caught_against_the_published_schema() -> None:
    path = "events/journeys.run.completed.v1.json"
    contract = schemas.Contract("events", "journeys.run.completed.v1", RunCompletedWithoutLastNode)

    problems = breaking_changes(
        json.loads((PUBLISHED / path).read_text()), schemas.schema_of(contract)
    )

    assert problems == ["$.lastNodeId: property removed"]
