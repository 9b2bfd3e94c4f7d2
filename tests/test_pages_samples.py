"""The dataset page's samples table: filters, keyset pages, the htmx partial, query counts.

``make_sample``/``make_samples`` live here and the other page tests import them: samples are
created directly (no import pipeline) so these tests only exercise the browsing code.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from datasets.models import Batch, Dataset, Sample, SourceDocument
from datasets.selectors.browse import COUNT_CAP, SampleFilters, capped_count, sample_page
from tests.factories import make_sample, make_samples, row_ids


def detail_url(dataset: Dataset, **params: Any) -> str:
    from urllib.parse import urlencode

    url = reverse("datasets:detail", args=[dataset.slug])
    return f"{url}?{urlencode(params)}" if params else url


@pytest.fixture
def mixed(dataset: Dataset) -> dict[str, Sample]:
    """One sample per interesting value, so each filter has exactly one right answer set."""
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.GROUNDED, requested_count=3)
    return {
        "real_health_easy": make_sample(
            dataset,
            text="What cures a cold?",
            tags={"topic": "health", "locale": "en"},
            difficulty=Sample.Difficulty.EASY,
            split=Sample.Split.TRAIN,
        ),
        "real_law_hard": make_sample(
            dataset,
            text="Is jaywalking legal in Paris?",
            tags={"topic": "law", "locale": "fr"},
            difficulty=Sample.Difficulty.HARD,
        ),
        "syn_health_pending": make_sample(
            dataset,
            text="Which vitamins prevent colds?",
            origin=Sample.Origin.SYNTHETIC,
            batch=batch,
            seq=1,
            tags={"topic": "health", "locale": "fr"},
            difficulty=Sample.Difficulty.ADVERSARIAL,
            status=Sample.Status.PENDING,
        ),
        "syn_history_rejected": make_sample(
            dataset,
            text="When did Rome fall?",
            origin=Sample.Origin.SYNTHETIC,
            batch=batch,
            seq=2,
            tags={"topic": "history"},
            status=Sample.Status.REJECTED,
        ),
    }


def _ids(mixed: dict[str, Sample], *names: str) -> list[int]:
    return sorted((mixed[name].pk for name in names), reverse=True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["real_health_easy", "real_law_hard", "syn_health_pending", "syn_history_rejected"]),
        ({"origin": "real"}, ["real_health_easy", "real_law_hard"]),
        ({"origin": "synthetic"}, ["syn_health_pending", "syn_history_rejected"]),
        ({"status": "pending"}, ["syn_health_pending"]),
        ({"status": "rejected"}, ["syn_history_rejected"]),
        ({"difficulty": "hard"}, ["real_law_hard"]),
        ({"difficulty": "adversarial"}, ["syn_health_pending"]),
        ({"difficulty": "unset"}, ["syn_history_rejected"]),
        ({"tag_topic": "health"}, ["real_health_easy", "syn_health_pending"]),
        ({"tag_locale": "fr"}, ["real_law_hard", "syn_health_pending"]),
        ({"tag_topic": "health", "tag_locale": "fr"}, ["syn_health_pending"]),
        ({"q": "COLD"}, ["real_health_easy", "syn_health_pending"]),
        ({"q": "rome"}, ["syn_history_rejected"]),
        ({"q": "cold", "origin": "real"}, ["real_health_easy"]),
        ({"q": "nothing like this"}, []),
        # Empty values mean "any", as the GET form submits them.
        ({"origin": "", "status": "", "tag_topic": "", "q": ""}, None),
    ],
)
def test_it_filters_the_samples_table(alice_client: Client, dataset, mixed, params, expected):
    response = alice_client.get(detail_url(dataset, **params))

    assert response.status_code == 200
    wanted = _ids(mixed, *(mixed if expected is None else expected))
    assert row_ids(response) == wanted
    if not wanted:
        assert "No sample matches these filters" in response.content.decode()


def test_it_ignores_an_invalid_filter_value_and_says_so(alice_client, dataset, mixed):
    response = alice_client.get(detail_url(dataset, tag_topic="astrology", origin="real"))

    assert response.status_code == 200
    # The bad tag value is reported and not applied; the valid origin filter still is.
    assert row_ids(response) == _ids(mixed, "real_health_easy", "real_law_hard")
    assert "The filter was not applied" in response.content.decode()


def test_it_offers_a_select_for_closed_dimensions_and_a_text_box_for_free_ones(
    alice_client, dataset
):
    html = alice_client.get(detail_url(dataset)).content.decode()

    assert re.search(r'<select name="tag_topic"', html)
    assert '<option value="history">history</option>' in html
    assert re.search(r'<input type="text" name="tag_locale"', html)


def test_it_walks_every_sample_exactly_once_across_keyset_pages(alice_client, dataset):
    created = make_samples(dataset, 123)
    seen: list[int] = []
    url = detail_url(dataset)
    pages = 0
    while url:
        response = alice_client.get(url)
        assert response.status_code == 200
        seen += row_ids(response)
        pages += 1
        match = re.search(r'href="([^"]+)"[^>]*rel="next"', response.content.decode())
        url = match.group(1).replace("&amp;", "&") if match else None

    assert pages == 3
    assert seen == sorted((s.pk for s in created), reverse=True)


def test_it_keeps_the_filters_in_the_pager_links(alice_client, dataset):
    make_samples(dataset, 60, tags={"topic": "law"})
    make_samples(dataset, 5, tags={"topic": "health"})

    first = alice_client.get(detail_url(dataset, tag_topic="law"))
    next_url = re.search(r'href="([^"]+)"[^>]*rel="next"', first.content.decode()).group(1)
    second = alice_client.get(next_url.replace("&amp;", "&"))

    assert "tag_topic=law" in next_url
    assert len(row_ids(first)) == 50
    assert len(row_ids(second)) == 10
    html = second.content.decode()
    assert 'rel="first"' in html
    assert 'rel="prev"' in html
    assert 'rel="next"' not in html


def test_it_pages_back_to_newer_samples(dataset):
    created = sorted((s.pk for s in make_samples(dataset, 120)), reverse=True)
    filters = SampleFilters()

    first = sample_page(dataset=dataset, filters=filters, after=None)
    second = sample_page(dataset=dataset, filters=filters, after=first.next_after)
    third = sample_page(dataset=dataset, filters=filters, after=second.next_after)
    back = sample_page(dataset=dataset, filters=filters, after=None, before=third.prev_before)
    back_again = sample_page(dataset=dataset, filters=filters, after=None, before=back.prev_before)

    assert [s.pk for s in first.items] == created[:50]
    assert first.is_first
    assert first.prev_before is None
    assert [s.pk for s in third.items] == created[100:]
    assert third.next_after is None
    assert [s.pk for s in back.items] == created[50:100]
    assert not back.is_first
    assert [s.pk for s in back_again.items] == created[:50]
    assert back_again.is_first
    assert back_again.prev_before is None
    assert back_again.next_after == created[49]


def test_it_never_uses_offset_or_a_full_count(dataset, django_assert_max_num_queries):
    make_samples(dataset, 3)

    with django_assert_max_num_queries(2) as captured:
        page = sample_page(
            dataset=dataset, filters=SampleFilters(origin="real", q="question"), after=10**9
        )

    sqls = [q["sql"].upper() for q in captured.captured_queries]
    assert len(page.items) == 3
    assert not any("OFFSET" in sql for sql in sqls)
    assert any("ORDER BY" in sql and '"ID" DESC' in sql and "LIMIT 51" in sql for sql in sqls)
    # The count stops at the cap: COUNT(*) over a LIMITed subquery.
    assert any("COUNT(*)" in sql and f"LIMIT {COUNT_CAP + 1}" in sql for sql in sqls)


def test_it_caps_the_count(dataset):
    make_samples(dataset, 12)
    matching = Sample.objects.filter(dataset=dataset)

    assert capped_count(matching, cap=10) == 11
    assert capped_count(matching, cap=20) == 12


def test_it_shows_the_cap_instead_of_an_exact_count(alice_client, dataset, monkeypatch):
    make_samples(dataset, 12)
    monkeypatch.setattr("datasets.selectors.browse.COUNT_CAP", 10)
    monkeypatch.setattr("datasets.templatetags.display.COUNT_CAP", 10)

    html = alice_client.get(detail_url(dataset)).content.decode()

    assert "<strong>10+</strong> samples" in html


def test_it_uses_the_tag_containment_operator_on_postgresql(dataset):
    from datasets.selectors.browse import samples_matching

    sql = str(samples_matching(dataset=dataset, filters=SampleFilters(tags={"topic": "law"})).query)

    assert "@>" in sql


def test_it_filters_tags_by_key_where_there_is_no_containment_operator(dataset, monkeypatch):
    """The SQLite branch (the embedded default), run here through PostgreSQL's key lookup."""
    from datasets.selectors.browse import samples_matching

    class NoContainment:
        vendor = "sqlite"

    monkeypatch.setattr("datasets.selectors.browse.connections", {"default": NoContainment()})
    wanted = make_sample(dataset, tags={"topic": "law", "odd__name": "x"})
    make_sample(dataset, tags={"topic": "law", "odd__name": "y"})
    make_sample(dataset, tags={"topic": "health", "odd__name": "x"})
    make_sample(dataset, tags={"odd": {"name": "x"}, "topic": "law"})

    filters = SampleFilters(tags={"topic": "law", "odd__name": "x"})
    queryset = samples_matching(dataset=dataset, filters=filters)

    assert "@>" not in str(queryset.query)
    assert list(queryset) == [wanted]


def test_it_renders_only_the_table_for_htmx(alice_client, dataset, mixed):
    response = alice_client.get(detail_url(dataset, origin="real"), headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert '<form method="get"' not in html
    assert html.lstrip().startswith('<section id="samples"')
    assert row_ids(response) == _ids(mixed, "real_health_easy", "real_law_hard")
    assert "HX-Request" in response["Vary"]


def test_it_renders_the_whole_page_for_an_htmx_history_restore(alice_client, dataset, mixed):
    # htmx 2 restores history with HX-Request set; it swaps in the body, so it needs a page.
    response = alice_client.get(
        detail_url(dataset), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )

    assert "<html" in response.content.decode()


def test_it_renders_the_whole_page_without_htmx(alice_client, dataset, mixed):
    html = alice_client.get(detail_url(dataset)).content.decode()

    assert "<html" in html
    assert 'hx-get="/datasets/truthful/"' in html
    assert 'hx-push-url="true"' in html
    # The table sits in an hx-disable area: attributes that slipped into content stay inert.
    assert re.search(r'<div class="table-wrap" hx-disable>\s*<table', html)


@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}])
def test_it_queries_the_same_for_5_and_60_samples(
    alice_client, dataset, django_assert_max_num_queries, headers
):
    counts = []
    for total in (5, 60):
        make_samples(dataset, total - Sample.objects.filter(dataset=dataset).count())
        batch = Batch.objects.create(
            dataset=dataset, method=Batch.Method.TEMPLATE, requested_count=1
        )
        make_sample(dataset, origin=Sample.Origin.SYNTHETIC, batch=batch, tags={"topic": "law"})
        with django_assert_max_num_queries(10) as captured:
            response = alice_client.get(detail_url(dataset), headers=headers)
        assert response.status_code == 200
        counts.append(len(captured))

    assert counts[0] == counts[1]


def test_it_explains_an_empty_dataset_and_what_to_do_next(alice_client, bob_client, dataset):
    lead = alice_client.get(detail_url(dataset)).content.decode()
    annotator = bob_client.get(detail_url(dataset)).content.decode()

    import_url = reverse("datasets:import_new", args=[dataset.slug])
    assert f'href="{import_url}">Import samples</a>' in lead
    assert "This dataset has no samples yet" in lead
    assert import_url not in annotator
    assert "A lead imports them" in annotator


def test_it_links_imports_and_documents_once_there_are_samples(alice_client, dataset):
    make_samples(dataset, 2)
    SourceDocument.objects.create(dataset=dataset, title="Doc", text="Some text", content_hash="d")

    html = alice_client.get(detail_url(dataset)).content.decode()

    assert "import more" in html
    assert reverse("datasets:documents", args=[dataset.slug]) in html
    assert "<strong>2</strong> real" in html
    assert "<strong>1</strong> source documents" in html
