"""The datasets list and the new-dataset form."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from datasets.forms import parse_tag_dimensions
from datasets.models import Batch, Dataset, Membership, Sample, SourceDocument
from datasets.services.datasets import DEFAULT_SCHEMA, dataset_create, membership_add
from tests.factories import make_sample, make_samples

NEW = reverse("datasets:new")


def _row(html: str, dataset: Dataset) -> str:
    match = re.search(rf'<tr id="dataset-{dataset.pk}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {dataset.slug}"
    return match.group(1)


def _counts(row: str) -> list[str]:
    return re.findall(r'<td class="num">([^<]*)</td>', row)


def test_it_lists_datasets_with_their_counts(alice_client, dataset):
    make_samples(dataset, 3)
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.TEMPLATE, requested_count=2)
    make_sample(dataset, origin=Sample.Origin.SYNTHETIC, batch=batch, seq=0)
    SourceDocument.objects.create(dataset=dataset, title="D1", text="one", content_hash="1")
    SourceDocument.objects.create(dataset=dataset, title="D2", text="two", content_hash="2")
    empty = dataset_create(name="Empty one", slug="empty", created_by=None)
    membership_add(dataset=empty, user=dataset.created_by)

    html = alice_client.get(reverse("datasets:list")).content.decode()

    assert _counts(_row(html, dataset)) == ["3", "1", "2"]
    assert _counts(_row(html, empty)) == ["0", "0", "0"]
    assert html.index("Empty one") < html.index("Truthful QA")  # by name


def test_it_queries_the_list_the_same_for_5_and_60_samples_and_many_datasets(
    alice, alice_client, dataset, django_assert_max_num_queries
):
    counts = []
    for round_, total in enumerate((5, 60)):
        make_samples(dataset, total - Sample.objects.filter(dataset=dataset).count())
        for n in range(3):
            other = dataset_create(
                name=f"More {round_}-{n}", slug=f"more-{round_}-{n}", created_by=alice
            )
            make_samples(other, 2)
            SourceDocument.objects.create(dataset=other, title="D", text="t", content_hash="h")
        with django_assert_max_num_queries(6) as captured:
            response = alice_client.get(reverse("datasets:list"))
        assert response.status_code == 200
        counts.append(len(captured))

    assert counts[0] == counts[1]
    assert response.content.decode().count('<tr id="dataset-') == 7


def test_it_tells_a_lead_with_no_dataset_to_create_one(charlie_client):
    html = charlie_client.get(reverse("datasets:list")).content.decode()

    assert "Create a dataset" in html or "create a dataset" in html
    assert f'href="{NEW}"' in html


def test_it_tells_an_annotator_with_no_dataset_to_ask_a_lead(bob_client):
    html = bob_client.get(reverse("datasets:list")).content.decode()

    assert "ask a lead to add you to a dataset" in html
    assert NEW not in html


def test_it_shows_the_new_dataset_button_to_leads_only(alice_client, bob_client, dataset):
    assert f'href="{NEW}"' in alice_client.get(reverse("datasets:list")).content.decode()
    assert NEW not in bob_client.get(reverse("datasets:list")).content.decode()


def _form(**overrides) -> dict[str, str]:
    data = {
        "name": "Medical QA",
        "slug": "medical-qa",
        "task_type": "qa",
        "description": "Questions a clinician would ask.",
        "license_note": "CC BY 4.0",
        "tag_dimensions": "topic: cardiology, oncology , cardiology\n\nlocale:\n",
        "schema": json.dumps(DEFAULT_SCHEMA),
    }
    data.update(overrides)
    return data


def test_it_prefills_the_default_schema(alice_client, db):
    html = alice_client.get(NEW).content.decode()

    assert "&quot;required&quot;: [\n    &quot;input&quot;," in html


def test_it_creates_a_dataset_and_makes_its_creator_a_member(alice, alice_client, db):
    response = alice_client.post(NEW, _form())

    dataset = Dataset.objects.get(slug="medical-qa")
    assert response.status_code == 302
    assert response["Location"] == dataset.get_absolute_url()
    assert dataset.name == "Medical QA"
    assert dataset.created_by == alice
    assert dataset.tag_dimensions == {"topic": ["cardiology", "oncology"], "locale": []}
    assert dataset.schema == DEFAULT_SCHEMA
    assert dataset.license_note == "CC BY 4.0"
    assert Membership.objects.filter(dataset=dataset, user=alice).exists()
    # The new dataset's page says what to do next.
    page = alice_client.get(response["Location"]).content.decode()
    assert "Import samples" in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"schema": "{not json"}, "schema", "Not valid JSON"),
        ({"schema": "[1, 2]"}, "schema", "must be a JSON object"),
        ({"schema": '{"type": 12}'}, "schema", "not valid JSON Schema"),
        ({"tag_dimensions": "topic health, law"}, "tag_dimensions", "Line 1: write"),
        ({"tag_dimensions": "topic: a\ntopic: b"}, "tag_dimensions", "Line 2: “topic” is already"),
        ({"tag_dimensions": "bad name!: a"}, "tag_dimensions", "Line 1: a dimension name"),
        ({"slug": "not a slug"}, "slug", "Enter a valid"),
        ({"name": ""}, "name", "This field is required"),
    ],
)
def test_it_re_renders_the_form_with_errors_and_creates_nothing(
    alice_client, db, overrides, field, message
):
    response = alice_client.post(NEW, _form(**overrides))

    html = response.content.decode()
    assert response.status_code == 200  # htmx 2 swaps 200s, not 4xx
    assert message in html
    assert re.search(rf'<div class="form-row has-errors">\s*<label for="id_{field}"', html)
    assert not Dataset.objects.exists()


def test_it_reports_a_taken_slug_as_a_form_error(alice_client, dataset):
    before = Dataset.objects.count()

    response = alice_client.post(NEW, _form(slug=dataset.slug))

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Dataset.objects.count() == before


def test_it_reports_a_slug_taken_in_a_race_as_a_form_error(alice_client, dataset, monkeypatch):
    # The form's check passed, then someone else created the slug before our INSERT.
    monkeypatch.setattr("datasets.forms.DatasetForm.clean_slug", lambda form: dataset.slug)

    response = alice_client.post(NEW, _form(slug=dataset.slug))

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Dataset.objects.count() == 1


def test_it_parses_tag_dimensions():
    assert parse_tag_dimensions("topic: health, law, history\nlocale:") == {
        "topic": ["health", "law", "history"],
        "locale": [],
    }
    assert parse_tag_dimensions("  \n") == {}
