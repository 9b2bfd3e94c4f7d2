"""The batch pages: list, the new-batch form (four questions, live estimate), the batch page
(polled while it runs), and cancel / resume / retry.

Personas: alice (lead, member) launches; bob (annotator, member) reads; charlie (lead, not a
member) gets 404s; anonymous users are sent to log in.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from datasets.models import Batch, GenerationItem, PromptVersion, Sample
from datasets.services.generation import offline_endpoints
from tests.factories import make_sample

State = GenerationItem.State
Status = Batch.Status
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> hx-get="/admin/"'


# --- helpers ------------------------------------------------------------------------------


def make_batch(dataset, *, status=Status.RUNNING, states=(), created_by=None, **fields) -> Batch:
    """A batch with every question answered and one item per entry of ``states``."""
    generator, judge = offline_endpoints()
    now = timezone.now()
    values = {
        "dataset": dataset,
        "name": "Law, hard",
        "method": Batch.Method.TEMPLATE,
        "status": status,
        "requested_count": max(len(states), 1),
        "target_tags": {"topic": "law"},
        "target_difficulty": "hard",
        "why_synthetic": "Real law questions are rare.",
        "judging_plan": "The answer must follow from the question.",
        "generator": generator,
        "judge": judge,
        "params": {"template": "What about {x}?", "slots": {"x": ["a", "b"]}},
        "checks": ["format", "faithfulness", "safety", "judge"],
        "cost_estimate": Decimal("0.5"),
        "created_by": created_by,
        "started_at": now - timedelta(minutes=1),
        **fields,
    }
    batch = Batch.objects.create(**values)
    GenerationItem.objects.bulk_create(
        GenerationItem(
            batch=batch,
            seq=seq,
            state=state,
            input_tokens=10,
            output_tokens=5,
            cost=Decimal("0.01"),
            finished_at=now if state in (State.DONE, State.FAILED, State.CANCELLED) else None,
            error_reason="rate_limited" if state == State.FAILED else "",
            error_detail=f"HTTP 429 on slot {seq}" if state == State.FAILED else "",
        )
        for seq, state in enumerate(states)
    )
    for seq, state in enumerate(states):
        if state == State.DONE:
            make_sample(
                dataset,
                text=f"generated question {batch.pk}-{seq}",
                origin=Sample.Origin.SYNTHETIC,
                batch=batch,
                seq=seq,
                status=Sample.Status.PENDING,
            )
    return batch


def batch_url(batch: Batch, name: str = "datasets:batch", *args) -> str:
    return reverse(name, args=[batch.dataset.slug, batch.pk, *args])


def form_data(**overrides) -> dict:
    generator, judge = offline_endpoints()
    data = {
        "shown": ["checks"],
        "name": "",
        "tag.topic": "law",
        "tag.locale": "fr",
        "difficulty": "hard",
        "method": "template",
        "count": "3",
        "template_text": "What does {country} law say about {subject}?",
        "slots": "country: France, Spain\nsubject: tenancy, contracts",
        "answer_template": "",
        "why_synthetic": "Real questions about French law are rare: the gap is 40 items.",
        "judge": str(judge.pk),
        "judging_plan": "Faithful to the slot values; a person checks ten.",
        "checks": ["format", "faithfulness", "safety", "judge"],
        "generator": str(generator.pk),
        "prompt_version": "",
        "budget_cap": "",
    }
    data.update(overrides)
    return data


def hx(client: Client, method: str, url: str, data=None, **headers):
    call = getattr(client, method)
    return call(url, data or {}, headers={"HX-Request": "true", **headers})


def trigger_of(html: str, element_id: str) -> str | None:
    """The hx-trigger attribute of the element with ``element_id``, or None."""
    match = re.search(rf'<[^>]*id="{element_id}"[^>]*>', html)
    assert match, f"no element #{element_id}"
    found = re.search(r'hx-trigger="([^"]*)"', match.group(0))
    return found.group(1) if found else None


# --- permissions ----------------------------------------------------------------------------


@pytest.fixture
def urls(dataset, alice) -> dict[str, str]:
    batch = make_batch(dataset, states=[State.FAILED, State.DONE], created_by=alice)
    item = batch.items.get(state=State.FAILED)
    slug = dataset.slug
    return {
        "batches": reverse("datasets:batches", args=[slug]),
        "batch": batch_url(batch),
        "batch_new": reverse("datasets:batch_new", args=[slug]),
        "batch_estimate": reverse("datasets:batch_estimate", args=[slug]),
        "cancel": batch_url(batch, "datasets:batch_cancel"),
        "resume": batch_url(batch, "datasets:batch_resume"),
        "retry": batch_url(batch, "datasets:batch_item_retry", item.pk),
    }


READ_PAGES = ["batches", "batch"]
LAUNCH_PAGES = ["batch_new", "batch_estimate"]
ACTIONS = ["cancel", "resume", "retry"]


@pytest.mark.parametrize("page", READ_PAGES)
@pytest.mark.parametrize(
    ("persona", "status"), [("alice_client", 200), ("bob_client", 200), ("charlie_client", 404)]
)
def test_it_lets_members_read_batches(request, urls, page, persona, status):
    client: Client = request.getfixturevalue(persona)

    assert client.get(urls[page]).status_code == status


@pytest.mark.parametrize("page", LAUNCH_PAGES)
@pytest.mark.parametrize(
    ("persona", "status"), [("alice_client", 200), ("bob_client", 403), ("charlie_client", 404)]
)
def test_it_lets_only_leads_open_the_new_batch_form(request, urls, page, persona, status):
    client: Client = request.getfixturevalue(persona)

    assert client.get(urls[page]).status_code == status


@pytest.mark.parametrize("action", [*ACTIONS, "batch_new"])
@pytest.mark.parametrize(("persona", "status"), [("bob_client", 403), ("charlie_client", 404)])
def test_it_refuses_actions_to_annotators_and_outsiders(request, urls, action, persona, status):
    client: Client = request.getfixturevalue(persona)
    before = list(GenerationItem.objects.order_by("pk").values_list("state", flat=True))

    response = client.post(urls[action], form_data() if action == "batch_new" else {})

    assert response.status_code == status
    assert Batch.objects.count() == 1
    assert list(GenerationItem.objects.order_by("pk").values_list("state", flat=True)) == before


@pytest.mark.parametrize("page", READ_PAGES + LAUNCH_PAGES + ACTIONS)
def test_it_sends_anonymous_users_to_log_in(urls, page):
    client = Client()
    response = client.post(urls[page]) if page in ACTIONS else client.get(urls[page])

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={urls[page]}"


def test_it_refuses_get_on_actions(alice_client, urls):
    for action in ACTIONS:
        assert alice_client.get(urls[action]).status_code == 405


def test_it_404s_a_batch_asked_for_under_another_dataset(alice_client, alice, urls):
    from datasets.services.datasets import dataset_create

    other = dataset_create(name="Other", slug="other", created_by=alice)
    batch_pk = int(urls["batch"].rstrip("/").rsplit("/", 1)[1])

    response = alice_client.get(reverse("datasets:batch", args=[other.slug, batch_pk]))

    assert response.status_code == 404


# --- the list -------------------------------------------------------------------------------


def test_it_lists_batches_with_target_status_progress_and_cost(alice_client, dataset, alice):
    batch = make_batch(
        dataset,
        states=[State.DONE, State.FAILED, State.PENDING, State.RUNNING],
        created_by=alice,
        family_warning="Both are of the synthaug-offline family.",
    )

    response = alice_client.get(reverse("datasets:batches", args=[dataset.slug]))

    page = response.content.decode()
    row = page[page.index(f'id="batch-{batch.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Law, hard" in row
    assert "Template expansion" in row
    assert "law" in row
    assert "Hard" in row
    assert "status-running" in row
    assert 'value="2" max="4"' in row  # two of four items settled
    assert "0.0400" in row  # four items at 0.01 each
    assert "same family" in row
    assert "alice" in row
    assert reverse("datasets:batch_new", args=[dataset.slug]) in page


def test_it_shows_annotators_no_new_batch_link(bob_client, dataset):
    make_batch(dataset, states=[State.DONE])

    page = bob_client.get(reverse("datasets:batches", args=[dataset.slug])).content.decode()

    assert reverse("datasets:batch_new", args=[dataset.slug]) not in page


def test_it_lists_batches_in_a_constant_number_of_queries(
    alice_client, dataset, django_assert_num_queries
):
    url = reverse("datasets:batches", args=[dataset.slug])
    make_batch(dataset, states=[State.DONE])
    with CaptureQueriesContext(connection) as few:
        alice_client.get(url)
    for _ in range(5):
        make_batch(dataset, states=[State.DONE, State.FAILED])

    with django_assert_num_queries(len(few)):
        alice_client.get(url)


# --- the new batch form ----------------------------------------------------------------------


def test_it_prefills_the_form_from_the_query_string(alice_client, dataset):
    url = reverse("datasets:batch_new", args=[dataset.slug])

    response = alice_client.get(
        url + "?tag.topic=law&tag.locale=pt-BR&difficulty=hard&method=grounded&count=25"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<option value="law" selected>law</option>', page)
    assert re.search(r'name="tag.locale" value="pt-BR"', page)
    assert re.search(r'<option value="hard" selected>Hard</option>', page)
    assert re.search(r'<option value="grounded" selected>Source-grounded</option>', page)
    assert re.search(r'name="count" value="25"', page)


def test_it_asks_the_four_questions_with_offline_defaults(alice_client, dataset):
    generator, judge = offline_endpoints()

    page = alice_client.get(reverse("datasets:batch_new", args=[dataset.slug])).content.decode()

    for question in (
        "Which case type does it fill?",
        "Why is synthetic data right here?",
        "How will it be judged?",
        "What will it cost?",
    ):
        assert question in page
    assert "Provenance is automatic" in page
    assert re.search(
        rf'name="generator"[^>]*>.*?<option value="{generator.pk}" selected', page, re.S
    )
    assert re.search(rf'name="judge"[^>]*>.*?<option value="{judge.pk}" selected', page, re.S)
    for check in ("format", "faithfulness", "safety", "judge"):
        assert re.search(rf'name="checks" value="{check}"[^>]*checked', page)
    # The estimate fragment is there from the start, wired to follow the form.
    assert 'id="estimate"' in page
    assert trigger_of(page, "estimate") == "change from:#batch-form delay:300ms"


def test_it_refuses_the_generator_as_judge_on_the_form(alice_client, dataset):
    generator, _ = offline_endpoints()
    url = reverse("datasets:batch_new", args=[dataset.slug])

    response = alice_client.post(url, form_data(judge=str(generator.pk)))

    assert response.status_code == 200
    page = response.content.decode()
    # The message sits on the judge field, not somewhere vague.
    row = re.search(
        r'<div class="form-row has-errors">\s*<label for="id_judge">.*?</ul>', page, re.S
    )
    assert row is not None
    assert "The judge must not be the generator" in row.group(0)
    assert Batch.objects.count() == 0
    assert GenerationItem.objects.count() == 0


def test_it_keeps_what_was_typed_and_marks_missing_answers(alice_client, dataset):
    url = reverse("datasets:batch_new", args=[dataset.slug])

    response = alice_client.post(url, form_data(why_synthetic="", name="Keep me"))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="Keep me"' in page
    assert "has-errors" in page
    assert Batch.objects.count() == 0


def test_it_puts_service_refusals_on_their_fields(alice_client, dataset):
    url = reverse("datasets:batch_new", args=[dataset.slug])

    # Four combinations of slot values cannot make ten distinct items.
    response = alice_client.post(url, form_data(count="10"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "distinct combination" in page
    assert Batch.objects.count() == 0


def test_it_creates_and_starts_a_batch_and_queues_its_work(
    alice_client, alice, dataset, django_capture_on_commit_callbacks
):
    url = reverse("datasets:batch_new", args=[dataset.slug])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(url, form_data(name="French law"))

    batch = Batch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == batch.get_absolute_url()
    assert batch.status == Status.QUEUED
    assert batch.name == "French law"
    assert batch.created_by == alice
    assert batch.target_tags == {"topic": "law", "locale": "fr"}
    assert batch.target_difficulty == "hard"
    assert batch.params["slots"] == {
        "country": ["France", "Spain"],
        "subject": ["tenancy", "contracts"],
    }
    assert batch.checks == ["format", "faithfulness", "safety", "judge"]
    assert batch.family_warning  # the offline pair shares a family: allowed, recorded
    assert batch.prompt_version is not None
    assert batch.prompt_version.used_at is not None
    assert sorted(batch.items.values_list("seq", flat=True)) == [0, 1, 2]
    assert set(batch.items.values_list("state", flat=True)) == {State.PENDING}
    # The chunk task is sent once the transaction commits.
    assert any("enqueue_seqs" in callback.__qualname__ for callback in callbacks)


def test_it_passes_adversarial_kinds_and_the_chosen_prompt(
    alice_client, dataset, django_capture_on_commit_callbacks
):
    make_sample(dataset, text="Is it legal to drive on the left?", tags={"topic": "law"})
    version = PromptVersion.objects.filter(template__purpose="adversarial").first()
    url = reverse("datasets:batch_new", args=[dataset.slug])

    with django_capture_on_commit_callbacks(execute=False):
        response = alice_client.post(
            url,
            form_data(
                method="adversarial",
                kinds=["base64", "role_play"],
                prompt_version=str(version.pk),
                **{"tag.locale": ""},
            ),
        )

    batch = Batch.objects.get()
    assert response.status_code == 302
    assert batch.params["kinds"] == ["base64", "role_play"]
    assert batch.prompt_version == version


def test_it_refuses_a_prompt_written_for_another_method(alice_client, dataset):
    wrong = PromptVersion.objects.filter(template__purpose="grounded").first()
    url = reverse("datasets:batch_new", args=[dataset.slug])

    response = alice_client.post(url, form_data(prompt_version=str(wrong.pk)))

    assert response.status_code == 200
    assert Batch.objects.count() == 0


def test_it_swaps_in_the_fields_of_a_newly_chosen_method(alice_client, dataset):
    url = reverse("datasets:batch_new", args=[dataset.slug])

    response = hx(
        alice_client, "get", url, {"method": "adversarial"}, **{"HX-Target": "method-fields"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert page.lstrip().startswith('<div id="method-fields"')
    # Every kind starts ticked: the group was not on the page before.
    assert len(re.findall(r'name="kinds" value="\w+"[^>]*checked', page)) == 8
    assert 'name="template_text"' not in page
    # The prompt versions follow the method, swapped out of band.
    assert 'id="prompt-field" hx-swap-oob="true"' in page
    assert "default-adversarial@v1" in page
    assert "default-paraphrase@v1" not in page


# --- the estimate ------------------------------------------------------------------------------


def test_it_answers_htmx_with_the_estimate_fragment(alice_client, dataset):
    url = reverse("datasets:batch_estimate", args=[dataset.slug])

    response = hx(alice_client, "post", url, form_data())

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="estimate"')
    assert "<html" not in page
    assert "estimated cost" in page
    assert "Free: the built-in offline provider" in page
    assert trigger_of(page, "estimate") == "change from:#batch-form delay:300ms"


def test_it_estimates_paying_endpoints_and_warns_over_the_cap(alice_client, dataset):
    from datasets.models import ModelEndpoint

    paid = ModelEndpoint.objects.create(
        name="paid",
        base_url="http://127.0.0.1:9/v1",
        model="big-model",
        family="big",
        price_in_per_1k=Decimal("1"),
        price_out_per_1k=Decimal("2"),
    )
    url = reverse("datasets:batch_estimate", args=[dataset.slug])

    response = hx(alice_client, "post", url, form_data(generator=str(paid.pk), budget_cap="0.0001"))

    page = response.content.decode()
    assert "3 model calls" in page
    assert "above the budget cap" in page


def test_it_shows_why_there_is_no_estimate_yet(alice_client, dataset):
    url = reverse("datasets:batch_estimate", args=[dataset.slug])

    response = hx(alice_client, "post", url, form_data(count=""))

    assert "Choose a method, a count, a generator and a judge" in response.content.decode()


def test_it_reshows_the_whole_form_with_the_estimate_without_javascript(alice_client, dataset):
    url = reverse("datasets:batch_estimate", args=[dataset.slug])

    # The "Recalculate" button posts the form here; with a new method and one check unticked.
    response = alice_client.post(
        url, form_data(method="adversarial", checks=["format", "safety"], name="Typed")
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" in page
    assert 'value="Typed"' in page
    assert "estimated cost" in page
    assert 'name="kinds"' in page  # the new method's own fields
    assert re.search(r'name="checks" value="format"[^>]*checked', page)
    assert not re.search(r'name="checks" value="faithfulness"[^>]*checked', page)
    assert "has-errors" not in page  # recalculating is not submitting
    assert Batch.objects.count() == 0


# --- the batch page -----------------------------------------------------------------------------


def test_it_shows_the_four_answers_models_and_progress(alice_client, dataset, alice):
    batch = make_batch(
        dataset,
        states=[State.DONE, State.DONE, State.FAILED, State.PENDING],
        created_by=alice,
        family_warning="Both are of the synthaug-offline family.",
    )

    response = alice_client.get(batch_url(batch))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Real law questions are rare." in page
    assert "The answer must follow from the question." in page
    assert "offline-generator" in page
    assert "offline-judge" in page
    assert "Both are of the synthaug-offline family." in page
    assert 'role="alert"' in page
    assert 'value="75" max="100"' in page  # three of four settled
    assert "Generated: <strong>2</strong>" in page
    assert "Failed: <strong>1</strong>" in page
    assert "40 input + 20 output" in page
    assert "rate_limited" in page
    assert "HTTP 429 on slot 2" in page
    for sample in batch.samples.all():
        assert reverse("datasets:sample", args=[dataset.slug, sample.pk]) in page


def test_it_links_the_prompt_version(alice_client, dataset):
    version = PromptVersion.objects.filter(template__purpose="template").first()
    batch = make_batch(dataset, states=[State.DONE], prompt_version=version)

    page = alice_client.get(batch_url(batch)).content.decode()

    assert reverse("datasets:prompt", args=[dataset.slug, version.pk]) in page
    assert version.label in page


def test_it_polls_the_progress_only_while_the_batch_runs(alice_client, dataset):
    batch = make_batch(dataset, status=Status.RUNNING, states=[State.DONE, State.PENDING])

    full = alice_client.get(batch_url(batch)).content.decode()
    fragment = hx(alice_client, "get", batch_url(batch))

    assert trigger_of(full, "progress") == "every 1s"
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert fragment.content.decode().lstrip().startswith('<section id="progress"')
    assert trigger_of(fragment.content.decode(), "progress") == "every 1s"
    assert "HX-Refresh" not in fragment

    GenerationItem.objects.filter(batch=batch, state=State.PENDING).update(state=State.DONE)
    Batch.objects.filter(pk=batch.pk).update(status=Status.READY, finished_at=timezone.now())

    finished = hx(alice_client, "get", batch_url(batch))
    assert trigger_of(finished.content.decode(), "progress") is None
    assert 'value="100" max="100"' in finished.content.decode()
    # The last poll reloads the page once, for the final samples.
    assert finished["HX-Refresh"] == "true"
    assert trigger_of(alice_client.get(batch_url(batch)).content.decode(), "progress") is None


def test_it_gives_back_the_whole_page_on_history_restore(alice_client, dataset):
    batch = make_batch(dataset, states=[State.DONE])

    response = hx(alice_client, "get", batch_url(batch), **{"HX-History-Restore-Request": "true"})

    assert "<html" in response.content.decode()


@pytest.mark.parametrize("htmx", [False, True])
def test_it_reads_the_batch_page_in_a_constant_number_of_queries(
    alice_client, dataset, django_assert_num_queries, htmx
):
    few = make_batch(dataset, states=[State.DONE, State.FAILED] * 2 + [State.PENDING])
    many = make_batch(dataset, states=[State.DONE, State.FAILED] * 25)
    headers = {"HX-Request": "true"} if htmx else {}
    with CaptureQueriesContext(connection) as baseline:
        alice_client.get(batch_url(few), headers=headers)

    with django_assert_num_queries(len(baseline)):
        response = alice_client.get(batch_url(many), headers=headers)

    assert response.status_code == 200


def test_it_pages_failed_items_by_slot(alice_client, dataset):
    batch = make_batch(dataset, status=Status.FAILED, states=[State.FAILED] * 30)

    first = alice_client.get(batch_url(batch)).content.decode()
    assert first.count('<tr id="item-') == 25
    assert "?failed_after=24" in first

    second = alice_client.get(batch_url(batch) + "?failed_after=24").content.decode()
    assert second.count('<tr id="item-') == 5
    assert "HTTP 429 on slot 29" in second
    assert "HTTP 429 on slot 3<" not in second


def test_it_shows_buttons_by_state_and_permission(alice_client, bob_client, dataset):
    running = make_batch(dataset, status=Status.RUNNING, states=[State.PENDING, State.FAILED])
    cancelled = make_batch(dataset, status=Status.CANCELLED, states=[State.CANCELLED])

    running_page = alice_client.get(batch_url(running)).content.decode()
    cancelled_page = alice_client.get(batch_url(cancelled)).content.decode()
    bob_page = bob_client.get(batch_url(running)).content.decode()

    assert batch_url(running, "datasets:batch_cancel") in running_page
    assert batch_url(running, "datasets:batch_resume") not in running_page
    assert "Retry" in running_page
    assert batch_url(cancelled, "datasets:batch_resume") in cancelled_page
    assert batch_url(cancelled, "datasets:batch_cancel") not in cancelled_page
    assert batch_url(running, "datasets:batch_cancel") not in bob_page
    assert "Retry</button>" not in bob_page


def test_it_escapes_hostile_sample_and_error_text(alice_client, dataset):
    batch = make_batch(dataset, name=HOSTILE, why_synthetic=HOSTILE, states=[State.FAILED])
    GenerationItem.objects.filter(batch=batch).update(error_detail=HOSTILE)
    make_sample(
        dataset,
        text=HOSTILE,
        origin=Sample.Origin.SYNTHETIC,
        batch=batch,
        seq=7,
        expected={"answer": HOSTILE},
    )

    page = alice_client.get(batch_url(batch)).content.decode()

    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # Sample and error content sits inside hx-disable, so slipped-through attributes are inert.
    samples = page[page.index('class="batch-samples"') :]
    assert samples.index("hx-disable") < samples.index("&lt;script&gt;")


# --- cancel, resume, retry -------------------------------------------------------------------


def test_it_cancels_a_running_batch(alice_client, dataset):
    batch = make_batch(dataset, status=Status.RUNNING, states=[State.DONE, State.PENDING])

    response = alice_client.post(batch_url(batch, "datasets:batch_cancel"))

    assert response.status_code == 302
    assert response["Location"] == batch_url(batch)
    batch.refresh_from_db()
    assert batch.status == Status.CANCELLED
    assert set(batch.items.values_list("state", flat=True)) == {State.DONE, State.CANCELLED}


def test_it_resumes_a_cancelled_batch(alice_client, dataset, django_capture_on_commit_callbacks):
    batch = make_batch(dataset, status=Status.CANCELLED, states=[State.DONE, State.CANCELLED])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(batch_url(batch, "datasets:batch_resume"))

    assert response.status_code == 302
    batch.refresh_from_db()
    assert batch.status == Status.QUEUED
    assert set(batch.items.values_list("state", flat=True)) == {State.DONE, State.PENDING}
    assert callbacks


def test_it_retries_a_failed_item(alice_client, dataset, django_capture_on_commit_callbacks):
    batch = make_batch(dataset, status=Status.READY, states=[State.DONE, State.FAILED])
    item = batch.items.get(state=State.FAILED)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(batch_url(batch, "datasets:batch_item_retry", item.pk))

    assert response.status_code == 302
    item.refresh_from_db()
    batch.refresh_from_db()
    assert item.state == State.PENDING
    assert item.error_reason == ""
    assert batch.status == Status.RUNNING
    assert callbacks


def test_it_explains_an_action_that_does_not_apply(alice_client, dataset):
    batch = make_batch(dataset, status=Status.READY, states=[State.DONE])

    response = alice_client.post(batch_url(batch, "datasets:batch_cancel"), follow=True)

    batch.refresh_from_db()
    assert batch.status == Status.READY
    assert "Only a batch that has not finished can be cancelled" in response.content.decode()


def test_it_404s_an_item_of_another_batch(alice_client, dataset):
    batch = make_batch(dataset, status=Status.READY, states=[State.FAILED])
    other = make_batch(dataset, status=Status.READY, states=[State.FAILED])
    item = other.items.get()

    response = alice_client.post(batch_url(batch, "datasets:batch_item_retry", item.pk))

    assert response.status_code == 404
    item.refresh_from_db()
    assert item.state == State.FAILED
