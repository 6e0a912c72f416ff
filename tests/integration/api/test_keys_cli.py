"""`python -m journeys_api keys create|list|revoke` against a real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from journeys_api.__main__ import main
from journeys_api.keys import parse


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["keys", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_key_is_shown_once_listed_by_name_and_revoked_for_good(
    read_models: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", read_models)
    code, out, _ = run(capsys, "create", "--name", "ehr-sync", "--scope", "runs:trigger",
                       "--scope", "runs:read")  # fmt: skip
    assert code == 0
    token = out.strip()
    assert parse(token) is not None

    code, listed, _ = run(capsys, "list")
    assert code == 0
    name, scopes, _, state = listed.strip().split("\t")
    assert (name, scopes, state) == ("ehr-sync", "runs:read runs:trigger", "active")
    with psycopg.connect(read_models) as conn:
        stored = conn.execute("SELECT * FROM api_keys").fetchone()
    assert stored is not None
    assert not any(token.split("_")[-1] in str(column) for column in stored)  # a hash only

    assert run(capsys, "revoke", "--name", "ehr-sync")[0] == 0
    assert run(capsys, "list")[1].strip().endswith("revoked " + listed.split("\t")[2])
    code, _, err = run(capsys, "revoke", "--name", "ehr-sync")
    assert (code, err.strip()) == (1, "error: no active key named 'ehr-sync'")
    # The name stays taken: an audit record's `key:ehr-sync` must always mean that one key.
    code, out, err = run(capsys, "create", "--name", "ehr-sync", "--scope", "runs:read")
    assert (code, out) == (1, "")
    assert "never reused" in err


def test_unknown_scopes_are_refused_by_the_cli(
    read_models: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", read_models)
    code, out, err = run(capsys, "create", "--name", "x", "--scope", "admin")
    assert code == 2
    assert out == ""
    assert "invalid choice: 'admin'" in err
