"""The browsing pages in a real browser, under the real CSP, with hostile samples.

Debian's Chromium driven by Playwright against the live server: nothing in the samples may
run (no dialog, no ``window.__pwned``), nothing of ours may trip the CSP (no console
violation), the table shows the stored text as text, and the htmx filter and pager swap
the table in place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from django.urls import reverse

from datasets.models import Batch, Dataset, Sample
from datasets.services.datasets import dataset_create, membership_add, user_create
from datasets.templatetags.display import INVISIBLE
from synthaug import roles
from tests.browser import logged_in_page
from tests.conftest import PASSWORD
from tests.factories import make_sample, make_samples

PWN = "window.__pwned=1;alert(1)"
HOSTILE_TEXTS = {
    "script": f"<script>{PWN}</script> is this safe?",
    "img": f"<img src=x onerror={PWN}> look",
    "link": f'<a href="javascript:{PWN}">click</a> javascript:{PWN}',
    "htmx": f'<div hx-get="/logout/" hx-trigger="load" hx-on::load="{PWN}">boom</div>',
    "bidi": "total: \u202e$01\u202c and ig\u200bnore\u2060 this\ufeff",
}
HUGE_TEXT = "B" * 1_000_000 + f"<script>{PWN}</script>"


def _visible(text: str) -> str:
    """What the table shows for ``text``: invisible characters as their U+ labels."""
    return INVISIBLE.sub(lambda m: f"U+{ord(m.group()):04X}", text)


@pytest.fixture
def browser_data(transactional_db) -> dict:
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    dataset = dataset_create(
        name="Hostile <b>QA</b>",
        slug="hostile",
        created_by=alice,
        tag_dimensions={"topic": ["law", "health"], "locale": []},
    )
    bob, _ = user_create(username="bob", role=roles.ANNOTATOR, password=PASSWORD)
    membership_add(dataset=dataset, user=bob)
    make_samples(dataset, 60, tags={"topic": "law"})
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.TEMPLATE, requested_count=3)
    for seq in range(3):
        make_sample(dataset, origin=Sample.Origin.SYNTHETIC, batch=batch, seq=seq)
    hostile = {name: make_sample(dataset, text=text) for name, text in HOSTILE_TEXTS.items()}
    hostile["json"] = make_sample(
        dataset,
        input={"question": f"</script><script>{PWN}</script>", "html": HOSTILE_TEXTS["img"]},
        text=f"</script><script>{PWN}</script>",
        expected={"answer": f"</script><img src=x onerror={PWN}>"},
    )
    hostile["huge"] = make_sample(dataset, text=HUGE_TEXT, input={"question": HUGE_TEXT})
    # Read back now, while no event loop runs (Playwright's sync API runs one, and Django
    # refuses ORM calls beside it): jsonb stores keys in its own order, which the page shows.
    hostile = {name: Sample.objects.get(pk=sample.pk) for name, sample in hostile.items()}
    return {"dataset": dataset, "hostile": hostile}


@pytest.fixture
def page(live_server, browser_data) -> Iterator:
    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        assert page.url == f"{live_server.url}{reverse('datasets:list')}"
        yield page


def _assert_nothing_ran(page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []
    assert page.csp_errors == []
    assert page.errors == []


def test_it_browses_hostile_samples_safely_and_swaps_the_table_with_htmx(
    live_server, browser_data, page
):
    from playwright.sync_api import expect

    dataset: Dataset = browser_data["dataset"]
    hostile: dict[str, Sample] = browser_data["hostile"]
    detail = f"{live_server.url}{reverse('datasets:detail', args=[dataset.slug])}"

    page.goto(detail)
    rows = page.locator("#samples tbody tr")
    expect(rows).to_have_count(50)
    assert page.evaluate("typeof htmx") == "object"  # loaded with its nonce under the CSP
    for name, text in HOSTILE_TEXTS.items():
        cell = page.locator(f"#sample-{hostile[name].pk} .col-input .sample-text")
        assert cell.inner_text() == _visible(text), name
    assert page.locator(f"#sample-{hostile['bidi'].pk} .invisible-char").count() == 5
    json_cell = page.locator(f"#sample-{hostile['json'].pk} .col-input .sample-text")
    assert json_cell.inner_text() == hostile["json"].text
    huge_cell = page.locator(f"#sample-{hostile['huge'].pk} .col-input .sample-text")
    assert huge_cell.inner_text() == HUGE_TEXT[:300] + "…"
    _assert_nothing_ran(page)

    # Filter: the select fires the form's htmx request; the table is swapped, the URL pushed.
    page.evaluate("window.__stayed = true")
    page.select_option("select[name=origin]", "synthetic")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(f"{detail}?origin=synthetic")  # empty fields left out
    assert page.evaluate("window.__stayed") is True  # swapped in place, not reloaded
    page.select_option("select[name=origin]", "")
    expect(rows).to_have_count(50)
    expect(page).to_have_url(detail)

    # Next: the pager link swaps in the older page.
    first_ids = rows.evaluate_all("rows => rows.map(r => r.id)")
    page.click("#samples a[rel=next]")
    expect(page).to_have_url(re.compile(r"after=\d+"))
    expect(rows).to_have_count(20)
    older_ids = rows.evaluate_all("rows => rows.map(r => r.id)")
    assert not set(first_ids) & set(older_ids)
    assert page.evaluate("window.__stayed") is True
    assert page.locator("header.topbar").count() == 1

    # Back: htmx restores history from the server; it must get the whole page, not the table.
    page.go_back()
    expect(page).not_to_have_url(re.compile(r"after="))
    expect(rows).to_have_count(50)
    assert page.locator("header.topbar").count() == 1
    assert page.locator("form.filters").count() == 1
    _assert_nothing_ran(page)


def test_it_shows_hostile_sample_pages_as_text(live_server, browser_data, page):
    dataset: Dataset = browser_data["dataset"]
    hostile: dict[str, Sample] = browser_data["hostile"]

    for name, sample in hostile.items():
        page.goto(f"{live_server.url}{reverse('datasets:sample', args=[dataset.slug, sample.pk])}")
        text = page.locator("#input-json").inner_text()
        assert text == _visible(json.dumps(sample.input, indent=2, ensure_ascii=False)), name
        _assert_nothing_ran(page)

    # The megabyte item is clamped; "Show all" (app.js, no inline handler) unclamps it.
    page.goto(
        f"{live_server.url}{reverse('datasets:sample', args=[dataset.slug, hostile['huge'].pk])}"
    )
    pre = page.locator("#input-json")
    assert "clamped" in pre.get_attribute("class")
    assert pre.evaluate("el => el.scrollHeight > el.clientHeight * 10")
    page.click("button[data-expand='#input-json']")
    assert "clamped" not in pre.get_attribute("class")
    assert page.locator("button[data-expand='#input-json']").count() == 0
    _assert_nothing_ran(page)
