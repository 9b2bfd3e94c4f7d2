"""Debian's Chromium driven by Playwright, logged in and watching for what must not happen.

Browser tests are not optional: a missing /usr/bin/chromium fails them (``make browser``
installs it as root).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.urls import reverse

CHROMIUM = Path("/usr/bin/chromium")
# Without the network flags Chromium floods this machine's closed network with refused
# connections at every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def logged_in_page(base_url: str, username: str, password: str) -> Iterator:
    """A page logged in through the real form, recording dialogs, CSP reports and errors.

    ``page.dialogs``, ``page.csp_errors`` and ``page.errors`` collect them; ``page.problems``
    is all three together.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`make browser`, as root) "
            "to run the browser tests; they are not optional."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.dialogs, page.csp_errors, page.errors = [], [], []

        def on_dialog(dialog) -> None:
            page.dialogs.append(dialog.message)
            dialog.dismiss()

        def on_console(message) -> None:
            if "Content Security Policy" in message.text:
                page.csp_errors.append(message.text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.set_default_timeout(15_000)
        page.goto(f"{base_url}{reverse('login')}")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("main button.primary")
        try:
            yield page
        finally:
            context.close()
            browser.close()


def problems(page) -> list[str]:
    return [*page.dialogs, *page.csp_errors, *page.errors]
