"""Building spot-check queues: stratified, reproducible, borderline and adversarial always in,
idempotent, started by the checks-finished signal through a task."""

from __future__ import annotations

import pytest
from django.db import transaction

from datasets.models import Batch, CheckResult
from datasets.signals import batch_checks_finished
from review.models import AuditEntry, ReviewItem, ReviewQueue, ReviewSettings
from review.services import queue_add_samples, queue_build
from review.tasks import queue_build_task
from synthaug.celery import app as celery_app
from tests.factories import make_sample
from tests.review_support import checked_batch
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db


def test_it_samples_each_stratum_at_the_rate_with_a_minimum(dataset):
    ReviewSettings.objects.create(dataset=dataset, sample_rate=0.1, min_per_stratum=3)
    batch, _ = checked_batch(dataset, count=100, difficulties=("easy", "medium", "hard", "hard"))
    queue, created = queue_build(batch=batch, seed=7)

    assert created
    strata = queue.composition["strata"]
    # 25 easy, 25 medium, 50 hard: ceil(0.1 * n) but at least 3.
    assert strata == {
        "easy / paraphrase": {"population": 25, "sampled": 3},
        "hard / paraphrase": {"population": 50, "sampled": 5},
        "medium / paraphrase": {"population": 25, "sampled": 3},
    }
    items = ReviewItem.objects.filter(queue=queue)
    assert items.count() == 11
    assert set(items.values_list("reason", flat=True)) == {ReviewItem.Reason.STRATIFIED}
    assert items.values("position").distinct().count() == 11
    assert AuditEntry.objects.filter(queue=queue, action="queue_built").count() == 1


def test_it_is_reproducible_from_the_stored_seed(dataset, alice):
    batch, _ = checked_batch(dataset, count=60)
    queue, _ = queue_build(batch=batch, seed=99)
    first = list(queue.items.order_by("position").values_list("sample_id", flat=True))
    queue.delete()

    again, _ = queue_build(batch=batch, seed=99)
    assert list(again.items.order_by("position").values_list("sample_id", flat=True)) == first
    again.delete()
    other, _ = queue_build(batch=batch, seed=100)
    assert list(other.items.order_by("position").values_list("sample_id", flat=True)) != first


def test_every_borderline_and_adversarial_item_is_in(dataset):
    ReviewSettings.objects.create(dataset=dataset, sample_rate=0.0, min_per_stratum=0)
    batch, samples = checked_batch(dataset, count=30, borderline=lambda n: n in (4, 9))
    adversarial = make_sample(
        dataset,
        origin="synthetic",
        batch=batch,
        seq=500,
        method="paraphrase",
        difficulty="adversarial",
    )
    # A later judge row that is not borderline overrides an earlier borderline one.
    CheckResult.objects.create(sample=samples[9], batch=batch, kind="judge", passed=True)

    queue, _ = queue_build(batch=batch)

    reasons = dict(queue.items.values_list("sample_id", "reason"))
    assert reasons == {samples[4].pk: "borderline", adversarial.pk: "adversarial"}
    assert queue.composition["borderline"] == 1
    assert queue.composition["adversarial"] == 1


def test_an_overlap_share_gives_a_second_copy(dataset):
    ReviewSettings.objects.create(
        dataset=dataset, sample_rate=1.0, min_per_stratum=1, overlap_share=0.5
    )
    batch, _ = checked_batch(dataset, count=10)
    queue, _ = queue_build(batch=batch, seed=3)
    assert queue.items.filter(copy=0).count() == 10
    assert queue.items.filter(copy=1).count() == 5
    assert queue.composition["items"] == 15
    assert queue.item_count == 15


def test_building_twice_returns_the_same_queue(dataset):
    batch, _ = checked_batch(dataset, count=10)
    queue, created = queue_build(batch=batch)
    again, created_again = queue_build(batch=batch)
    assert created
    assert not created_again
    assert again.pk == queue.pk
    assert ReviewQueue.objects.filter(batch=batch).count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_checks_finished_signal_builds_the_queue_in_a_real_worker(dataset):
    celery_app.control.purge()
    batch, _ = checked_batch(dataset, count=10)
    with transaction.atomic():
        # Sent on commit by the checks stage; the receiver enqueues after that commit.
        batch_checks_finished.send(sender=Batch, batch=batch)
        assert not ReviewQueue.objects.filter(batch=batch).exists()
    with celery_worker():
        wait_for(lambda: ReviewQueue.objects.filter(batch=batch).exists(), what="the queue")
    queue_build_task(batch.pk)  # redelivered: nothing more
    assert ReviewQueue.objects.filter(batch=batch).count() == 1
    assert ReviewItem.objects.filter(queue__batch=batch).count() == 10


def test_a_lead_adds_samples_once(dataset, alice):
    batch, _samples = checked_batch(dataset, count=10)
    queue, _ = queue_build(batch=batch)
    real = make_sample(dataset)
    present = queue.items.first().sample_id
    added = queue_add_samples(queue=queue, sample_ids=[real.pk, present], by=alice)
    assert added == 1
    assert queue.items.get(sample=real).reason == "added"
    assert queue_add_samples(queue=queue, sample_ids=[real.pk], by=alice) == 0
    queue.refresh_from_db()
    assert queue.item_count == queue.items.count() == 11
    entry = AuditEntry.objects.get(queue=queue, action="items_added")
    assert entry.actor == alice
    assert entry.after["sample_ids"] == [real.pk]


def test_the_queues_build_command_builds_missing_queues_once(dataset):
    from io import StringIO

    from django.core.management import call_command

    ready, _ = checked_batch(dataset, count=5)
    running, _ = checked_batch(dataset, count=5)
    Batch.objects.filter(pk=running.pk).update(status=Batch.Status.RUNNING)
    out = StringIO()
    call_command("queues_build", dataset=dataset.slug, stdout=out)
    call_command("queues_build", stdout=out)
    assert ReviewQueue.objects.filter(batch=ready).count() == 1
    assert not ReviewQueue.objects.filter(batch=running).exists()
    assert out.getvalue().count("Spot-check queue for") == 1


def test_the_migration_counts_the_items_of_queues_built_before_the_count_was_kept(dataset):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("review.migrations.0005_queue_item_count")
    batch, _ = checked_batch(dataset, count=10)
    queue, _ = queue_build(batch=batch)
    ReviewQueue.objects.filter(pk=queue.pk).update(item_count=0)
    migration.count_items(apps, None)
    queue.refresh_from_db()
    assert queue.item_count == queue.items.count() == 10
