"""Runs: reads, timelines, filters, and cancel's 202 / 404 / 409."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import ConsumerRecord

from journeys_contracts.commands import CancelRun
from journeys_contracts.envelope import header
from journeys_contracts.keys import patient_key
from tests.integration.api.conftest import NO_EXECUTOR, Api
from tests.integration.api.helpers import commands_on_topic, create_journey, opened_command
from tests.integration.api.projector_sim import add_event, set_run

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def _trigger(api: Api, journey_id: str, patient: str) -> str:
    response = await api.client.post(f"/journeys/{journey_id}/trigger", json={"id": patient})
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


async def test_cancel_of_a_completed_run_is_409_naming_its_status(api: Api) -> None:
    run_id = await _trigger(api, await create_journey(api), "patient-done")
    await set_run(api.database_url, run_id, "completed", current_node_id="checkin")

    response = await api.client.post(f"/journeys/runs/{run_id}/cancel")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"Expected a run that has not ended, but run {run_id} is completed"
    )


@NO_EXECUTOR
async def test_cancel_of_a_live_run_puts_cancel_run_keyed_by_patient_key(api: Api) -> None:
    run_id = await _trigger(api, await create_journey(api), "patient-cancel")

    response = await api.client.post(
        f"/journeys/runs/{run_id}/cancel", json={"reason": "opted out"}
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"runId": run_id, "status": "cancelling"}
    cancels = [r for r in await commands_on_topic(api) if _is_cancel(r)]
    assert len(cancels) == 1
    secret = api.settings.patient_key_secret.get_secret_value()
    assert cancels[0].key == patient_key(secret, "patient-cancel").encode()
    # The patient's run is sealed, so is the reason: the executor opens it with their key.
    assert header(cancels[0].headers, "ce_type") == "journeys.command.cancel_run.v2"
    assert b"opted out" not in cancels[0].value
    command = opened_command(api.database_url, cancels[0].value)
    assert isinstance(command, CancelRun)
    assert (str(command.run_id), command.reason) == (run_id, "opted out")


async def test_unknown_run_is_404_for_read_events_and_cancel(api: Api) -> None:
    for response in (
        await api.client.get(f"/journeys/runs/{UNKNOWN}"),
        await api.client.get(f"/journeys/runs/{UNKNOWN}/events"),
        await api.client.post(f"/journeys/runs/{UNKNOWN}/cancel"),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"run {UNKNOWN} not found"}


async def test_events_come_in_seq_order(api: Api) -> None:
    run_id = await _trigger(api, await create_journey(api), "patient-events")
    at = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    for seq in (2, 1, 3):
        await add_event(api.database_url, run_id, seq, f"journeys.t{seq}.v1",
                        at + timedelta(seconds=seq), {"seq": seq})  # fmt: skip

    response = await api.client.get(f"/journeys/runs/{run_id}/events")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["runId"] == run_id
    assert [e["seq"] for e in body["events"]] == [1, 2, 3]
    assert body["events"][0] == {
        "seq": 1, "type": "journeys.t1.v1", "occurredAt": "2025-03-01T09:30:01Z",
        "data": {"seq": 1},
    }  # fmt: skip


async def test_a_known_run_without_events_has_an_empty_timeline(api: Api) -> None:
    run_id = await _trigger(api, await create_journey(api), "patient-quiet")

    response = await api.client.get(f"/journeys/runs/{run_id}/events")

    assert response.json() == {"runId": run_id, "events": []}


async def test_runs_filter_by_journey_patient_and_status_and_page(api: Api) -> None:
    journey_a, journey_b = await create_journey(api), await create_journey(api)
    a1 = await _trigger(api, journey_a, "patient-a")
    a2 = await _trigger(api, journey_a, "patient-a")
    b1 = await _trigger(api, journey_b, "patient-a")
    await _trigger(api, journey_a, "patient-other")
    await set_run(api.database_url, a2, "waiting_delay")

    async def ids(**params: str | int) -> list[str]:
        response = await api.client.get("/journeys/runs", params=params)
        assert response.status_code == 200, response.text
        return [run["runId"] for run in response.json()["items"]]

    assert await ids(patientId="patient-a") == [a1, a2, b1]
    assert await ids(patientId="patient-a", journeyId=journey_a) == [a1, a2]
    assert await ids(patientId="patient-a", status="waiting_delay") == [a2]
    page = (await api.client.get("/journeys/runs", params={"patientId": "patient-a",
                                                           "limit": 2})).json()  # fmt: skip
    rest = await ids(patientId="patient-a", limit=2, cursor=page["nextCursor"])
    assert [run["runId"] for run in page["items"]] + rest == [a1, a2, b1]


def _is_cancel(record: ConsumerRecord[bytes, bytes]) -> bool:
    return header(record.headers, "ce_type") in (
        "journeys.command.cancel_run.v1", "journeys.command.cancel_run.v2",
    )  # fmt: skip


async def test_search_by_body_finds_what_the_query_form_finds_and_pages(api: Api) -> None:
    """POST /journeys/runs/search keeps the patient id out of the URL (and so out of proxy
    and ingress logs), with the query form's filters and pagination."""
    journey_a, journey_b = await create_journey(api), await create_journey(api)
    a1 = await _trigger(api, journey_a, "patient-s")
    a2 = await _trigger(api, journey_a, "patient-s")
    b1 = await _trigger(api, journey_b, "patient-s")
    await _trigger(api, journey_a, "patient-other")
    await set_run(api.database_url, a2, "waiting_delay")

    async def search(**body: object) -> dict[str, object]:
        response = await api.client.post("/journeys/runs/search", json=body)
        assert response.status_code == 200, response.text
        assert "patient-s" not in str(response.request.url)
        found: dict[str, object] = response.json()
        return found

    async def ids(**body: object) -> list[str]:
        return [run["runId"] for run in (await search(**body))["items"]]  # type: ignore[attr-defined]

    assert await ids(patientId="patient-s") == [a1, a2, b1]
    assert await ids(patientId="patient-s", journeyId=journey_a) == [a1, a2]
    assert await ids(patientId="patient-s", status="waiting_delay") == [a2]
    page = await search(patientId="patient-s", limit=2)
    rest = await ids(patientId="patient-s", limit=2, cursor=page["nextCursor"])
    assert [run["runId"] for run in page["items"]] + rest == [a1, a2, b1]  # type: ignore[attr-defined]
    by_query = await api.client.get("/journeys/runs", params={"patientId": "patient-s"})
    assert (await search(patientId="patient-s"))["items"] == by_query.json()["items"]


async def test_search_refuses_unknown_fields_and_foreign_cursors_naming_them(api: Api) -> None:
    unknown = await api.client.post("/journeys/runs/search", json={"patient": "p"})
    cursor = await api.client.post("/journeys/runs/search", json={"cursor": "not-ours"})

    assert unknown.status_code == cursor.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "patient"]
    assert cursor.json()["detail"][0]["loc"] == ["body", "cursor"]
