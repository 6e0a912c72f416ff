"""Imports over real Kafka and PostgreSQL: a file uploaded to the API is imported by the
importer service, each valid row a sealed patient event on the commands topic, each bad row
reported with its row number; the same bytes again answer the same import and send nothing
twice."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from journeys_api.imports.service import ImporterService
from journeys_api.imports.settings import ImporterSettings
from journeys_contracts.commands import RecordPatientEventSealed, decode_command
from journeys_runtime.shredding import open_sealed
from journeys_runtime.topics import Topics
from tests.conftest import PARTITIONS
from tests.integration.api.conftest import Api, api_settings, serving
from tests.integration.api.helpers import commands_on_topic
from tests.integration.api.projector_sim import simulated_projector
from tests.integration.imports.test_notify import Webhook
from tests.integration.imports.test_notify import serving as serving_webhook

pytestmark = pytest.mark.integration

HEADER = ["event_id", "clinic_id", "patient_id", "event_type", "event_timestamp",
          "treatment_type", "revenue_amount", "notes"]  # fmt: skip
BAD_ROWS = {1234: "event_timestamp", 5000: "revenue_amount", 9999: "patient_id"}


def importer_settings(
    kafka_bootstrap: str, database_url: str, topics: Topics, **overrides: Any
) -> ImporterSettings:
    values: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "DATABASE_URL": database_url,
        "JOURNEYS_TOPIC_PREFIX": topics.prefix, "JOURNEYS_PARTITIONS": PARTITIONS,
        "JOURNEYS_ENV": "development", "JOURNEYS_CREATE_TOPICS": False, "ops_port": 0,
    }  # fmt: skip
    return ImporterSettings(**{**values, **overrides})


@contextlib.asynccontextmanager
async def importing(settings: ImporterSettings) -> AsyncIterator[ImporterService]:
    service = ImporterService(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def importer(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> AsyncIterator[ImporterService]:
    async with importing(importer_settings(kafka_bootstrap, read_models, topics)) as service:
        yield service


def clinic_file(rows: int) -> tuple[bytes, dict[str, Any]]:
    """`rows` data rows, three of them bad (by the index in BAD_ROWS: the row number is the
    index + 2), and what the file holds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    revenue = 0
    for i in range(rows):
        completed = i % 4 == 0
        cells = [
            f"ev-{i}",
            "clinic-7",
            f"patient-{i % 50}",
            "TREATMENT_COMPLETED" if completed else "APPOINTMENT_BOOKED",
            f"2025-03-{1 + i % 28:02d}T09:30:00+01:00",
            "cleaning" if completed else "",
            "40.25" if completed else "",
            'said "fine", then\nleft' if i % 97 == 0 else "",
        ]
        bad = BAD_ROWS.get(i)
        if bad == "event_timestamp":
            cells[4] = "2025-03-01 09:30"
        elif bad == "revenue_amount":
            cells[3], cells[6] = "APPOINTMENT_BOOKED", "12.00"
        elif bad == "patient_id":
            cells[2] = ""
        elif completed:
            revenue += 4025
        writer.writerow(cells)
    data = out.getvalue().encode()
    return data, {"rows": rows, "revenue": f"{revenue // 100}.{revenue % 100:02d}"}


async def wait_until_ended(api: Api, import_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await api.client.get(f"/imports/{import_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"import {import_id} did not end: {body}")


async def chat_figures_once_recorded(api: Api, import_id: str, delivered: int) -> Any:
    deadline = time.monotonic() + 15
    while True:
        chat = (await api.client.get(f"/imports/{import_id}")).json()["chat"]
        if chat["delivered"] >= delivered or time.monotonic() > deadline:
            return chat
        await asyncio.sleep(0.1)


async def rejected_rows(api: Api, url: str) -> list[list[str]]:
    answer = await api.client.get(url, params={"format": "csv"})
    assert answer.status_code == 200, answer.text
    return list(csv.reader(io.StringIO(answer.text)))


async def upload(api: Api, data: bytes, **headers: str) -> Any:
    return await api.client.post("/imports", content=data, params={"name": "march.csv"},
                                 headers={"content-type": "text/csv", **headers})  # fmt: skip


@pytest.mark.usefixtures("importer")
async def test_a_file_is_imported_with_its_three_bad_rows_reported_and_never_twice(
    api: Api,
) -> None:
    data, expected = clinic_file(10_000)
    first = await upload(api, data)
    assert first.status_code == 202, first.text
    import_id = first.json()["importId"]
    assert first.headers["location"] == f"/imports/{import_id}"

    done = await wait_until_ended(api, import_id)
    assert done["status"] == "completed", done
    assert (done["rowsRead"], done["accepted"], done["rejected"], done["duplicates"]) == (
        10_000, 9_997, 3, 0
    )  # fmt: skip
    assert done["revenue"] == expected["revenue"]
    assert [(e["row"], e["column"]) for e in done["errors"]] == [
        (i + 2, column) for i, column in sorted(BAD_ROWS.items())
    ]
    assert all("patient-" not in e["reason"] for e in done["errors"])
    assert done["bytes"] == len(data)
    assert done["fileName"] == "march.csv"
    # All of them, paged by row, or as CSV for the clinic.
    page = (await api.client.get(f"/imports/{import_id}/errors", params={"limit": 2})).json()
    rest = await api.client.get(f"/imports/{import_id}/errors",
                                params={"after": page["nextAfter"]})  # fmt: skip
    assert [e["row"] for e in page["items"]] == [1236, 5002]
    assert [e["row"] for e in rest.json()["items"]] == [10001]
    assert rest.json()["nextAfter"] is None
    # The rejected rows themselves, in the file's columns, with what to fix.
    as_csv = await api.client.get(f"/imports/{import_id}/errors", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rejected = list(csv.reader(io.StringIO(as_csv.text)))
    sent_rows = list(csv.reader(io.StringIO(data.decode())))
    assert rejected[0] == [*HEADER, "import_error"]
    assert [r[:-1] for r in rejected[1:]] == [sent_rows[i + 1] for i in sorted(BAD_ROWS)]
    # Each note with a newline before it ends one line later than its row.
    line = 1236 + sum(1 for i in range(1235) if i % 97 == 0)
    assert rejected[1][-1] == (f"row 1236, line {line}, event_timestamp: must be an ISO 8601 "
                               "date and time with an offset or Z")  # fmt: skip
    listed = (await api.client.get("/imports")).json()
    assert [(i["importId"], i["status"], i["errors"]) for i in listed["items"]] == [
        (import_id, "completed", [])
    ]

    commands = [decode_command(r.value) for r in await commands_on_topic(api)]
    events = [c for c in commands if isinstance(c, RecordPatientEventSealed)]
    assert len(events) == 9_997
    assert {e.source for e in events} == {f"import:{import_id}"}
    assert {e.event_type for e in events} == {"treatment_completed", "appointment_booked"}
    assert b"patient-1" not in b"".join(r.value for r in await commands_on_topic(api))

    # The same bytes again, even under another name: the same import, nothing sent again.
    again = await upload(api, data)
    assert again.status_code == 202, again.text
    assert again.json() == {"importId": import_id, "status": "completed"}
    await asyncio.sleep(1)
    assert len(await commands_on_topic(api)) == len(commands)


async def test_the_rejected_rows_fixed_and_uploaded_again_are_imported(
    api: Api, importer: ImporterService
) -> None:
    data, _ = clinic_file(5001)  # rows 1236 and 5002 are bad
    first = await wait_until_ended(api, (await upload(api, data)).json()["importId"])
    assert first["rejected"] == 2
    url = f"/imports/{first['importId']}/errors"
    header, *rows = await rejected_rows(api, url)
    fixed = io.StringIO()
    writer = csv.writer(fixed, lineterminator="\r\n")
    writer.writerow(header)  # import_error stays: it is not imported
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        cells["event_timestamp"] = "2025-03-01T09:30:00+01:00"
        cells["revenue_amount"] = ""
        writer.writerow(cells[name] for name in header)
    sent = await upload(api, fixed.getvalue().encode())
    again = await wait_until_ended(api, sent.json()["importId"])
    assert (again["status"], again["accepted"], again["rejected"]) == ("completed", 2, 0)
    sealed = [c for c in map(decode_command, [r.value for r in await commands_on_topic(api)])
              if isinstance(c, RecordPatientEventSealed)]  # fmt: skip
    key = importer.data_keys
    for command in sealed[-2:]:
        opened = open_sealed((await key.get(command.patient_key)), command.patient_key,
                             "eventData", command.event_data.model_dump())  # fmt: skip
        assert "import_error" not in opened

    # The patient of row 5002 is erased: the row's cells go, what to fix stays.
    patient = rows[1][HEADER.index("patient_id")]
    assert (await api.client.delete(f"/patients/{patient}")).status_code == 202
    after = await rejected_rows(api, url)
    assert after[1] == rows[0]
    assert after[2][:-1] == [""] * len(HEADER)
    assert after[2][-1] == rows[1][-1]


async def test_a_file_refused_as_a_whole_is_422_and_leaves_nothing(api: Api) -> None:
    missing = b"event_id,clinic_id,event_type,event_timestamp\r\ne1,c1,X,2025-03-01T09:00:00Z\r\n"
    refused = await upload(api, missing)
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body"]
    assert "patient_id" in refused.json()["detail"][0]["msg"]
    not_utf8 = await upload(api, ",".join(HEADER).encode() + b"\xff\xfe\r\n")
    assert not_utf8.status_code == 422
    json_body = await api.client.post("/imports", json={"rows": []})
    assert json_body.status_code == 415
    assert await commands_on_topic(api) == []


@pytest.mark.usefixtures("importer")
async def test_a_multipart_upload_is_the_same_file(api: Api) -> None:
    data, expected = clinic_file(50)
    sent = await api.client.post(
        "/imports", files={"file": ("april.csv", data, "text/csv")}, data={"note": "ignored"}
    )
    assert sent.status_code == 202, sent.text
    done = await wait_until_ended(api, sent.json()["importId"])
    assert (done["status"], done["accepted"], done["revenue"]) == (
        "completed", 50, expected["revenue"]
    )  # fmt: skip
    assert (done["fileName"], done["bytes"]) == ("april.csv", len(data))
    raw = await upload(api, data)  # the same bytes: the same import
    assert raw.json()["importId"] == sent.json()["importId"]
    no_file = await api.client.post("/imports", files={"other": ("a.csv", data, "text/csv")})
    assert no_file.status_code == 422
    assert "field `file`" in no_file.json()["detail"][0]["msg"]


async def test_an_event_id_repeated_batches_later_is_reported_with_its_first_row(
    api: Api, kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    data, _ = clinic_file(40)
    lines = data.decode().split("\r\n")
    # Data row i is line i + 2 (the header is row 1). Rows 30 and 41 repeat rows 3 and 12,
    # many batches of 7 rows later; row 35 repeats row 33 within its batch.
    for repeat, first in ((30, 3), (41, 12), (35, 33)):
        cells = lines[repeat - 1].split(",")
        cells[0] = lines[first - 1].split(",")[0]
        lines[repeat - 1] = ",".join(cells)
    settings = importer_settings(kafka_bootstrap, read_models, topics, batch_rows=7)
    async with importing(settings):
        sent = await upload(api, "\r\n".join(lines).encode())
        done = await wait_until_ended(api, sent.json()["importId"])
    assert (done["status"], done["accepted"], done["duplicates"]) == ("completed", 37, 3)
    assert [(e["row"], e["reason"]) for e in done["errors"]] == [
        (30, "repeats the event id of row 3: not imported twice"),
        (35, "repeats the event id of row 33: not imported twice"),
        (41, "repeats the event id of row 12: not imported twice"),
    ]
    with psycopg.connect(read_models) as conn:  # the ids go with the import
        left = conn.execute("SELECT count(*) FROM api_import_event_ids").fetchone()
    assert left == (0,)
    commands = [decode_command(r.value) for r in await commands_on_topic(api)]
    assert len({c.event_id for c in commands if isinstance(c, RecordPatientEventSealed)}) == 37


@pytest.mark.usefixtures("importer")
async def test_an_idempotency_key_answers_the_same_import(api: Api) -> None:
    data, _ = clinic_file(20)
    first = await upload(api, data, **{"Idempotency-Key": "march-upload-1"})
    second = await upload(api, data + b"", **{"Idempotency-Key": "march-upload-1"})
    assert first.json()["importId"] == second.json()["importId"]
    assert (await wait_until_ended(api, first.json()["importId"]))["accepted"] == 20


async def test_the_team_chat_hears_of_the_start_and_the_end(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    hook = Webhook(answers=[(503, {})])  # down for the first attempt
    data, expected = clinic_file(400)
    async with serving_webhook(hook) as url:
        settings = api_settings(kafka_bootstrap, read_models, topics)
        told = importer_settings(kafka_bootstrap, read_models, topics, progress_webhook_url=url)
        async with (
            simulated_projector(kafka_bootstrap, read_models, topics),
            serving(settings) as client,
            importing(told),
        ):
            api = Api(client, settings, read_models, topics)
            import_id = (await upload(api, data)).json()["importId"]
            assert (await wait_until_ended(api, import_id))["status"] == "completed"
            await hook.wait_for(2, within=30)
            chat = await chat_figures_once_recorded(api, import_id, len(hook.taken))
    # The failure is on the import, by status (never the webhook's URL), and it was retried.
    assert chat == {"delivered": len(hook.taken), "failedAttempts": 1, "givenUp": 0,
                    "lastError": "answered 503"}  # fmt: skip
    texts = [m["text"] for m in hook.taken]
    assert texts[0] == f"Import {import_id} started: reading `march.csv`."
    assert texts[-1].startswith(f"Import {import_id} completed in ")
    assert f"revenue {float(expected['revenue']):,.2f}" in texts[-1]
    assert all("patient-" not in t for t in texts)


async def test_an_upload_names_a_webhook_never_gives_one(
    api: Api, kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    hook = Webhook(answers=[])
    data, _ = clinic_file(30)
    async with serving_webhook(hook) as url:
        told = importer_settings(kafka_bootstrap, read_models, topics,
                                 progress_webhooks={"front-desk": url})  # fmt: skip
        async with importing(told):
            with psycopg.connect(read_models, autocommit=True) as conn:
                listed: Any = None
                for _ in range(100):  # the importer lists its names as it starts
                    listed = conn.execute("SELECT name FROM api_import_webhook_names").fetchall()
                    if listed:
                        break
                    await asyncio.sleep(0.05)
            assert listed == [("front-desk",)]
            unknown = await upload(api, data, **{"Idempotency-Key": "x"})  # no name: none told
            refused = await api.client.post("/imports", content=data,
                                            params={"notify": "http://evil.example/"},
                                            headers={"content-type": "text/csv"})  # fmt: skip
            missing = await api.client.post("/imports", content=data + b"\r\n",
                                            params={"notify": "back-office"},
                                            headers={"content-type": "text/csv"})  # fmt: skip
            sent = await api.client.post("/imports", content=data + b"\r\n",
                                         params={"notify": "front-desk", "name": "may.csv"},
                                         headers={"content-type": "text/csv"})  # fmt: skip
            assert sent.status_code == 202, sent.text
            await wait_until_ended(api, sent.json()["importId"])
            await wait_until_ended(api, unknown.json()["importId"])
            await hook.wait_for(2, within=30)
    assert (refused.status_code, missing.status_code) == (422, 422)
    assert missing.json()["detail"][0]["loc"] == ["query", "notify"]
    texts = [m["text"] for m in hook.taken]
    assert texts[0] == f"Import {sent.json()['importId']} started: reading `may.csv`."
    assert all(unknown.json()["importId"] not in t for t in texts)


async def test_an_upload_cut_short_by_the_size_limit_ends_failed_saying_how_far_it_got(
    kafka_bootstrap: str, read_models: str, topics: Topics
) -> None:
    settings = api_settings(kafka_bootstrap, read_models, topics, import_max_bytes=4096)
    data, _ = clinic_file(200)  # about 16 KB, sent without a declared length

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]

    headers = {"content-type": "text/csv", "idempotency-key": "march-1"}
    async with serving(settings) as client:
        refused = await client.post("/imports", content=chunked(), headers=headers)
        declared = await client.post("/imports", content=data, headers=headers)
        # The failed upload's key is free again: sent again, smaller, it is a new import.
        retried = await client.post("/imports", content=clinic_file(20)[0], headers=headers)
    assert refused.status_code == 413
    assert declared.status_code == 413  # refused unread: no import begun
    assert retried.status_code == 202, retried.text
    with psycopg.connect(read_models) as conn:
        new = retried.json()["importId"]
        rows = conn.execute("SELECT status, reason, (SELECT count(*) FROM api_import_chunks "
                            "WHERE import_id = i.import_id) FROM api_imports i "
                            "WHERE import_id <> %s", (new,)).fetchall()  # fmt: skip
    assert len(rows) == 1
    status, reason, chunks = rows[0]
    assert (status, chunks) == ("failed", 0)
    line = data[:4000].count(b"\n") + 1
    assert reason == f"the upload was cut short (size limit) after 4,000 bytes, at line {line}"
