"""The coverage page in a real browser, under the real CSP, with hostile tag values."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import reverse

from datasets.models import Batch
from datasets.services.coverage import coverage_counts_refresh
from datasets.services.datasets import dataset_create, membership_add, user_create
from synthaug import roles
from tests.browser import logged_in_page, problems
from tests.conftest import PASSWORD
from tests.factories import make_sample, make_samples

PWN = "window.__pwned=1;alert(1)"
HOSTILE_LOCALE = f"<img src=x onerror={PWN}>"
HOSTILE_WHY = f"<script>{PWN}</script> because"


@pytest.fixture
def coverage_data(transactional_db) -> dict:
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    dataset = dataset_create(
        name="Hostile <b>coverage</b>",
        slug="hostile-coverage",
        created_by=alice,
        tag_dimensions={"topic": ["law", "health"], "locale": []},
    )
    bob, _ = user_create(username="bob", role=roles.ANNOTATOR, password=PASSWORD)
    membership_add(dataset=dataset, user=bob)
    dataset.coverage_default_target = 6
    dataset.save()
    make_samples(dataset, 4, tags={"topic": "law", "locale": HOSTILE_LOCALE}, difficulty="hard")
    make_samples(dataset, 2, tags={"locale": "en"}, difficulty="easy")
    batch = Batch.objects.create(
        dataset=dataset,
        method=Batch.Method.PARAPHRASE,
        requested_count=5,
        target_tags={"topic": "law", "locale": HOSTILE_LOCALE},
        target_difficulty="hard",
        why_synthetic=HOSTILE_WHY,
    )
    for _ in range(5):
        make_sample(
            dataset,
            origin="synthetic",
            batch=batch,
            tags={"topic": "law", "locale": HOSTILE_LOCALE},
            difficulty="hard",
        )
    coverage_counts_refresh(dataset_id=dataset.pk)
    return {"dataset": dataset, "batch": batch}


@pytest.fixture
def lead_page(live_server, coverage_data) -> Iterator:
    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        yield page


def test_it_draws_the_matrix_and_opens_a_gap_as_a_batch_safely(
    live_server, coverage_data, lead_page
):
    from playwright.sync_api import expect

    page = lead_page
    dataset = coverage_data["dataset"]
    page.goto(
        f"{live_server.url}{reverse('datasets:coverage', args=[dataset.slug])}"
        f"?dims=topic,locale&batch={coverage_data['batch'].pk}"
    )
    # Two heatmaps and the bars, drawn as SVG; the hostile value is text in a <title>.
    expect(page.locator("figure.heatmap svg")).to_have_count(2)
    titles = page.locator("figure.heatmap-gap svg title").all_text_contents()
    assert any(HOSTILE_LOCALE in title for title in titles)
    share = page.locator("figure.heatmap-share svg text").all_text_contents()
    assert "56% !" in share  # 5 synthetic of 9 approved, over the 50% ceiling
    matrix_heads = page.locator("table.coverage-matrix tbody th").all_text_contents()
    assert any(HOSTILE_LOCALE in text for text in matrix_heads), matrix_heads
    assert HOSTILE_WHY in page.locator("table.coverage-batches").inner_text()
    assert page.locator("#before-after tbody tr").count() == 1
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert problems(page) == []

    # Fill this gap: law x en x hard has nothing; the form opens filled in.
    link = page.locator(
        "table.coverage-matrix a.fill-gap[href*='tag.topic=law&tag.locale=en&difficulty=hard']"
    )
    expect(link).to_have_count(1)
    link.click()
    expect(page).to_have_url(re.compile(r"/batches/new/\?"))
    assert page.locator("[name=count]").input_value() == "6"
    assert page.locator("[name=difficulty]").input_value() == "hard"
    assert page.locator("[name=method]").input_value() == "template"
    assert problems(page) == []


def test_an_annotator_sees_the_matrix_without_fill_buttons(live_server, coverage_data):
    dataset = coverage_data["dataset"]
    with logged_in_page(live_server.url, "bob", PASSWORD) as page:
        page.goto(f"{live_server.url}{reverse('datasets:coverage', args=[dataset.slug])}")
        assert page.locator("table.coverage-matrix").count() == 1
        assert page.locator("a.fill-gap").count() == 0
        assert problems(page) == []
