"""The batch funnel and a sample's checks on the pages: figures, links, escaping, queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets.models import Batch, Sample
from datasets.services.verification import batch_checks_run_sync
from tests.factories import make_sample
from tests.test_checks_support import candidate, checking_batch, grounded

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> hx-get="/admin/"'
_INLINE_HANDLER = re.compile(r"<[a-zA-Z][^>]*\s(on[a-z]+|style)\s*=", re.I)


def batch_url(batch: Batch) -> str:
    return reverse("datasets:batch", args=[batch.dataset.slug, batch.pk])


def sample_url(sample: Sample) -> str:
    return reverse("datasets:sample", args=[sample.dataset.slug, sample.pk])


# Distinct enough that no two are near-duplicates of each other (rapidfuzz ratio < 85).
QUESTIONS = [
    "Which region did the Normans give their name to in case {i}?",
    "In scenario {i}, name the French area called after its Norse settlers.",
    "Example {i}: where in France did raiders from the north settle for good?",
    "For item number {i}, what land took its name from the Norsemen?",
]


def question(i: int) -> str:
    return QUESTIONS[i % len(QUESTIONS)].format(i=i * 7919)


def checked_batch(dataset, good: int = 2, bad: int = 1) -> tuple[Batch, list[Sample]]:
    batch = checking_batch(dataset)
    samples = [grounded(batch, i, question(i), "Normandy") for i in range(good)]
    samples += [
        grounded(batch, good + i, question(good + i), "Brittany and Wales") for i in range(bad)
    ]
    return batch_checks_run_sync(batch=batch), samples


def test_it_shows_the_funnel_with_counts_rates_reasons_and_difficulty(alice_client, dataset):
    real = make_sample(dataset, text="Which region, duplicated?")
    batch, samples = checked_batch(dataset, good=3, bad=1)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CHECKING)
    dup = grounded(batch, 9, "Which region, duplicated?", "Normandy")
    batch = batch_checks_run_sync(batch=batch)
    assert dup.duplicate_of_id == real.pk

    page = alice_client.get(batch_url(batch)).content.decode()

    funnel = page[page.index('id="funnel"') :]
    rows = dict(
        re.findall(
            r'<tr class="stage-(\w+)">\s*<td>[^<]*</td>\s*<td class="num">(\d+)</td>', funnel
        )
    )
    assert rows == {
        "generated": "5",
        "format": "5",
        "faithfulness": "4",
        "safety": "4",
        "unique": "3",
        "judge": "3",
    }
    assert "80%" in funnel  # faithful: 4 of 5
    assert "<strong>3</strong> accepted" in funnel
    assert "<strong>2</strong> rejected" in funnel
    reasons = funnel[funnel.index("Why samples were rejected") :]
    assert sample_url(samples[3]) in reasons  # the unfaithful example links to its sample
    assert sample_url(dup) in reasons
    assert "an exact duplicate of sample" in reasons
    levels = dict(
        re.findall(r'class="badge difficulty-(\w+)">\w+</span></dt><dd>(\d+)</dd>', funnel)
    )
    assert sum(int(n) for n in levels.values()) == 3  # the accepted ones, each with its level
    assert set(levels) == {"easy", "medium", "hard", "adversarial"}
    assert "ready for review" in funnel


def test_it_shows_the_diversity_figures_and_flags(alice_client, dataset):
    parent = make_sample(dataset, text="Is it important to buy a big car before moving?")
    batch = checking_batch(dataset, method="paraphrase")
    for seq in range(3):
        candidate(
            batch,
            seq,
            f"Is it important to buy a big car before moving{'!' * (seq + 1)}",
            parent.expected["answer"],
            parent=parent,
            expected=parent.expected,
        )
    batch = batch_checks_run_sync(batch=batch)
    assert batch.diversity["flags"] == ["low_information", "paraphrase_only"]

    page = alice_client.get(batch_url(batch)).content.decode()

    assert "Low information: mostly near-copies of the parents" in page
    assert "Paraphrase only" in page
    assert "3 of 3 (100%" in page


def test_it_escapes_hostile_item_text_and_check_details_in_the_funnel(alice_client, dataset):
    batch = checking_batch(dataset)
    grounded(batch, 0, HOSTILE, HOSTILE)
    batch = batch_checks_run_sync(batch=batch)

    page = alice_client.get(batch_url(batch)).content.decode()

    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert not _INLINE_HANDLER.search(page)
    funnel = page[page.index('id="funnel"') :]
    reasons = funnel[funnel.index("Why samples were rejected") :]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in reasons
    assert reasons.index("hx-disable") < reasons.index("&lt;script&gt;")


@pytest.mark.parametrize("htmx", [False, True])
def test_it_reads_a_checked_batch_page_in_a_constant_number_of_queries(
    alice_client, dataset, django_assert_num_queries, htmx
):
    few, _ = checked_batch(dataset, good=1, bad=1)
    many, _ = checked_batch(dataset, good=12, bad=8)
    headers = {"HX-Request": "true"} if htmx else {}
    with CaptureQueriesContext(connection) as baseline:
        alice_client.get(batch_url(few), headers=headers)

    with django_assert_num_queries(len(baseline)):
        response = alice_client.get(batch_url(many), headers=headers)

    assert response.status_code == 200


def test_it_polls_while_checking_and_says_how_far_the_checks_are(alice_client, dataset):
    batch = checking_batch(dataset)
    grounded(batch, 0, "Which region, one?", "Normandy")
    grounded(batch, 1, "Which region, two?", "Normandy")
    Sample.objects.filter(batch=batch, seq=0).update(status=Sample.Status.ACCEPTED)

    fragment = alice_client.get(batch_url(batch), headers={"HX-Request": "true"})

    html = fragment.content.decode()
    assert 'hx-trigger="every 1s"' in html
    assert "1 of 2 samples checked" in html
    assert "HX-Refresh" not in fragment

    batch_checks_run_sync(batch=batch)
    done = alice_client.get(batch_url(batch), headers={"HX-Request": "true"})
    assert "every 1s" not in done.content.decode()
    assert done["HX-Refresh"] == "true"


def test_the_sample_page_lists_each_check_with_its_model_and_prompt(alice_client, dataset):
    _, samples = checked_batch(dataset, good=0, bad=1)

    page = alice_client.get(sample_url(samples[0])).content.decode()

    checks = page[page.index('id="checks"') :]
    for kind in ("format", "faithfulness", "safety", "unique", "judge"):
        assert f'class="check-{kind}"' in checks
    assert "offline-judge / synthaug-offline-rules (built-in offline provider)" in checks
    assert "offline-judge@1 (built-in rules, no prompt)" in checks
    assert "best match of the expected answer in the passage" in checks
    assert "Automatic difficulty" in checks


def test_the_sample_page_says_when_a_sample_is_not_checked(alice_client, dataset):
    real = make_sample(dataset)
    page = alice_client.get(sample_url(real)).content.decode()
    assert "Real samples are not checked" in page
