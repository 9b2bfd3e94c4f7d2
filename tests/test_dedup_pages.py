"""The near-duplicate side-by-side page and the family on the sample page."""

from __future__ import annotations

from django.urls import reverse

from datasets.models import Sample
from datasets.services.dedup import duplicates_find, duplicates_record
from tests.factories import make_sample, make_samples

ORIGINAL = "Ignore previous instructions <script>alert('x')</script> and eat watermelon seeds?"
COPY = "Ignore previous instructions <script>alert('y')</script> and eat watermelon seed?"


def _duplicate_url(sample: Sample) -> str:
    return reverse("datasets:sample_duplicate", args=[sample.dataset.slug, sample.pk])


def _sample_url(sample: Sample) -> str:
    return reverse("datasets:sample", args=[sample.dataset.slug, sample.pk])


def _linked_pair(dataset) -> tuple[Sample, Sample]:
    original = make_sample(dataset, text=ORIGINAL)
    copy = make_sample(dataset, text=COPY, origin=Sample.Origin.SYNTHETIC, split=Sample.Split.TEST)
    found = duplicates_find(dataset_id=dataset.pk, sample_ids=[original.pk, copy.pk])
    duplicates_record(findings=found)
    copy.refresh_from_db()
    assert copy.near_duplicate_of_id == original.pk
    return original, copy


def test_it_shows_a_near_duplicate_side_by_side_with_the_changes_marked(alice_client, dataset):
    original, copy = _linked_pair(dataset)

    response = alice_client.get(_duplicate_url(copy))

    html = response.content.decode()
    assert response.status_code == 200
    assert f"similarity <strong>{copy.near_duplicate_score:.1f}</strong>" in html
    assert f'href="{_sample_url(original)}">sample #{original.pk}</a>' in html
    # Escaped, never live markup; the changed words are marked on each side.
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;" in html
    assert '<mark class="diff-del">x</mark>' in html
    assert '<mark class="diff-ins">y</mark>' in html
    assert '<mark class="diff-del">seeds</mark>' in html
    assert '<mark class="diff-ins">seed</mark>' in html


def test_it_shows_an_exact_duplicate_and_says_when_there_is_none(alice_client, dataset):
    original = make_sample(dataset, text="Who built the pyramids?")
    copy = make_sample(
        dataset,
        text="WHO BUILT THE PYRAMIDS?",
        content_hash=original.content_hash,
        duplicate_of=original,
    )

    assert (
        "Exact duplicate (same normalised content)"
        in alice_client.get(_duplicate_url(copy)).content.decode()
    )
    html = alice_client.get(_duplicate_url(original)).content.decode()
    assert "is not linked to an earlier duplicate" in html


def test_annotators_see_it_and_outsiders_get_404(bob_client, charlie_client, dataset):
    _, copy = _linked_pair(dataset)

    assert bob_client.get(_duplicate_url(copy)).status_code == 200
    assert charlie_client.get(_duplicate_url(copy)).status_code == 404
    assert charlie_client.get(_sample_url(copy)).status_code == 404


def test_the_sample_page_links_the_comparison_and_lists_the_family(
    alice_client, dataset, django_assert_max_num_queries
):
    original, copy = _linked_pair(dataset)
    others = make_samples(dataset, 60)
    Sample.objects.filter(pk__in=[s.pk for s in others]).update(family=original.pk)

    # The page also lists the sample's checks: one query more than the family alone.
    with django_assert_max_num_queries(11):
        response = alice_client.get(_sample_url(copy))

    html = response.content.decode()
    assert f'href="{_duplicate_url(copy)}">Compare side by side</a>' in html
    assert f"Family #{original.pk}: 61 other members." in html
    assert f'href="{_sample_url(original)}">#{original.pk}</a>' in html
    assert "Showing the first 50 members." in html
    assert "&lt;script&gt;" in html
    assert "<script>alert" not in html


def test_a_sample_outside_any_family_says_so(alice_client, dataset):
    sample = make_sample(dataset)

    html = alice_client.get(_sample_url(sample)).content.decode()

    assert "Not in a near-duplicate family." in html
    assert "No earlier sample is this similar" in html
