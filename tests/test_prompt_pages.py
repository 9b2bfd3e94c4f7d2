"""The prompt pages: versions by template, one version, a new version from an old one (the
old one never changes), and a side-by-side line diff of two versions."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from datasets.generation.prompts import OUTPUT_SCHEMAS
from datasets.models import PromptTemplate, PromptVersion

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def template(db) -> PromptTemplate:
    return PromptTemplate.objects.create(name="law-paraphrase", purpose="paraphrase")


@pytest.fixture
def used(template, alice) -> PromptVersion:
    """v1, used by a batch: frozen."""
    return PromptVersion.objects.create(
        template=template,
        number=1,
        system="Be careful.",
        user="Rewrite the question:\n{question}\nKeep it short.",
        output_schema=OUTPUT_SCHEMAS["paraphrase"],
        notes="First wording.",
        created_by=alice,
        used_at=timezone.now(),
    )


def url(name: str, dataset, *args) -> str:
    return reverse(f"datasets:{name}", args=[dataset.slug, *args])


def edit_data(version: PromptVersion, **overrides) -> dict:
    import json

    data = {
        "system": version.system,
        "user": version.user,
        "output_schema": json.dumps(version.output_schema),
        "notes": "Shorter.",
    }
    data.update(overrides)
    return data


def snapshot(version: PromptVersion) -> tuple:
    version.refresh_from_db()
    return (
        version.number,
        version.system,
        version.user,
        version.output_schema,
        version.notes,
        version.used_at,
    )


# --- permissions --------------------------------------------------------------------------


@pytest.fixture
def urls(dataset, used) -> dict[str, str]:
    return {
        "prompts": url("prompts", dataset),
        "prompt": url("prompt", dataset, used.pk),
        "compare": url("prompt_compare", dataset) + f"?a={used.pk}&b={used.pk}",
        "edit": url("prompt_edit", dataset, used.pk),
    }


@pytest.mark.parametrize("page", ["prompts", "prompt", "compare"])
@pytest.mark.parametrize(
    ("persona", "status"), [("alice_client", 200), ("bob_client", 200), ("charlie_client", 404)]
)
def test_it_lets_members_read_prompts(request, urls, page, persona, status):
    client: Client = request.getfixturevalue(persona)

    assert client.get(urls[page]).status_code == status


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    ("persona", "status"), [("alice_client", 200), ("bob_client", 403), ("charlie_client", 404)]
)
def test_it_lets_only_leads_edit_prompts(request, urls, used, method, persona, status):
    client: Client = request.getfixturevalue(persona)
    data = edit_data(used, user="Reword it:\n{question}") if method == "post" else None

    response = getattr(client, method)(urls["edit"], data)

    expected = 302 if (method, status) == ("post", 200) else status
    assert response.status_code == expected
    assert PromptVersion.objects.filter(template=used.template).count() == (
        2 if expected == 302 else 1
    )


@pytest.mark.parametrize("page", ["prompts", "prompt", "compare", "edit"])
def test_it_sends_anonymous_users_to_log_in(urls, page):
    response = Client().get(urls[page])

    assert response.status_code == 302
    assert response["Location"].startswith(f"{reverse('login')}?next=")


# --- list and version page ---------------------------------------------------------------------


def test_it_lists_templates_with_their_versions(alice_client, dataset, used, template):
    newer = PromptVersion.objects.create(
        template=template, number=2, user="Again:\n{question}", output_schema={}
    )

    page = alice_client.get(url("prompts", dataset)).content.decode()

    assert "law-paraphrase" in page
    assert url("prompt", dataset, used.pk) in page
    assert url("prompt", dataset, newer.pk) in page
    assert "used, frozen" in page
    assert "not used yet" in page
    assert f"?a={used.pk}&amp;b={newer.pk}" in page  # diff each version with the one before
    assert "default-grounded" in page  # the seeded built-in prompts are listed too


def test_it_narrows_the_list_by_purpose(alice_client, dataset, used):
    page = alice_client.get(url("prompts", dataset) + "?purpose=grounded").content.decode()

    assert "default-grounded" in page
    assert "law-paraphrase" not in page


def test_it_shows_a_version_with_its_label_and_state(alice_client, bob_client, dataset, used):
    page = alice_client.get(url("prompt", dataset, used.pk)).content.decode()
    bob_page = bob_client.get(url("prompt", dataset, used.pk)).content.decode()

    assert "law-paraphrase@v1" in page
    assert "frozen" in page
    assert "Keep it short." in page
    assert url("prompt_edit", dataset, used.pk) in page
    assert url("prompt_edit", dataset, used.pk) not in bob_page


def test_it_escapes_hostile_prompt_text(alice_client, dataset, template):
    version = PromptVersion.objects.create(
        template=template,
        number=1,
        system=HOSTILE,
        user=f"{HOSTILE}\n{{question}}",
        notes=HOSTILE,
        output_schema={"description": HOSTILE},
    )

    page = alice_client.get(url("prompt", dataset, version.pk)).content.decode()

    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.index("hx-disable") < page.index("&lt;script&gt;")


def test_it_404s_an_unknown_version(alice_client, dataset):
    assert alice_client.get(url("prompt", dataset, 999_999)).status_code == 404


# --- editing makes a new version -----------------------------------------------------------------


def test_it_starts_the_edit_from_the_versions_text(alice_client, dataset, used):
    page = alice_client.get(url("prompt_edit", dataset, used.pk)).content.decode()

    assert "Rewrite the question:\n{question}\nKeep it short." in page
    assert "frozen" in page


def test_it_saves_an_edit_as_a_new_version_and_leaves_the_used_one(
    alice_client, alice, dataset, used, template
):
    before = snapshot(used)

    response = alice_client.post(
        url("prompt_edit", dataset, used.pk),
        edit_data(used, user="Reword the question:\n{question}\n", notes="Plainer wording."),
    )

    new = PromptVersion.objects.get(template=template, number=2)
    assert response.status_code == 302
    assert response["Location"] == url("prompt", dataset, new.pk)
    assert new.user == "Reword the question:\n{question}\n"  # whitespace kept as typed
    assert new.system == used.system
    assert new.notes == "Plainer wording."
    assert new.created_by == alice
    assert new.used_at is None
    assert snapshot(used) == before


def test_it_numbers_a_new_version_after_the_newest(alice_client, dataset, used, template):
    PromptVersion.objects.create(template=template, number=2, user="{question}", output_schema={})

    alice_client.post(url("prompt_edit", dataset, used.pk), edit_data(used, system="Careful."))

    assert list(template.versions.order_by("number").values_list("number", flat=True)) == [1, 2, 3]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "Nothing changed"),
        ({"user": "Rewrite something."}, "must mention {question}"),
        ({"output_schema": "{not json"}, "Not valid JSON"),
        ({"output_schema": '{"type": "object", "required": []}'}, "must require question"),
        ({"notes": ""}, "This field is required"),
    ],
)
def test_it_refuses_an_edit_no_batch_could_use(alice_client, dataset, used, overrides, message):
    response = alice_client.post(url("prompt_edit", dataset, used.pk), edit_data(used, **overrides))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert PromptVersion.objects.filter(template=used.template).count() == 1


# --- compare -------------------------------------------------------------------------------------


def test_it_compares_two_versions_line_by_line_escaped(alice_client, dataset, used, template):
    newer = PromptVersion.objects.create(
        template=template,
        number=2,
        system=used.system,
        user=f"Rewrite the question:\n{{question}}\n{HOSTILE}\nAnswer in French.",
        output_schema=used.output_schema,
    )

    response = alice_client.get(url("prompt_compare", dataset) + f"?a={used.pk}&b={newer.pk}")

    page = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    rows = re.findall(r'<tr class="diff-(\w+)">(.*?)</tr>', page, re.S)
    kinds = [kind for kind, _ in rows]
    assert "changed" in kinds  # "Keep it short." became the hostile line
    assert "added" in kinds  # "Answer in French." is new
    changed = next(body for kind, body in rows if kind == "changed")
    assert "Keep it short." in changed
    assert "&lt;script&gt;" in changed
    assert "1 changed, 0 removed, 1 added" in page
    assert "unchanged" in page  # the system message and schema did not change
    assert page.index("hx-disable") < page.index("&lt;script&gt;")


def test_it_explains_a_comparison_it_cannot_make(alice_client, dataset, used):
    response = alice_client.get(url("prompt_compare", dataset) + f"?a={used.pk}&b=999999")

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_it_offers_the_choice_when_nothing_is_chosen(alice_client, dataset, used):
    page = alice_client.get(url("prompt_compare", dataset)).content.decode()

    assert "Choose two versions" in page
    assert "law-paraphrase@v1" in page
