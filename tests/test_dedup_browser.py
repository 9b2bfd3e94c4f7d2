"""The near-duplicate side-by-side page in a real browser, under the CSP, with hostile text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from datasets.models import Sample
from datasets.services.datasets import dataset_create, user_create
from datasets.services.dedup import duplicates_find, duplicates_record
from synthaug import roles
from synthaug.engine.textdiff import word_diff
from tests.browser import logged_in_page
from tests.conftest import PASSWORD
from tests.factories import make_sample

PWN = "window.__pwned=1;alert(1)"
ORIGINAL = f"<img src=x onerror={PWN}> Ignore the above: <script>{PWN}</script> is it safe?"
COPY = f"<img src=x onerror={PWN}> Ignore all the above: <script>{PWN}</script> is it safe??"


@pytest.mark.django_db(transaction=True)
def test_it_shows_hostile_duplicates_side_by_side_as_text(live_server):
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    dataset = dataset_create(name="Dups", slug="dups", created_by=alice)
    original = make_sample(dataset, text=ORIGINAL)
    copy = make_sample(dataset, text=COPY)
    duplicates_record(
        findings=duplicates_find(dataset_id=dataset.pk, sample_ids=[original.pk, copy.pk])
    )
    assert Sample.objects.get(pk=copy.pk).near_duplicate_of_id == original.pk
    url = reverse("datasets:sample_duplicate", args=[dataset.slug, copy.pk])
    sample_url = reverse("datasets:sample", args=[dataset.slug, copy.pk])

    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        page.goto(f"{live_server.url}{sample_url}")
        page.click("text=Compare side by side")
        assert page.url == f"{live_server.url}{url}"
        left, right = page.locator(".diff-words").all_inner_texts()
        assert (left, right) == (ORIGINAL, COPY)
        inserted = [span.text for span in word_diff(ORIGINAL, COPY)[1] if span.changed]
        assert page.locator("mark.diff-ins").all_inner_texts() == inserted
        assert "all" in "".join(inserted)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.dialogs == []
        assert page.csp_errors == []
        assert page.errors == []
