"""The generation pages in a real browser under the real CSP: the new-batch form swaps in the
chosen method's fields and follows the estimate with htmx, launching goes to the batch page,
which polls while the batch runs and reloads once when it finishes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from datasets.models import Batch, ModelEndpoint, PromptTemplate, PromptVersion
from datasets.services.datasets import dataset_create, user_create
from datasets.services.generation import offline_endpoints, prompt_default
from synthaug import roles
from tests.browser import logged_in_page, problems
from tests.conftest import PASSWORD

PWN = "window.__pwned=1;alert(1)"


def in_thread(work: Callable[[], object]) -> object:
    """Run ORM work beside Playwright's event loop (Django refuses it on the loop's thread)."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0] if result else None


@pytest.fixture
def browser_data(transactional_db) -> dict:
    # A transactional test before this one may have flushed what migration 0005 seeded.
    offline_endpoints()
    for purpose in PromptTemplate.Purpose.values:
        prompt_default(purpose=purpose)
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    dataset = dataset_create(
        name="Law QA",
        slug="law",
        created_by=alice,
        tag_dimensions={"topic": ["law", "health"], "locale": []},
    )
    paid = ModelEndpoint.objects.create(
        name="paid",
        base_url="http://127.0.0.1:9/v1",
        model="big-model",
        family="big",
        price_in_per_1k=Decimal("1"),
        price_out_per_1k=Decimal("2"),
    )
    template = PromptTemplate.objects.create(
        name=f"<img src=x onerror={PWN}>", purpose="adversarial"
    )
    PromptVersion.objects.create(
        template=template, number=1, user="{question} {kind}", output_schema={}
    )
    return {"dataset": dataset, "paid": paid}


@pytest.fixture
def sent(monkeypatch) -> list:
    """Chunk tasks the launch sends (recorded, not sent: no worker runs in this test)."""
    from datasets.tasks import batch_generate_chunk

    calls: list = []
    monkeypatch.setattr(batch_generate_chunk, "apply_async", lambda *a, **k: calls.append(a))
    return calls


@pytest.fixture
def page(live_server, browser_data) -> Iterator:
    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        yield page


def test_it_fills_in_the_form_with_htmx_and_follows_the_batch_until_it_is_done(
    live_server, browser_data, page, sent
):
    from playwright.sync_api import expect

    dataset = browser_data["dataset"]
    url = f"{live_server.url}{reverse('datasets:batch_new', args=[dataset.slug])}"
    page.goto(url + "?tag.topic=law&difficulty=hard&method=grounded&count=25")
    assert page.input_value("select[name='tag.topic']") == "law"
    assert page.input_value("input[name=count]") == "25"
    page.evaluate("window.__stayed = true")

    # Choosing a method swaps in its fields, and its prompt versions out of band.
    page.select_option("select[name=method]", "adversarial")
    expect(page.locator("input[name=kinds]")).to_have_count(8)
    prompt_options = page.locator("select[name=prompt_version] option")
    expect(prompt_options.filter(has_text="@v1")).to_have_count(2)
    assert any("<img src=x" in text for text in prompt_options.all_inner_texts())  # as text
    page.select_option("select[name=method]", "template")
    expect(page.locator("textarea[name=template_text]")).to_be_visible()
    expect(page.locator("input[name=kinds]")).to_have_count(0)

    # The estimate follows the form: a paying generator makes calls, and the cap warns.
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("Free: the built-in offline provider")
    page.select_option("select[name=generator]", str(browser_data["paid"].pk))
    expect(estimate).to_contain_text("25 model calls")
    page.fill("input[name=count]", "4")
    page.locator("input[name=count]").dispatch_event("change")
    expect(estimate).to_contain_text("4 model calls")
    page.fill("input[name=budget_cap]", "0.0001")
    page.locator("input[name=budget_cap]").dispatch_event("change")
    expect(estimate).to_contain_text("above the budget cap")
    assert page.evaluate("window.__stayed") is True  # all of it in place, no reload

    # The generator as judge is refused on the form, with what was typed kept.
    generator = page.input_value("select[name=generator]")
    page.select_option("select[name=judge]", generator)
    page.fill("textarea[name=template_text]", "What does {country} law say about {subject}?")
    page.fill("textarea[name=slots]", "country: France, Spain\nsubject: tenancy, contracts")
    page.fill("textarea[name=why_synthetic]", "Real law questions are rare.")
    page.fill("textarea[name=judging_plan]", "Faithful to the slots.")
    page.fill("input[name=budget_cap]", "")
    with page.expect_navigation():
        page.click("button:has-text('Launch batch')")
    expect(page.locator("#id_judge_error")).to_contain_text("The judge must not be the generator")
    assert page.input_value("textarea[name=why_synthetic]") == "Real law questions are rare."

    # Launch with the built-in pair: the batch page follows the queued batch.
    page.select_option(
        "select[name=generator]",
        label="offline-generator: synthaug-offline (built-in, no network, free)",
    )
    page.select_option(
        "select[name=judge]",
        label="offline-judge: synthaug-offline-rules (built-in, no network, free)",
    )
    with page.expect_navigation():
        page.click("button:has-text('Launch batch')")
    batch = in_thread(lambda: Batch.objects.get())
    expect(page).to_have_url(
        f"{live_server.url}{reverse('datasets:batch', args=[dataset.slug, batch.pk])}"
    )
    assert sent  # the chunk task went out once the launch committed
    progress = page.locator("#progress")
    assert progress.get_attribute("hx-trigger") == "every 1s"
    expect(page.locator(".family-warning")).to_be_visible()

    # Generate it in-process; the polled fragment sees it finish and the page reloads once.
    def run() -> None:
        from datasets.services.generation import batch_run_sync

        batch_run_sync(batch=Batch.objects.get())

    in_thread(run)
    expect(page.locator("#progress .badge")).to_have_text("Ready for review", timeout=20_000)
    assert page.locator("#progress").get_attribute("hx-trigger") is None
    expect(page.locator(".batch-samples tbody tr")).to_have_count(4)
    assert problems(page) == []
