"""The sample page: content, labels, identity and full provenance, empty fields said plainly."""

from __future__ import annotations

from django.urls import reverse

from datasets.models import Batch, ImportJob, Sample, SourceDocument
from tests.factories import make_sample


def _url(sample: Sample) -> str:
    return reverse("datasets:sample", args=[sample.dataset.slug, sample.pk])


def test_it_shows_a_real_sample_with_its_import_provenance(alice, alice_client, dataset):
    job = ImportJob.objects.create(
        dataset=dataset,
        created_by=alice,
        format=ImportJob.Format.CSV,
        file_name="seed.csv",
        status=ImportJob.Status.SUCCEEDED,
    )
    original = make_sample(dataset, text="What is the capital of France?")
    sample = make_sample(
        dataset,
        text="what is the capital of france?",
        content_hash=original.content_hash,
        duplicate_of=original,
        expected={"answer": "Paris"},
        tags={"topic": "history", "locale": "en"},
        difficulty=Sample.Difficulty.EASY,
        difficulty_source=Sample.DifficultySource.HUMAN,
        difficulty_set_by=alice,
        difficulty_rationale="One fact, standard phrasing.",
        split=Sample.Split.DEV,
        external_id="tqa-17",
        import_job=job,
        source_file="seed.csv",
        source_row=17,
    )

    html = alice_client.get(_url(sample)).content.decode()

    assert "&quot;question&quot;: &quot;what is the capital of france?&quot;" in html
    assert "&quot;answer&quot;: &quot;Paris&quot;" in html
    assert '<span class="muted">topic:</span> history' in html
    assert "Set by a person (alice)" in html
    assert "One fact, standard phrasing." in html
    assert "Dev" in html
    assert sample.content_hash in html
    assert sample.source_group in html
    assert "tqa-17" in html
    assert f'href="{_url(original)}">Sample #{original.pk}</a>' in html
    import_url = reverse("datasets:import_detail", args=[dataset.slug, job.pk])
    assert f'href="{import_url}">Import #{job.pk}</a>' in html
    assert "seed.csv" in html
    assert "<dd>17</dd>" in html


def test_it_names_the_import_without_linking_it_for_annotators(alice, bob_client, dataset):
    job = ImportJob.objects.create(
        dataset=dataset, created_by=alice, format=ImportJob.Format.CSV, file_name="seed.csv"
    )
    sample = make_sample(dataset, import_job=job, source_file="seed.csv", source_row=2)

    html = bob_client.get(_url(sample)).content.decode()

    assert f"Import #{job.pk}" in html
    assert reverse("datasets:import_detail", args=[dataset.slug, job.pk]) not in html


def test_it_shows_a_synthetic_sample_with_its_generation_provenance(alice_client, dataset):
    document = SourceDocument.objects.create(
        dataset=dataset, title="Paris (XQuAD)", text="Paris is the capital.", content_hash="p"
    )
    parent = make_sample(dataset, text="Capital of France?")
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.GROUNDED, requested_count=5)
    sample = make_sample(
        dataset,
        text="Which city is the capital of France?",
        origin=Sample.Origin.SYNTHETIC,
        batch=batch,
        seq=3,
        method=Batch.Method.GROUNDED,
        parent=parent,
        source_document=document,
        source_passage="Paris is the capital.",
        passage_start=0,
        passage_end=21,
        generation_model="builtin/offline-extractive",
        prompt_version="grounded-qa@2",
        slot_values={"entity": "Paris"},
        difficulty=Sample.Difficulty.MEDIUM,
        difficulty_source=Sample.DifficultySource.AUTO,
        status=Sample.Status.PENDING,
    )

    html = alice_client.get(_url(sample)).content.decode()

    assert f"Batch #{batch.pk} · Source-grounded · Draft · slot 3" in html
    assert f'href="{_url(parent)}">Sample #{parent.pk}</a>' in html
    document_url = reverse("datasets:document", args=[dataset.slug, document.pk])
    assert f'href="{document_url}">Paris (XQuAD)</a>' in html
    assert "Paris is the capital." in html
    assert "Characters 0\N{EN DASH}21 of the document." in html
    assert "builtin/offline-extractive" in html
    assert "grounded-qa@2" in html
    assert '<span class="muted">entity:</span> Paris' in html
    assert "Automatic" in html
    assert "Pending checks" in html


def test_it_says_plainly_what_is_missing(alice_client, dataset):
    real = make_sample(dataset, expected={})
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.TEMPLATE, requested_count=1)
    synthetic = make_sample(dataset, origin=Sample.Origin.SYNTHETIC, batch=batch, seq=0)

    real_html = alice_client.get(_url(real)).content.decode()
    synthetic_html = alice_client.get(_url(synthetic)).content.decode()

    for phrase in (
        "No expected output recorded.",
        "No tags.",
        "Not set yet.",
        "Nobody yet.",
        "None recorded.",
        "Not assigned to a split yet.",
        "Not a duplicate.",
        "No import job recorded.",
    ):
        assert phrase in real_html, phrase
    for phrase in (
        "None (not derived from a sample).",
        "None (not grounded in a document).",
        "No passage recorded.",
        "None (not a template expansion).",
    ):
        assert phrase in synthetic_html, phrase
    assert synthetic_html.count("Not recorded.") == 3  # method, generation model, prompt


def test_it_does_not_clamp_a_short_value(alice_client, dataset):
    sample = make_sample(dataset, text="Short")

    html = alice_client.get(_url(sample)).content.decode()

    assert '<pre id="input-json" class="sample-json">' in html
    assert "data-expand" not in html


def test_it_reads_the_sample_page_in_a_fixed_number_of_queries(
    alice_client, dataset, django_assert_max_num_queries
):
    parent = make_sample(dataset)
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.PARAPHRASE, requested_count=1)
    sample = make_sample(dataset, origin=Sample.Origin.SYNTHETIC, batch=batch, seq=0, parent=parent)

    with django_assert_max_num_queries(8):
        assert alice_client.get(_url(sample)).status_code == 200


def test_it_links_a_real_question_to_the_document_it_was_imported_with(alice_client, dataset):
    document = SourceDocument.objects.create(
        dataset=dataset, title="Geneva", text="Geneva is in Switzerland.", content_hash="g"
    )
    sample = make_sample(
        dataset, source_document=document, source_passage="Geneva is in Switzerland."
    )

    html = alice_client.get(_url(sample)).content.decode()

    document_url = reverse("datasets:document", args=[dataset.slug, document.pk])
    assert f'href="{document_url}">Geneva</a>' in html
    assert "Geneva is in Switzerland." in html
