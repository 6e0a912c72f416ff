"""The operator console in a real browser (Debian's Chromium, driven by Playwright) against the
running stack: sign-in, journeys and their graphs, runs found by patient without the id in a
URL, a live timeline, cancelling, a read-only user, CSRF, and axe-core on every page.

Screenshots of each page go to `.data/test-output/console/` (`tests/e2e/browser.py`).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from journeys_api import keys
from journeys_stack.paths import REPO_ROOT
from tests.e2e.browser import accessible, shot, signed_in
from tests.e2e.conftest import Stack
from tests.e2e.helpers import create_journey, trigger, wait_for_status, wait_for_type

pytestmark = pytest.mark.e2e


def journey(name: str, delay: float) -> dict[str, Any]:
    return {
        "name": name,
        "start_node_id": "welcome",
        "nodes": [
            {"id": "welcome", "type": "MESSAGE", "message": "Welcome, {{ first_name }}!",
             "next_node_id": "check"},
            {"id": "check", "type": "CONDITIONAL",
             "condition": {"field": "age", "operator": ">=", "value": 65},
             "on_true_next_node_id": "pause", "on_false_next_node_id": "bye"},
            {"id": "pause", "type": "DELAY", "duration_seconds": delay, "next_node_id": "ask"},
            {"id": "ask", "type": "WAIT_FOR_EVENT", "event": "checkin.answered",
             "timeout_seconds": 3600, "on_event_next_node_id": "bye",
             "on_timeout_next_node_id": None},
            {"id": "bye", "type": "MESSAGE", "message": "Thank you.", "next_node_id": None},
        ],
    }  # fmt: skip


async def test_console_pages_in_a_browser(
    browser: Browser, stack: Stack, client: httpx.AsyncClient
) -> None:
    name = f"Console check-in {uuid.uuid4().hex[:6]}"
    journey_id = await create_journey(client, journey(name, delay=4.0))
    patient = f"console-patient-{uuid.uuid4().hex[:8]}"

    context, page = await signed_in(browser, stack, stack.api_key)
    await shot(page, "01-journeys")
    await accessible(page)

    # Journeys: search by name, then the journey's graph, one box per node, labelled branches.
    await page.get_by_label("Name contains").fill(name)
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name=name).click()
    await expect(page.locator("figure.graph g.node")).to_have_count(5)
    labels = await page.locator("figure.graph .edge-label").all_text_contents()
    assert sorted(labels) == ["event", "no", "yes"], labels
    await shot(page, "02-journey-graph")
    await accessible(page)

    # Runs: one patient's, found through a form; the id never reaches a URL. The run starts
    # now: its delay ends while its page is open.
    run_id = await trigger(client, journey_id, {"id": patient, "first_name": "Ada",
                                                "age": 70})  # fmt: skip
    await page.get_by_role("link", name="Runs", exact=True).click()
    await page.get_by_label("Patient id").fill(patient)
    await page.get_by_role("button", name="Find their runs").click()
    assert patient not in page.url
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(1)
    await shot(page, "03-runs")
    await accessible(page)

    # The run's page: its timeline grows live while the page stays loaded.
    await rows.first.get_by_role("link").first.click()
    await expect(page).to_have_url(f"{stack.api_url}/console/runs/{run_id}")
    events = page.locator("#timeline li.event")
    await expect(events.first).to_be_visible()
    seen = await events.count()
    await expect(page.locator("#run-status")).to_have_text("waiting_event", timeout=15_000)
    assert await events.count() > seen, "no event arrived without a reload"
    await expect(page.locator("figure.graph g.node.current")).to_have_attribute("data-node", "ask")
    assert patient not in await page.content()  # shown only when asked for
    await shot(page, "04-run-live")
    await accessible(page)

    # Cancel, with a reason: the page shows the run cancelled.
    await page.get_by_label("Reason").fill("moved to another clinic")
    await page.get_by_role("button", name="Cancel run").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=15_000)
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    await wait_for_status(client, run_id, {"cancelled"})
    await shot(page, "05-run-cancelled")

    # A forged cancel: right cookie, no CSRF token.
    other = await trigger(client, journey_id, {"id": f"{patient}-2", "age": 70})
    forged = await context.request.post(f"/console/runs/{other}/cancel", form={"reason": "x"})
    assert forged.status == 403
    await context.close()

    # A read-only user: no Cancel button, and a 403 for the request even with its token.
    reader = keys.create(stack.database_url, f"console-reader-{uuid.uuid4().hex[:6]}",
                         ["journeys:read", "runs:read"])  # fmt: skip
    context, page = await signed_in(browser, stack, reader)
    await page.goto(f"/console/runs/{other}")
    await expect(page.locator("#timeline li.event").first).to_be_visible()
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    token = await page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = await context.request.post(
        f"/console/runs/{other}/cancel", form={"reason": "x", "csrf_token": token or ""}
    )
    assert refused.status == 403
    await shot(page, "06-run-read-only")
    still = (await client.get(f"/journeys/runs/{other}")).json()
    assert still["status"] != "cancelled"
    await context.close()


async def test_console_sign_in_refuses_bad_keys(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context(base_url=stack.api_url)
    page = await context.new_page()
    await page.goto("/console/sign-in")
    await page.get_by_label("API key").fill("pjk_0000000000000000_nope")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("unknown or revoked key")
    await accessible(page)
    assert (await context.cookies()) == []
    answer = await context.request.get("/console/runs", max_redirects=0)
    assert answer.status == 303
    assert answer.headers["location"] == "/console/sign-in"
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe" not in policy
    await context.close()


async def test_console_health_shows_a_stopped_projector(browser: Browser, stack: Stack) -> None:
    context, page = await signed_in(browser, stack, stack.api_key)
    await page.get_by_role("link", name="Health").click()
    projector = page.locator("tr[data-service=projector] .status")
    await expect(projector).to_have_text("ready")
    await expect(page.locator("tr[data-service=executor] .status")).to_have_text("ready")
    await expect(page.locator("#dead-letters")).not_to_have_text("unknown")
    await shot(page, "07-health")
    await accessible(page)
    stack.supervisor.stop("projector")
    try:
        await page.reload()
        await expect(projector).to_have_text("unreachable")
        await shot(page, "08-health-projector-stopped")
    finally:
        await asyncio.to_thread(stack.supervisor.start, "projector")
    await page.reload()
    await expect(projector).to_have_text("ready")
    await context.close()


async def test_console_editor_shows_refusals_at_their_node_then_saves(
    browser: Browser, stack: Stack, client: httpx.AsyncClient
) -> None:
    context, page = await signed_in(browser, stack, stack.api_key)
    refused: list[str] = []  # CodeMirror's <style> must come in by the answer's nonce
    page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None)
    await page.get_by_role("link", name="New journey").click()
    await expect(page.locator("#check .ok")).to_be_visible()
    await expect(page.locator("#check figure.graph g.node")).to_have_count(3)

    # The schema's completion: in an empty object, the definition's keys are offered.
    await expect(page.locator("textarea#definition")).to_be_hidden()  # CodeMirror took over
    editor = page.get_by_role("textbox", name="Definition (JSON)")
    await editor.fill("{\n  \n}")
    await page.locator(".cm-line").nth(1).click()
    await page.keyboard.type('"')  # a key begins: the schema's keys for this object
    offered = page.locator(".cm-tooltip-autocomplete li")
    await expect(offered.filter(has_text="start_node_id")).to_have_count(1)
    await expect(offered.filter(has_text="quiet_hours")).to_have_count(1)
    await shot(page, "08b-editor-completion")
    await page.keyboard.press("Escape")
    await expect(offered).to_have_count(0)
    await page.keyboard.press("Control+Space")  # asked for again
    await expect(offered.filter(has_text="start_node_id")).to_have_count(1)
    await offered.filter(has_text="start_node_id").click()
    await expect(editor).to_contain_text('"start_node_id"')

    name = f"Editor journey {uuid.uuid4().hex[:6]}"
    broken = journey(name, delay=-5)
    await editor.fill(json.dumps(broken, indent=2))
    problem = page.locator("#check .problems li")
    await expect(problem).to_have_count(1)
    await expect(problem).to_have_attribute("data-node", "pause")
    await expect(problem).to_contain_text("duration_seconds")
    await expect(page.locator("#check g.node.invalid")).to_have_attribute("data-node", "pause")
    await shot(page, "09-editor-problem")
    await accessible(page)

    # Saved as it is: the API's 422, at the node, and nothing defined.
    await page.get_by_role("button", name="Save journey").click()
    await expect(page.locator("#check .problems li[data-node=pause]")).to_be_visible()
    listed = (await client.get("/journeys", params={"limit": 200})).json()["items"]
    assert name not in [j["name"] for j in listed]

    await expect(page.locator("textarea#definition")).to_be_hidden()  # the page came back
    await editor.fill(json.dumps(journey(name, delay=60), indent=2))
    await page.get_by_role("button", name="Save journey").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)
    await expect(page.locator("figure.graph g.node")).to_have_count(5)
    journey_id = page.url.rsplit("/", 1)[1]
    assert (await client.get(f"/journeys/{journey_id}")).json()["name"] == name
    assert refused == []
    await context.close()


SAMPLE = REPO_ROOT / "examples" / "clinic_events.csv"


async def test_console_imports_a_file_and_follows_it(
    browser: Browser, stack: Stack, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The shipped sample (43 rows: 2 rejected, 1 repeated event id), chosen in the upload,
    followed live to its end; the rejected rows download as a CSV of the upload's columns."""
    context, page = await signed_in(browser, stack, stack.api_key)
    await page.get_by_role("link", name="Imports").click()
    await accessible(page)
    await page.locator("#file").set_input_files(str(SAMPLE))
    await expect(page).to_have_url(re.compile(r"/console/imports/[0-9a-f-]{36}$"))
    await expect(page.locator("#import-status")).to_have_text("completed", timeout=30_000)
    await expect(page.locator("#accepted")).to_have_text("40")
    await expect(page.locator("#rejected")).to_have_text("2")
    await expect(page.locator("#duplicates")).to_have_text("1")
    await expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    await shot(page, "10-import-completed")
    await accessible(page)
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Download the rejected rows as CSV").click()
    saved = tmp_path / "rejected.csv"
    await (await download.value).save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("event_id,clinic_id,patient_id")
    assert lines[0].endswith("import_error")
    assert len(lines) == 3  # the header and the two rejected rows

    await page.get_by_role("link", name="Imports").click()
    await expect(page.locator("tbody tr").first).to_contain_text("clinic_events.csv")
    await shot(page, "11-imports")

    # Its weeks, as charts and as the API's figures in a table.
    wanted = (await client.get("/analytics/weekly", params={"clinicId": "north"})).json()
    assert wanted["weeks"]
    await page.get_by_role("link", name="Analytics").click()
    await page.get_by_label("Clinic").fill("north")
    await page.get_by_role("button", name="Show").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(len(wanted["weeks"]))
    for row, week in zip(await rows.all(), wanted["weeks"], strict=True):
        cells = await row.locator("td").all_text_contents()
        assert cells[:3] == [week["isoWeek"], "north", week["revenue"]]
        assert cells[5:8] == [str(week["appointments"]), str(week["bookings"]), str(week["events"])]
    for canvas in ("chart-revenue", "chart-types", "chart-visits"):
        assert await page.locator(f"#{canvas}").evaluate("c => c.width > 0 && !!Chart.getChart(c)")
    await shot(page, "12-analytics")
    await accessible(page)
    await page.get_by_label("Time zone").fill("Mars/Olympus")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("alert")).to_contain_text("tz: must name an IANA time zone")
    await context.close()


async def test_console_retries_a_message_given_up(
    browser: Browser, stack: Stack, client: httpx.AsyncClient
) -> None:
    """A message to a channel this stack has not configured fails for good at once; the
    deliveries page lists it (never its text) and sends it again, once."""
    definition = {
        "name": f"Console webhook {uuid.uuid4().hex[:6]}", "start_node_id": "hello",
        "nodes": [{"id": "hello", "type": "MESSAGE", "channel": "webhook",
                   "message": "secret text", "next_node_id": None}],
    }  # fmt: skip
    journey_id = await create_journey(client, definition)
    run_id = await trigger(client, journey_id, {"id": f"console-dlv-{uuid.uuid4().hex[:6]}"})
    await wait_for_type(client, run_id, "message.failed")

    context, page = await signed_in(browser, stack, stack.api_key)
    await page.goto(f"/console/deliveries?journey={journey_id}")
    row = page.locator("tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("channel webhook is not configured")
    assert "secret text" not in await page.content()
    await shot(page, "13-deliveries")
    await accessible(page)
    message_id = await row.get_attribute("data-message")
    async with page.expect_navigation(timeout=20_000):  # the POST, then its redirect back
        await row.get_by_role("button", name=re.compile("^Retry message")).click()
    await expect(page).to_have_url(re.compile(rf"/console/deliveries\?journey={journey_id}$"))
    row = page.locator(f"tr[data-message='{message_id}']")
    await expect(row.get_by_role("button")).to_have_count(0)
    await expect(row).to_contain_text("retry")
    await shot(page, "14-deliveries-retried")
    await context.close()


async def test_console_draws_a_large_journey_without_overlaps(
    browser: Browser, stack: Stack, client: httpx.AsyncClient
) -> None:
    """36 nodes, a branch every third: every box and label is drawn, no two boxes overlap,
    and at a tablet's width the page scrolls the graph, not itself."""
    nodes: list[dict[str, Any]] = []
    for i in range(36):
        following = f"n{i + 1}" if i < 35 else None
        if i % 3 == 1:
            nodes.append(
                {
                    "id": f"n{i}",
                    "type": "CONDITIONAL",
                    "condition": {"field": "score", "operator": ">", "value": i},
                    "on_true_next_node_id": following,
                    "on_false_next_node_id": "n35",
                }
            )
        else:
            nodes.append({"id": f"n{i}", "type": "DELAY", "duration_seconds": 60 * (i + 1),
                          "next_node_id": following})  # fmt: skip
    name = f"Console large {uuid.uuid4().hex[:6]}"
    journey_id = await create_journey(client, {"name": name, "start_node_id": "n0",
                                               "nodes": nodes})  # fmt: skip
    context, page = await signed_in(browser, stack, stack.api_key)
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.goto(f"/console/journeys/{journey_id}")
    boxes = page.locator("figure.graph g.node rect")
    await expect(boxes).to_have_count(36)
    await expect(page.locator("figure.graph .edge-label")).to_have_count(24)
    rects = await boxes.evaluate_all(
        "rs => rs.map(r => { const b = r.getBoundingClientRect();"
        " return [b.left, b.top, b.right, b.bottom]; })"
    )
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert apart, f"boxes overlap: {a} {b}"
    page_width = await page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 768, "the page itself scrolls sideways at a tablet's width"
    await shot(page, "15-large-journey-tablet")
    await accessible(page)

    # The API's refusals, as pages: the field and why, or what is missing.
    answer = await page.goto("/console/runs?status=bogus")
    assert answer is not None
    assert answer.status == 422
    await expect(page.get_by_role("heading", level=1)).to_contain_text("status: Input should be")
    answer = await page.goto(f"/console/runs/{uuid.uuid4()}")
    assert answer is not None
    assert answer.status == 404
    await expect(page.get_by_role("heading", level=1)).to_contain_text("not found")
    await context.close()
