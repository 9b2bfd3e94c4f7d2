"""Creating, estimating, starting, cancelling, resuming and retrying batches."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
import redis
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets.models import Batch, GenerationItem, ModelEndpoint, PromptTemplate, PromptVersion
from datasets.services.generation import (
    batch_cancel,
    batch_chunk_run,
    batch_estimate,
    batch_resume,
    batch_run_sync,
    batch_start,
    item_retry,
    offline_endpoints,
    prompt_default,
)
from synthaug.celery import app as celery_app
from tests.test_generation_support import (
    TEMPLATE_PARAMS,
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    judge_endpoint,
    law_samples,
    make_documents,
)

State = GenerationItem.State


def refusal(dataset, user, **overrides) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        create(dataset, user, **overrides)
    return caught.value.message_dict


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"why_synthetic": "  "}, "why_synthetic", "why synthetic"),
        ({"judging_plan": ""}, "judging_plan", "judged"),
        ({"target_tags": {}}, "target_tags", "at least one tag"),
        ({"target_difficulty": ""}, "target_difficulty", "difficulty"),
        ({"target_tags": {"topic": "sports"}}, "target_tags", "not an allowed topic"),
        ({"target_tags": {"colour": "red"}}, "target_tags", "no tag dimension 'colour'"),
        ({"requested_count": 0}, "requested_count", "1 to 100,000"),
        ({"requested_count": 100_001}, "requested_count", "1 to 100,000"),
        ({"params": {"kinds": ["x"]}}, "params", "Unknown parameter"),
        ({"checks": ["vibes"]}, "checks", "Unknown check"),
        ({"budget_cap": Decimal("-1")}, "budget_cap", "negative"),
        (
            {"method": "adversarial", "params": {"kinds": ["base64", "telepathy"]}},
            "params",
            "Unknown attack kind(s): telepathy",
        ),
        ({"method": "adversarial", "params": {"kinds": []}}, "params", "non-empty list"),
        (
            {"method": "template", "params": {"template": "Hello {who}", "slots": {}}},
            "params",
            "No values for slot(s): who",
        ),
        (
            {"method": "template", "params": {"template": "No slots here", "slots": {"a": ["b"]}}},
            "params",
            "no {slot} placeholders",
        ),
        (
            {"method": "template", "params": TEMPLATE_PARAMS, "requested_count": 13},
            "params",
            "only 12 distinct combination",
        ),
        ({"method": "grounded"}, "method", "needs source documents"),
    ],
)
def test_it_refuses_a_batch_that_breaks_a_rule(dataset, alice, overrides, field, words):
    law_samples(dataset, 1)
    errors = refusal(dataset, alice, **overrides)
    assert field in errors
    assert words in " ".join(errors[field])
    assert not Batch.objects.exists()


def test_it_refuses_paraphrase_of_a_slice_without_real_samples(dataset, alice):
    law_samples(dataset, 2)
    errors = refusal(dataset, alice, target_tags={"topic": "health"})
    assert "this slice has none" in errors["target_tags"][0]
    errors = refusal(dataset, alice, method="adversarial", target_tags={"topic": "health"})
    assert "Adversarial works from real samples" in errors["target_tags"][0]


def test_it_refuses_the_generator_as_its_own_judge(dataset, alice):
    law_samples(dataset, 1)
    generator, _ = offline_endpoints()
    errors = refusal(dataset, alice, generator=generator, judge=generator)
    assert errors["judge"][0].startswith("The judge must not be the generator")


def test_it_refuses_the_same_model_at_the_same_address_under_another_name(dataset, alice):
    law_samples(dataset, 1)
    generator = judge_endpoint(name="gen", base_url="http://llm.local/v1/", model="Llama-3-70B")
    twin = judge_endpoint(name="twin", base_url="http://LLM.local/v1", model="llama-3-70b")
    errors = refusal(dataset, alice, generator=generator, judge=twin)
    assert "same model (llama-3-70b) at the same address" in errors["judge"][0]


def test_it_allows_the_same_model_elsewhere_and_warns_about_a_shared_family(dataset, alice):
    law_samples(dataset, 1)
    generator = judge_endpoint(name="gen", base_url="http://a.local/v1", family="llama-3")
    judge = judge_endpoint(name="other", base_url="http://b.local/v1", family="Llama-3")
    batch = create(dataset, alice, generator=generator, judge=judge)
    assert "both of the llama-3 family" in batch.family_warning

    different = judge_endpoint(name="far", model="qwen", family="qwen")
    assert create(dataset, alice, generator=generator, judge=different).family_warning == ""


def test_the_offline_pair_records_its_family_warning(dataset, alice):
    law_samples(dataset, 1)
    batch = create(dataset, alice)
    assert batch.status == Batch.Status.DRAFT
    assert batch.generator.name == "offline-generator"
    assert batch.judge.name == "offline-judge"
    assert "synthaug-offline family" in batch.family_warning


def test_it_refuses_a_prompt_written_for_another_method(dataset, alice):
    law_samples(dataset, 1)
    grounded = prompt_default(purpose="grounded")
    errors = refusal(dataset, alice, prompt_version=grounded)
    assert "is a grounded prompt" in errors["prompt_version"][0]


def test_it_refuses_a_prompt_that_never_shows_the_model_its_material(dataset, alice):
    law_samples(dataset, 1)
    template = PromptTemplate.objects.create(name="lazy", purpose="paraphrase")
    version = PromptVersion.objects.create(template=template, number=1, user="Rewrite it.")
    errors = refusal(dataset, alice, prompt_version=version)
    assert "never mentions {question}" in errors["prompt_version"][0]


def test_it_takes_the_methods_default_prompt_when_none_is_chosen(dataset, alice):
    law_samples(dataset, 1)
    batch = create(dataset, alice, prompt_version=None)
    assert batch.prompt_version.label == "default-paraphrase@v1"


def test_the_migration_and_the_code_agree_on_the_default_prompts():
    import importlib

    from datasets.generation.prompts import DEFAULT_PROMPTS, OUTPUT_SCHEMAS

    migration = importlib.import_module("datasets.migrations.0005_generation_defaults")
    seeded = {spec["purpose"]: spec for spec in migration.PROMPTS}
    assert set(seeded) == set(DEFAULT_PROMPTS)
    for purpose, spec in DEFAULT_PROMPTS.items():
        assert {k: seeded[purpose][k] for k in spec} == spec
        assert seeded[purpose]["output_schema"] == OUTPUT_SCHEMAS[purpose]


# --- the estimate --------------------------------------------------------------------------


def test_the_offline_provider_costs_nothing(dataset, alice):
    law_samples(dataset, 2)
    generator, judge = offline_endpoints()
    estimate = batch_estimate(
        dataset=dataset,
        method="paraphrase",
        requested_count=50,
        generator=generator,
        judge=judge,
        prompt_version=None,
        params={},
    )
    assert (estimate.calls, estimate.input_tokens, estimate.cost) == (0, 0, Decimal(0))


def test_the_estimate_prices_each_endpoints_calls(dataset, alice):
    law_samples(dataset, 2)
    generator = judge_endpoint(
        name="gen",
        price_in_per_1k=Decimal("2"),
        price_out_per_1k=Decimal("6"),
    )
    judge = judge_endpoint(
        name="j", model="judge-2", price_in_per_1k=Decimal("1"), price_out_per_1k=Decimal("3")
    )
    _, offline_judge = offline_endpoints()

    def estimate(count, judge):
        return batch_estimate(
            dataset=dataset,
            method="paraphrase",
            requested_count=count,
            generator=generator,
            judge=judge,
            prompt_version=None,
            params={},
        )

    alone = estimate(10, offline_judge)
    assert alone.calls == 10
    assert alone.input_tokens > 10 * 100  # the prompt alone is hundreds of characters
    expected = (Decimal(alone.input_tokens) * 2 + Decimal(alone.output_tokens) * 6) / 1000
    assert alone.cost == expected.quantize(Decimal("0.000001"))
    assert estimate(20, offline_judge).cost == 2 * alone.cost

    judged = estimate(10, judge)
    assert judged.calls == 20
    assert judged.cost > alone.cost

    batch = create(dataset, alice, generator=generator, judge=judge, requested_count=10)
    assert batch.cost_estimate == judged.cost


# --- starting --------------------------------------------------------------------------------


def test_it_starts_a_batch_with_one_item_per_slot(dataset, alice):
    parents = law_samples(dataset, 3)
    batch = batch_start(batch=create(dataset, alice, requested_count=7), user=alice, enqueue=False)

    assert batch.status == Batch.Status.QUEUED
    assert batch.started_at is not None
    items = list(batch.items.order_by("seq"))
    assert [i.seq for i in items] == list(range(7))
    assert {i.state for i in items} == {State.PENDING}
    assert {i.parent_id for i in items} == {p.pk for p in parents}

    again = batch_start(batch=create(dataset, alice, requested_count=7), user=alice, enqueue=False)
    assert [i.parent_id for i in again.items.order_by("seq")] == [i.parent_id for i in items]

    with pytest.raises(ValidationError, match="Only a draft batch can start"):
        batch_start(batch=batch, user=alice, enqueue=False)
    assert batch.items.count() == 7


def test_it_assigns_documents_of_the_slice_and_attack_kinds_round_robin(dataset, alice):
    history = make_documents(dataset, 2)
    other = make_documents(dataset, 1, tags={"topic": "health"}, skip=2)
    batch = batch_start(
        batch=create(
            dataset, alice, method="grounded", requested_count=5, target_tags={"topic": "history"}
        ),
        user=alice,
        enqueue=False,
    )
    items = list(batch.items.order_by("seq"))
    assert {i.source_document_id for i in items} == {d.pk for d in history}
    assert other[0].pk not in {i.source_document_id for i in items}
    assert sorted(i.slot_values["pick"] for i in items) == [0, 0, 1, 1, 2]

    law_samples(dataset, 2)
    batch = batch_start(
        batch=create(
            dataset,
            alice,
            method="adversarial",
            requested_count=5,
            params={"kinds": ["base64", "role_play"]},
        ),
        user=alice,
        enqueue=False,
    )
    kinds = [i.slot_values["kind"] for i in batch.items.order_by("seq")]
    assert kinds == ["base64", "role_play", "base64", "role_play", "base64"]


def test_a_used_prompt_version_never_changes(dataset, alice):
    law_samples(dataset, 1)
    version = prompt_default(purpose="paraphrase")
    version.notes = "still editable"
    version.save()  # not used yet

    batch_start(batch=create(dataset, alice, prompt_version=version), user=alice, enqueue=False)
    version.refresh_from_db()
    assert version.used_at is not None
    version.user = "Something else {question}"
    with pytest.raises(ValueError, match="cannot change"):
        version.save()
    assert PromptVersion.objects.get(pk=version.pk).user != "Something else {question}"


def test_it_queues_the_chunks_only_after_commit(dataset, alice, django_capture_on_commit_callbacks):
    law_samples(dataset, 2)
    batch = create(dataset, alice, requested_count=12)
    broker = redis.Redis.from_url(celery_app.conf.broker_url)
    celery_app.control.purge()
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            batch_start(batch=batch, user=alice)
            assert broker.llen("celery") == 0
        assert len(callbacks) == 1
        assert broker.llen("celery") == 0  # the transaction has not committed

        callbacks[0]()  # what the commit would run
        sent = []
        for raw in broker.lrange("celery", 0, -1):
            message = json.loads(raw)
            assert message["headers"]["task"] == "datasets.tasks.batch_generate_chunk"
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            sent.append(args)
        assert sorted(sent) == [
            [batch.pk, [0, 1, 2, 3, 4]],
            [batch.pk, [5, 6, 7, 8, 9]],
            [batch.pk, [10, 11]],
        ]
    finally:
        celery_app.control.purge()


# --- cancel, resume, retry ---------------------------------------------------------------


def test_cancel_keeps_what_was_made_and_resume_finishes_the_rest(dataset, alice):
    law_samples(dataset, 3)
    batch = batch_start(batch=create(dataset, alice, requested_count=9), user=alice, enqueue=False)
    batch_chunk_run(batch_id=batch.pk, seqs=[0, 1, 2])

    batch = batch_cancel(batch=batch, user=alice)
    assert batch.status == Batch.Status.CANCELLED
    assert batch.items.filter(state=State.DONE).count() == 3
    cancelled = batch.items.filter(state=State.CANCELLED)
    assert cancelled.count() == 6
    assert set(cancelled.values_list("error_reason", flat=True)) == {"cancelled"}

    # A task that arrives late finds nothing to do.
    assert batch_chunk_run(batch_id=batch.pk, seqs=list(range(9))).claimed == 0
    with pytest.raises(ValidationError, match="Only a batch that has not finished"):
        batch_cancel(batch=batch, user=alice)

    batch = batch_resume(batch=batch, user=alice, enqueue=False)
    assert batch.status == Batch.Status.QUEUED
    assert batch.items.filter(state=State.PENDING).count() == 6
    batch = batch_run_sync(batch=batch)
    assert batch.status == Batch.Status.READY
    assert batch.samples.count() == 9
    assert sorted(batch.samples.values_list("seq", flat=True)) == list(range(9))

    with pytest.raises(ValidationError, match="Only a cancelled or failed batch can resume"):
        batch_resume(batch=batch, user=alice)


def test_a_failed_item_can_be_retried_and_the_batch_runs_again(dataset, alice):
    [document] = make_documents(dataset, 1)
    text = document.text
    document.text = "Nothing to ask."
    document.save()
    batch = batch_start(
        batch=create(
            dataset, alice, method="grounded", requested_count=2, target_tags={"topic": "history"}
        ),
        user=alice,
        enqueue=False,
    )
    batch = batch_run_sync(batch=batch)
    assert batch.status == Batch.Status.FAILED
    with pytest.raises(ValidationError, match="Nothing is left to resume"):
        batch_resume(batch=batch, user=alice)

    document.text = text
    document.save()
    item = batch.items.get(seq=0)
    item = item_retry(item=item, user=alice, enqueue=False)
    assert (item.state, item.attempts, item.error_reason) == (State.PENDING, 0, "")
    batch.refresh_from_db()
    assert batch.status == Batch.Status.RUNNING

    batch = batch_run_sync(batch=batch)
    assert batch.status == Batch.Status.READY
    assert batch.items.get(seq=0).state == State.DONE
    assert batch.items.get(seq=1).state == State.FAILED
    with pytest.raises(ValidationError, match="Only a failed item"):
        item_retry(item=batch.items.get(seq=0), user=alice)


def test_retry_and_resume_queue_their_items_on_commit(
    dataset, alice, django_capture_on_commit_callbacks
):
    law_samples(dataset, 1)
    batch = batch_start(batch=create(dataset, alice, requested_count=3), user=alice, enqueue=False)
    batch_cancel(batch=batch, user=alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch_resume(batch=batch, user=alice)
    assert len(callbacks) == 1

    GenerationItem.objects.filter(batch=batch, seq=0).update(state=State.FAILED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        item_retry(item=batch.items.get(seq=0), user=alice)
    assert len(callbacks) == 1


def test_it_records_an_endpoint_without_its_key_as_an_auth_failure(dataset, alice, monkeypatch):
    law_samples(dataset, 1)
    monkeypatch.delenv("SYNTHAUG_TEST_MISSING_KEY", raising=False)
    generator = ModelEndpoint.objects.create(
        name="keyed",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        api_key_env="SYNTHAUG_TEST_MISSING_KEY",
    )
    batch = batch_start(
        batch=create(dataset, alice, generator=generator, requested_count=2),
        user=alice,
        enqueue=False,
    )
    batch = batch_run_sync(batch=batch)
    assert batch.status == Batch.Status.FAILED
    items = list(batch.items.all())
    assert {(i.state, i.error_reason) for i in items} == {(State.FAILED, "auth")}
    assert "SYNTHAUG_TEST_MISSING_KEY" in items[0].error_detail
