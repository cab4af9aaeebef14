"""The console in Debian's Chromium (Playwright, never a browser download) against a real
``amber serve``: sign in, the most urgent item first, blurred media, decide into a bank,
and the re-upload is then removed automatically.

Set ``AMBER_CONSOLE_SCREENSHOTS=docs`` to refresh docs/console-queue.png and
docs/console-item.png (generated, benign images only).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from amber.synthetic import photo
from conftest import Databases
from test_console import Console, serve

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package"),
]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("browser")
    with databases.new(root) as db, serve(root, db) as running:
        yield running


@pytest.fixture
def page(console: Console) -> Iterator[playwright.Page]:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(10_000)
        yield context.new_page()
        context.close()
        browser.close()


def _filter(page: playwright.Page) -> str:
    return str(page.locator("figure.media img").first.evaluate("i => getComputedStyle(i).filter"))


def test_review_in_the_browser(console: Console, page: playwright.Page, tmp_path: Path) -> None:
    shots = Path(os.environ.get("AMBER_CONSOLE_SCREENSHOTS") or tmp_path)
    expect = playwright.expect

    page.goto(console.url + "/console/queue")
    assert page.url.endswith("/console/sign-in?next=/console/queue")
    page.fill("input[name=token]", console.tokens["alice"])
    page.click("button[type=submit]")
    page.wait_for_url("**/console/queue")

    rows = page.locator("tr.item")
    expect(rows).to_have_count(3)
    assert rows.first.get_attribute("data-post-id") == "urgent"
    expect(rows.first.locator("td.left")).to_contain_text("min left")
    expect(rows.first.locator(".badge.ttl")).to_be_visible()
    page.screenshot(path=str(shots / "console-queue.png"), full_page=True)

    rows.first.locator("a").click()
    page.wait_for_url("**/console/items/urgent")
    image = page.locator("figure.media img").first
    expect(image).to_be_visible()
    page.wait_for_function("() => document.querySelector('figure.media img').naturalWidth > 0")
    assert "blur(" in _filter(page) and "grayscale(1)" in _filter(page)
    page.screenshot(path=str(shots / "console-item.png"), full_page=True)

    image.click()
    assert "blur(" not in _filter(page) and "grayscale(1)" in _filter(page)
    expect(page.locator("#seen-today")).to_have_text("1")
    page.mouse.move(5, 5)  # the pointer leaves the image: blurred again
    assert "blur(" in _filter(page)
    image.click()
    assert "blur(" not in _filter(page)
    page.evaluate("() => window.dispatchEvent(new Event('blur'))")  # switching windows
    assert "blur(" in _filter(page)
    expect(page.locator("#seen-today")).to_have_text("2")

    page.locator("h1").click()
    page.keyboard.press("x")  # no reason yet: the key only puts the reviewer in the box
    expect(page.locator("#reason")).to_be_focused()
    assert page.url.endswith("/console/items/urgent")
    page.fill("#reason", "execution photo; bank it")
    page.select_option("#bank", "reviewed")
    page.locator("h1").click()
    page.keyboard.press("r")  # confirm: remove
    page.wait_for_url("**/console/items/open")  # the next most urgent item

    page.goto(console.url + "/console/queue")
    ids = page.locator("tr.item").evaluate_all("rows => rows.map(r => r.dataset.postId)")
    assert "urgent" not in ids and ids[0] == "open"

    buffer = io.BytesIO()
    photo(11, 320, 240).resize((480, 360)).save(buffer, "JPEG", quality=70)
    headers = {"authorization": f"Bearer {console.tokens['ingest']}"}
    reupload = httpx.post(
        console.url + "/v1/posts/upload",
        headers=headers,
        data={"post": json.dumps({"id": "reupload", "author": "someone-else"})},
        files=[("media", ("copy.jpg", buffer.getvalue(), "image/jpeg"))],
        timeout=30,
    )
    assert reupload.status_code == 200, reupload.text
    decided = reupload.json()
    assert decided["verdict"] == "remove"
    assert any(r.get("bank") == "reviewed" for r in decided["reasons"])
