"""Source documents: their list (keyset pages, lengths, linked samples) and their page."""

from __future__ import annotations

import itertools
import re

from django.urls import reverse

from datasets.models import Batch, Dataset, Sample, SourceDocument
from tests.factories import make_sample, row_ids

_hashes = itertools.count()


def make_documents(dataset: Dataset, count: int) -> list[SourceDocument]:
    """``count`` documents titled "Passage <n>" whose text is n + 1 characters long."""
    return SourceDocument.objects.bulk_create(
        [
            SourceDocument(
                dataset=dataset,
                title=f"Passage {n}",
                text="x" * (n + 1),
                content_hash=f"h{next(_hashes)}",
            )
            for n in range(count)
        ]
    )


def ground(dataset: Dataset, document: SourceDocument, count: int) -> list[Sample]:
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.GROUNDED, requested_count=1)
    return [
        make_sample(
            dataset,
            origin=Sample.Origin.SYNTHETIC,
            batch=batch,
            seq=n,
            source_document=document,
            source_passage=document.text[:10],
        )
        for n in range(count)
    ]


def document_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="document-(\d+)"', html)]


def test_it_lists_documents_with_length_and_linked_samples(alice_client, dataset):
    short, long = make_documents(dataset, 2)
    ground(dataset, long, 3)

    html = alice_client.get(reverse("datasets:documents", args=[dataset.slug])).content.decode()

    row = re.search(rf'<tr id="document-{long.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "Passage 1" in row
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["2 chars", "3"]
    assert document_ids(html) == [long.pk, short.pk]


def test_it_walks_every_document_once_across_pages(alice_client, dataset):
    created = make_documents(dataset, 75)
    url = reverse("datasets:documents", args=[dataset.slug])
    seen = []
    while url:
        html = alice_client.get(url).content.decode()
        seen += document_ids(html)
        match = re.search(r'href="([^"]+)"[^>]*rel="next"', html)
        url = match.group(1).replace("&amp;", "&") if match else None

    assert seen == sorted((d.pk for d in created), reverse=True)


def test_it_queries_the_documents_list_the_same_for_5_and_60(
    alice_client, dataset, django_assert_max_num_queries
):
    counts = []
    for total in (5, 60):
        for document in make_documents(dataset, total - dataset.documents.count()):
            if document.pk % 7 == 0:
                ground(dataset, document, 1)
        with django_assert_max_num_queries(8) as captured:
            response = alice_client.get(reverse("datasets:documents", args=[dataset.slug]))
        assert response.status_code == 200
        counts.append(len(captured))

    assert counts[0] == counts[1]


def test_it_queries_the_document_page_the_same_for_5_and_60_samples(
    alice_client, dataset, django_assert_max_num_queries
):
    (document,) = make_documents(dataset, 1)
    url = reverse("datasets:document", args=[dataset.slug, document.pk])
    counts = []
    for total in (5, 60):
        ground(dataset, document, total - document.samples.count())
        with django_assert_max_num_queries(9) as captured:
            response = alice_client.get(url)
        assert response.status_code == 200
        counts.append(len(captured))

    assert counts[0] == counts[1]
    assert len(row_ids(response)) == 50
    assert 'rel="next"' in response.content.decode()


def test_it_shows_the_document_text_and_only_the_samples_grounded_in_it(alice_client, dataset):
    document, other = make_documents(dataset, 2)
    document.text = "Line one of the passage.\n" * 200
    document.save()
    grounded = ground(dataset, document, 2)
    ground(dataset, other, 1)
    make_sample(dataset)

    response = alice_client.get(reverse("datasets:document", args=[dataset.slug, document.pk]))

    html = response.content.decode()
    assert row_ids(response) == sorted((s.pk for s in grounded), reverse=True)
    assert '<pre id="document-text" class="sample-prose clamped">' in html
    assert 'data-expand="#document-text"' in html
    assert "Line one of the passage.\nLine one" in html
    assert "5,000 characters" in html


def test_it_says_what_to_do_when_there_are_no_documents(alice_client, bob_client, dataset):
    url = reverse("datasets:documents", args=[dataset.slug])

    lead = alice_client.get(url).content.decode()
    annotator = bob_client.get(url).content.decode()

    assert "No source documents yet" in lead
    assert reverse("datasets:import_new", args=[dataset.slug]) in lead
    assert "A lead imports them" in annotator
    assert reverse("datasets:import_new", args=[dataset.slug]) not in annotator
