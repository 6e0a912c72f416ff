"""The erasure routes' HTTP layer: credentials before the body, scope, validation, and no
patient id in what the API answers, records or logs.

No PostgreSQL or Kafka here: a request that got past validation can only be a 503.
tests/integration/api/test_erasure.py runs the routes against real ones.
"""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI

from journeys_api import keys
from journeys_api.auth import Scope
from journeys_contracts.audit import AuditOutcome
from journeys_contracts.keys import patient_key
from journeys_runtime.settings import DEV_PATIENT_KEY_SECRET

PATIENT = "pat-erase-4711"


def test_patients_erase_is_a_scope_an_api_key_can_hold() -> None:
    assert Scope.PATIENTS_ERASE == "patients:erase"
    assert "patients:erase" in keys.SCOPES


async def test_no_credentials_on_a_patients_route_is_401_before_the_body_is_read(
    app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as anonymous:
        answers = [
            await anonymous.post(
                "/patients/erasures",
                content=b"{not json",
                headers={"content-type": "application/json"},
            ),
            await anonymous.post("/patients/erasures", content=b"x" * 2_000_000),
            await anonymous.delete(f"/patients/{PATIENT}"),
            await anonymous.get(f"/patients/erasures/{uuid.uuid4()}"),
            await anonymous.get("/patients"),
        ]
    for response in answers:
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="patient-journeys"'
    assert app.state.audit_records == []


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "patientId"]),
        ({"patientId": ""}, ["body", "patientId"]),
        ({"patientId": "   "}, ["body", "patientId"]),
        ({"patientId": "p" * 256}, ["body", "patientId"]),
        ({"patientId": "a\x00b"}, ["body", "patientId"]),
        ({"patientId": "p-1", "reason": "asked"}, ["body", "reason"]),
    ],
)
async def test_an_erasure_body_that_breaks_a_rule_is_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, str], loc: list[str]
) -> None:
    response = await client.post("/patients/erasures", json=body)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [loc]
    assert "p" * 256 not in response.text


async def test_a_malformed_erasure_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/patients/erasures/not-an-id")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "erasureId"]


async def test_erasing_records_the_patients_key_and_never_the_id(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """No PostgreSQL here: both forms answer 503, and neither the answer, its headers, the
    audit record nor the logs carry the patient id (the DELETE form has it in its path)."""
    caplog.set_level(logging.DEBUG)
    by_body = await client.post("/patients/erasures", json={"patientId": PATIENT})
    by_path = await client.delete(f"/patients/{PATIENT}")
    for response in (by_body, by_path):
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"]
        assert PATIENT not in response.text
        assert PATIENT not in str(response.headers)
    key = patient_key(DEV_PATIENT_KEY_SECRET, PATIENT)
    first, second = app.state.audit_records
    for record in (first, second):
        assert record.action == "patients.erase"
        assert record.patient_keys == [key]
        assert record.outcome == AuditOutcome.FAILED
        assert PATIENT not in record.model_dump_json()
    assert (first.route, second.route) == ("/patients/erasures", "/patients/{patientId}")
    ours = [r for r in caplog.records if r.name.startswith("journeys")]  # not httpx's own
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert len(ours) >= 4  # two "dependency unavailable", two "request"
    assert PATIENT not in logged
