"""Every method with the built-in offline provider, end to end through the services, and the
``generate`` command; each sample's provenance checked field by field."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from datasets.models import Batch, GenerationItem, Sample
from datasets.services.generation import batch_run_sync, batch_start
from synthaug.engine.offline import ADVERSARIAL_KINDS, ATTACKS
from synthaug.engine.text import content_hash, flatten
from tests.factories import make_sample
from tests.test_generation_support import (
    LAW,
    TEMPLATE_PARAMS,
    create,
    fast_generation,  # noqa: F401 - autouse fixture
    law_samples,
    make_documents,
)

OFFLINE_IDENTITY = "offline-generator: synthaug-offline @ built-in offline provider"


def run(batch: Batch, user) -> Batch:
    batch = batch_start(batch=batch, user=user, enqueue=False)
    return batch_run_sync(batch=batch)


def assert_common_provenance(sample: Sample, batch: Batch, label: str) -> None:
    assert sample.origin == Sample.Origin.SYNTHETIC
    assert sample.batch_id == batch.pk
    # batch_run_sync runs the checking stage too: every sample has its verdict.
    assert sample.status in (Sample.Status.ACCEPTED, Sample.Status.REJECTED)
    assert sample.method == batch.method
    assert sample.generation_model == OFFLINE_IDENTITY
    # The offline provider reads no prompt: provenance says so instead of naming one.
    assert sample.prompt_version == f"offline-{batch.method}@1 (built-in, no prompt)"
    assert batch.prompt_version.label == label  # the batch still records its prompt
    # The checks assessed the difficulty; the batch's target was only a placeholder.
    assert sample.difficulty == sample.difficulty_auto != ""
    assert sample.difficulty_source == Sample.DifficultySource.AUTO
    assert sample.difficulty_rationale.startswith("features:")
    assert sample.tags["topic"] == batch.target_tags["topic"]
    assert sample.text == flatten(sample.input)
    assert sample.content_hash == content_hash(sample.input)
    item = GenerationItem.objects.get(batch=batch, seq=sample.seq)
    assert item.sample_id == sample.pk
    assert item.state == GenerationItem.State.DONE


def test_it_paraphrases_parents_of_the_slice(dataset, alice):
    parents = law_samples(dataset, 3)
    law_samples_elsewhere = [p.pk for p in parents]
    batch = run(create(dataset, alice, requested_count=6), alice)

    assert batch.status == Batch.Status.READY
    samples = list(Sample.objects.filter(batch=batch).order_by("seq"))
    assert [s.seq for s in samples] == list(range(6))
    for sample in samples:
        assert_common_provenance(sample, batch, "default-paraphrase@v1")
        assert sample.parent_id in law_samples_elsewhere
        parent = sample.parent
        assert sample.input["question"] != parent.input["question"]
        assert sample.expected == parent.expected
        assert sample.source_group == parent.source_group
        assert sample.tags == {"topic": "law", "locale": "en"}
        assert sample.source_document_id is None
    # Round-robin over the parents: each is used twice.
    uses = sorted(s.parent_id for s in samples)
    assert uses == sorted(law_samples_elsewhere * 2)


def test_it_links_a_repeat_to_its_canonical_sample_instead_of_dropping_it(dataset, alice):
    question = {"question": "What does France law say about tenancy?"}
    real = make_sample(dataset, input=question, text=question["question"], tags=LAW)
    params = {**TEMPLATE_PARAMS, "slots": {"country": ["France"], "subject": ["tenancy"]}}
    batch = run(create(dataset, alice, method="template", requested_count=1, params=params), alice)

    [sample] = Sample.objects.filter(batch=batch)
    assert sample.content_hash == real.content_hash
    assert sample.duplicate_of_id == real.pk
    assert batch.status == Batch.Status.READY


def test_it_expands_templates_with_distinct_slot_values(dataset, alice):
    batch = run(
        create(dataset, alice, method="template", requested_count=8, params=TEMPLATE_PARAMS),
        alice,
    )

    assert batch.status == Batch.Status.READY
    samples = list(Sample.objects.filter(batch=batch).order_by("seq"))
    assert len(samples) == 8
    combos = {tuple(sorted(s.slot_values.items())) for s in samples}
    assert len(combos) == 8
    for sample in samples:
        assert_common_provenance(sample, batch, "default-template@v1")
        values = sample.slot_values
        assert sample.input == {
            "question": f"What does {values['country']} law say about {values['subject']}?"
        }
        assert sample.expected == {
            "answer": f"It depends on the {values['subject']} rules of {values['country']}."
        }
        assert sample.source_group == f"batch:{batch.pk}:{sample.seq}"
        assert sample.parent_id is None
        assert sample.source_document_id is None
        assert sample.tags == {"topic": "law"}


def test_it_wraps_parents_in_every_kind_of_attack(dataset, alice):
    law_samples(dataset, 2)
    count = len(ADVERSARIAL_KINDS)
    batch = run(
        create(
            dataset,
            alice,
            method="adversarial",
            requested_count=count,
            target_difficulty="adversarial",
        ),
        alice,
    )

    samples = list(Sample.objects.filter(batch=batch).order_by("seq"))
    assert len(samples) == count
    assert [s.slot_values["kind"] for s in samples] == list(ADVERSARIAL_KINDS)
    for sample in samples:
        assert sample.method == "adversarial"
        assert sample.difficulty == "adversarial"
        kind = sample.slot_values["kind"]
        assert sample.expected["behaviour"] == ATTACKS[kind][1]
        assert sample.input["question"] != sample.parent.input["question"]
        assert sample.parent.expected["answer"] in sample.expected["answer"]
        assert sample.source_group == sample.parent.source_group
    # An invisible-character attack normalises to its parent's text: linked as a duplicate.
    zero_width = next(s for s in samples if s.slot_values["kind"] == "zero_width")
    assert zero_width.duplicate_of_id == zero_width.parent_id


def test_it_draws_grounded_questions_with_their_passage(dataset, alice):
    documents = make_documents(dataset, 2)
    batch = run(
        create(
            dataset,
            alice,
            method="grounded",
            requested_count=6,
            target_tags={"topic": "history"},
        ),
        alice,
    )

    assert batch.status == Batch.Status.READY
    samples = list(Sample.objects.filter(batch=batch).order_by("seq"))
    assert len(samples) == 6
    assert {s.source_document_id for s in samples} == {d.pk for d in documents}
    for sample in samples:
        assert_common_provenance(sample, batch, "default-grounded@v1")
        document = sample.source_document
        answer = sample.expected["answer"]
        # The answer is the document's own text at the recorded span, inside the passage.
        assert document.text[sample.passage_start : sample.passage_end] == answer
        assert answer in sample.source_passage
        assert sample.source_passage in document.text
        assert sample.source_group == f"doc:{document.content_hash[:16]}"
        assert sample.parent_id is None


def test_it_fails_slots_a_document_cannot_fill_and_says_why(dataset, alice):
    [document] = make_documents(dataset, 1)
    document.text = "Short text. Nothing here."
    document.save()
    batch = run(
        create(
            dataset, alice, method="grounded", requested_count=2, target_tags={"topic": "history"}
        ),
        alice,
    )

    assert batch.status == Batch.Status.FAILED
    items = list(GenerationItem.objects.filter(batch=batch))
    assert {i.state for i in items} == {GenerationItem.State.FAILED}
    assert {i.error_reason for i in items} == {"exhausted"}
    assert "yields 0" in items[0].error_detail
    assert batch.error


def test_the_same_seed_gives_the_same_batch(dataset, alice):
    law_samples(dataset, 3)
    first = run(create(dataset, alice, requested_count=4, seed=11), alice)
    texts = list(Sample.objects.filter(batch=first).order_by("seq").values_list("text", flat=True))
    second = run(create(dataset, alice, requested_count=4, seed=11), alice)
    again = list(Sample.objects.filter(batch=second).order_by("seq").values_list("text", flat=True))
    assert texts == again
    # ... and every repeat is linked to the first batch's canonical sample.
    assert all(
        s.duplicate_of is not None and s.duplicate_of.batch_id == first.pk
        for s in Sample.objects.filter(batch=second)
    )


def test_the_generate_command_runs_a_batch_in_process(dataset, alice):
    make_documents(dataset, 2)
    out, err = StringIO(), StringIO()
    call_command(
        "generate",
        "truthful",
        "--method=grounded",
        "--count=5",
        "--tags",
        "topic=history",
        "--difficulty=medium",
        "--why=Few passage questions on history.",
        "--judging=The answer is a span of the passage.",
        "--user=alice",
        "--seed=3",
        "--sync",
        stdout=out,
        stderr=err,
    )
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.READY
    assert batch.created_by == alice
    assert batch.generator.name == "offline-generator"
    assert batch.judge.name == "offline-judge"
    assert "synthaug-offline family" in batch.family_warning
    assert Sample.objects.filter(batch=batch).count() == 5
    assert f"Batch {batch.pk} is ready for review: 5 generated" in out.getvalue()
    assert "5/5" in err.getvalue()  # the progress bar reached the end


def test_the_generate_command_takes_template_parameters(dataset, alice):
    call_command(
        "generate",
        "truthful",
        "--method=template",
        "--count=3",
        "--tags",
        "topic=law",
        "--difficulty=easy",
        "--why=No questions on foreign law.",
        "--judging=Well-formed questions.",
        "--param",
        "template=Is {thing} legal in {country}?",
        "--param",
        "slots.thing=hunting,fishing",
        "--param",
        "slots.country=France,Chile",
        "--sync",
        stdout=StringIO(),
        stderr=StringIO(),
    )
    batch = Batch.objects.get()
    assert batch.params["slots"] == {
        "thing": ["hunting", "fishing"],
        "country": ["France", "Chile"],
    }
    texts = set(Sample.objects.filter(batch=batch).values_list("text", flat=True))
    assert len(texts) == 3
    assert all(t.startswith("Is ") for t in texts)


def test_the_generate_command_refuses_with_the_reasons(dataset, alice):
    with pytest.raises(CommandError) as caught:
        call_command(
            "generate",
            "truthful",
            "--method=paraphrase",
            "--count=3",
            "--tags",
            "topic=law",
            "--difficulty=hard",
            "--sync",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    message = str(caught.value)
    assert "why_synthetic" in message
    assert "judging_plan" in message
    assert not Batch.objects.exists()


def test_the_generate_command_exits_non_zero_when_the_batch_fails(dataset, alice):
    [document] = make_documents(dataset, 1)
    document.text = "Nothing to ask."
    document.save()
    with pytest.raises(CommandError) as caught:
        call_command(
            "generate",
            "truthful",
            "--method=grounded",
            "--count=2",
            "--tags",
            "topic=history",
            "--difficulty=hard",
            "--why=w",
            "--judging=j",
            "--sync",
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert "failed" in str(caught.value)
    assert "exhausted: 2" in str(caught.value)


def test_the_generate_command_can_return_once_queued(dataset, alice):
    law_samples(dataset, 2)
    out = StringIO()
    call_command(
        "generate",
        "truthful",
        "--method=paraphrase",
        "--count=4",
        "--tags",
        "topic=law",
        "--difficulty=medium",
        "--why=w",
        "--judging=j",
        "--no-wait",
        stdout=out,
        stderr=StringIO(),
    )
    batch = Batch.objects.get()
    assert batch.status == Batch.Status.QUEUED
    assert batch.items.filter(state=GenerationItem.State.PENDING).count() == 4
    assert "queued" in out.getvalue()
    assert "Not waiting" in out.getvalue()
