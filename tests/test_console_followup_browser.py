"""The console after an outcome in Debian's Chromium (Playwright) against a real ``amber
serve``: alice confirms an item and escalates another; the user's appeal arrives through
the API; bob finds it in the appeals queue with its time left and reverses it; bob owns
the escalated item from the escalation queue and decides it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Databases
from test_console import Console, serve

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package"),
]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("followup-browser")
    with databases.new(root) as db, serve(root, db) as running:
        yield running


@pytest.fixture
def browser() -> Iterator[playwright.Browser]:
    with playwright.sync_playwright() as driver:
        found = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield found
        found.close()


def _signed_in(browser: playwright.Browser, console: Console, name: str) -> playwright.Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(console.url + "/console/sign-in")
    page.fill("input[name=token]", console.tokens[name])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/queue")
    return page


def test_appeals_and_escalations_in_the_browser(
    console: Console, browser: playwright.Browser
) -> None:
    expect = playwright.expect
    alice = _signed_in(browser, console, "alice")
    alice.goto(console.url + "/console/items/urgent")
    alice.fill("#reason", "a vote on a prisoner's life")
    alice.click("button[value=keep_restricted]")
    alice.wait_for_url("**/console/items/open")  # the next item
    alice.fill("#reason", "needs legal")
    alice.locator("h1").click()
    alice.keyboard.press("e")  # escalate
    alice.wait_for_url("**/console/items/later")

    headers = {"authorization": f"Bearer {console.tokens['ingest']}"}
    filed = httpx.post(
        console.url + "/v1/appeals",
        headers=headers,
        json={"post_id": "urgent", "text": "It was a quiz about a film."},
        timeout=30,
    )
    assert filed.status_code == 201, filed.text
    appeal = filed.json()["id"]

    bob = _signed_in(browser, console, "bob")
    bob.click("nav >> text=Appeals")
    bob.wait_for_url("**/console/appeals")
    row = bob.locator(f'tr.appeal[data-appeal-id="{appeal}"]')
    expect(row.locator("td.left")).to_contain_text("days left")
    expect(row).to_contain_text("It was a quiz about a film.")
    row.locator("a").click()
    bob.wait_for_url(f"**/console/appeals/{appeal}")
    expect(bob.locator(".appeal-text")).to_have_text("It was a quiz about a film.")
    bob.fill("#appeal-reason", "a quiz about a film")
    bob.click("button[value=reverse]")
    bob.wait_for_url("**/console/appeals")
    expect(bob.locator("tr.appeal")).to_have_count(0)

    # alice decided the post: the appeal's page offers her no outcome.
    alice.goto(console.url + f"/console/appeals/{appeal}")
    expect(alice.locator(".notice.outcome")).to_contain_text("Reversed by bob")

    bob.click("nav >> text=Escalations")
    bob.wait_for_url("**/console/escalations")
    waiting = bob.locator('tr.escalation[data-post-id="open"]')
    expect(waiting).to_contain_text("alice")
    waiting.locator("button", has_text="Own it").click()
    bob.wait_for_url("**/console/items/open")
    expect(bob.locator(".notice.owner")).to_contain_text("Owned by bob")
    bob.fill("#reason", "reported to the police")
    bob.click("button[value=remove]")
    bob.goto(console.url + "/console/escalations")
    expect(bob.locator("tr.escalation")).to_have_count(0)
    bob.goto(console.url + "/console/items/open")
    expect(bob.locator("#review-history li.step")).to_have_count(3)
