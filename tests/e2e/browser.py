"""The browser tests' helpers: Debian's Chromium, screenshots, axe-core, and signing in to the
console with an API key. Screenshots go to `.data/test-output/console/`
(`JOURNEYS_TEST_OUTPUT` moves it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.async_api import Browser, BrowserContext, Page, expect

from journeys_stack.paths import REPO_ROOT

if TYPE_CHECKING:  # the conftest imports this module
    from tests.e2e.conftest import Stack

OUTPUT = (
    Path(os.environ.get("JOURNEYS_TEST_OUTPUT", REPO_ROOT / ".data" / "test-output")) / "console"
)
AXE = REPO_ROOT / "services" / "api" / "console" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def chromium() -> str:
    """Debian's Chromium (`apt-get install chromium`; `.ci/run` installs it); its own path in
    `JOURNEYS_CHROMIUM`. Missing, the test fails: it never skips."""
    named = os.environ.get("JOURNEYS_CHROMIUM")
    for candidate in [named] if named else CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise AssertionError("no Chromium: `apt-get install chromium`, or set JOURNEYS_CHROMIUM")


async def signed_in(browser: Browser, stack: Stack, key: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=stack.api_url, viewport={"width": 1280, "height": 860}
    )
    page = await context.new_page()
    await page.goto("/console")
    await expect(page).to_have_url(f"{stack.api_url}/console/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{stack.api_url}/console/journeys")
    return context, page


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


async def accessible(page: Page) -> None:
    """axe-core finds nothing serious or critical on the page. Evaluated through the
    DevTools protocol: the page's own policy (`script-src 'self'`) refuses an injected tag."""
    await page.evaluate(AXE.read_text())
    found: list[dict[str, Any]] = await page.evaluate(
        "async () => (await axe.run()).violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"
    )
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, f"{page.url}: {serious}"
