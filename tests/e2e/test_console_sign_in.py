"""The console's sign-in through an OpenID Connect issuer (authorization code with PKCE), in
a real browser against the shared stack, which trusts the session's issuer
(`tests/e2e/oidc_provider.py`): the session has the access token's scopes and no more, and the
issuer saw a proper S256 challenge and verifier."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from tests.e2e.browser import accessible, shot
from tests.e2e.conftest import Stack, api_client
from tests.e2e.helpers import create_journey, message_journey, trigger
from tests.e2e.oidc_provider import Provider

pytestmark = pytest.mark.e2e


async def test_sign_in_through_the_issuer_gives_the_token_s_scopes(
    browser: Browser, stack: Stack, issuer: Provider
) -> None:
    async with api_client(stack) as client:
        journey_id = await create_journey(client, message_journey(
            "SSO journey", {"type": "DELAY", "duration_seconds": 3600}))  # fmt: skip
        run_id = await trigger(client, journey_id, {"id": "sso-patient-1"})

    context = await browser.new_context(base_url=stack.api_url)
    page = await context.new_page()
    await page.goto("/console")
    await accessible(page)
    await page.get_by_role("link", name="Sign in with your organisation's account").click()
    await expect(page).to_have_url(f"{stack.api_url}/console/journeys")
    await expect(page.locator(".who span")).to_have_text(f"jwt:{issuer.subject}")
    assert issuer.refused == []
    await expect(page.get_by_role("link", name="SSO journey")).to_be_visible()
    await shot(page, "16-signed-in-through-the-issuer")

    # journeys:read and runs:read only: the run is readable, nothing can be changed.
    await page.goto(f"/console/runs/{run_id}")
    await expect(page.locator("#run-status")).to_have_text("waiting_delay")
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    answer = await page.goto("/console/journeys/new")
    assert answer is not None
    assert answer.status == 403
    answer = await page.goto("/console/imports")
    assert answer is not None
    assert answer.status == 403
    await context.close()


async def test_a_callback_without_its_state_is_refused(browser: Browser, stack: Stack) -> None:
    """A code arriving without the sign-in this browser started (a forged or replayed
    callback) opens no session."""
    async with httpx.AsyncClient(base_url=stack.api_url) as client:
        answer = await client.get("/console/oidc/callback", params={"code": "x", "state": "y"})
    assert answer.status_code == 401
    assert "sign-in refused" in answer.text
    assert "__Host-pj-console" not in answer.headers.get("set-cookie", "")
