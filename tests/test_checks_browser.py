"""The checking stage in a real browser under the real CSP: the batch page polls while the
batch is CHECKING, reloads once it is READY, shows the funnel, and an example links to the
sample page with its checks. Hostile item text stays text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import reverse

from datasets.services.datasets import dataset_create, user_create
from datasets.services.generation import offline_endpoints
from synthaug import roles
from tests.browser import logged_in_page, problems
from tests.conftest import PASSWORD
from tests.test_batch_pages_browser import in_thread
from tests.test_checks_support import checking_batch, grounded

PWN = "<img src=x onerror=window.__pwned=1><script>window.__pwned=1</script>"


@pytest.fixture
def checking(transactional_db) -> dict:
    offline_endpoints()
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    dataset = dataset_create(name="Normans", slug="normans", created_by=alice, tag_dimensions={})
    batch = checking_batch(dataset)
    good = grounded(batch, 0, "Which region did the Normans name?", "Normandy")
    bad = grounded(batch, 1, f"Which region? {PWN}", "Brittany and Wales")
    return {"dataset": dataset, "batch": batch, "good": good, "bad": bad}


@pytest.fixture
def page(live_server, checking) -> Iterator:
    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        yield page


def test_it_follows_the_checks_and_shows_the_funnel(live_server, checking, page):
    from playwright.sync_api import expect

    batch = checking["batch"]
    page.goto(f"{live_server.url}{batch.get_absolute_url()}")
    expect(page.locator("#progress .badge")).to_have_text("Checking")
    expect(page.locator(".checks-progress")).to_contain_text("0 of 2 samples checked")
    assert page.locator("#progress").get_attribute("hx-trigger") == "every 1s"

    def run() -> None:
        from datasets.services.verification import batch_checks_run_sync

        batch_checks_run_sync(batch=batch)

    in_thread(run)
    expect(page.locator("#progress .badge")).to_have_text("Ready for review", timeout=20_000)
    funnel = page.locator("#funnel")
    expect(funnel.locator("tr.stage-judge td.num").first).to_have_text("1")
    expect(funnel.locator("tr.reason-faithfulness")).to_contain_text("Which region?")
    expect(funnel.locator("tr.reason-faithfulness")).to_contain_text("<script>")  # as text

    bad = checking["bad"]
    with page.expect_navigation():
        funnel.locator("tr.reason-faithfulness a").first.click()
    expect(page).to_have_url(
        f"{live_server.url}{reverse('datasets:sample', args=[bad.dataset.slug, bad.pk])}"
    )
    checks = page.locator("#checks")
    expect(checks.locator("tr.check-faithfulness")).to_contain_text("fail")
    expect(checks.locator("tr.check-judge")).to_contain_text("offline-judge@1")
    assert page.evaluate("window.__pwned") is None
    assert problems(page) == []
