"""The web page at / in headless Chromium: a click on an item changes the list."""

from __future__ import annotations

import shutil

import pytest

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_click_changes_the_list(server, tmp_path):
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = context.new_page()
            page.goto(server.url + "/", timeout=30_000)
            page.fill("#user", "7")
            page.click("#load")
            page.wait_for_function("document.querySelectorAll('#list li').length === 10")
            page.wait_for_function("document.getElementById('status').textContent.includes('model')")
            before = page.eval_on_selector_all("#list li", "els => els.map(e => e.dataset.item)")
            page.click("#list li:first-child button")
            page.wait_for_function(
                f"document.querySelector('#list li') && "
                f"document.querySelector('#list li').dataset.item !== '{before[0]}'")
            after = page.eval_on_selector_all("#list li", "els => els.map(e => e.dataset.item)")
        finally:
            context.close()
    assert before[0] not in after and len(after) == 10
    status, health = server.get("/health")
    assert health["events"] == 1
