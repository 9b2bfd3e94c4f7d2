"""A queue's settled figures (progress, agreement) kept in QueueFigures and recounted by a
task: pages never recount slow figures, say how old they are, ask for one coalesced
recount, and see what a worker process counted. ``SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS =
0`` makes every count "slow" without sleeping."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from review.models import AuditEntry, QueueFigures, ReviewSettings
from review.services import decision_record, item_claim_next, queue_build
from review.services.figures import (
    FIGURES_MAX_AGE,
    FOLD_EVERY,
    REQUEST_LOST,
    STALE_FACTOR,
    figures_recount,
    recount_delay,
    recount_started,
)
from review.tasks import queue_figures_task
from synthaug.celery import app as celery_app
from tests.review_support import checked_batch, full_queue
from tests.workers import celery_worker, wait_for

pytestmark = pytest.mark.django_db
KINDS = sorted(QueueFigures.Kind.values)


@pytest.fixture
def queue(dataset):
    return full_queue(dataset)


@pytest.fixture
def slow(settings):
    """Every count is slow: pages never recount inline."""
    settings.SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS = 0


def page_url(queue) -> str:
    return reverse("review:queue", args=[queue.dataset.slug, queue.pk])


def decide(queue, user, key: str, action: str = "approve") -> None:
    item = item_claim_next(queue=queue, user=user)
    decision_record(
        item_id=item.pk,
        user=user,
        action=action,
        reason="" if action == "approve" else "low_quality",
        claim_seq=item.claim_seq,
        idempotency_key=key,
    )


def view(client, queue, capture) -> tuple[str, int, list]:
    """The page's html, its query count and the callbacks it left for after commit."""
    with capture() as callbacks, CaptureQueriesContext(connection) as queries:
        response = client.get(page_url(queue))
    assert response.status_code == 200
    return response.content.decode(), len(queries.captured_queries), callbacks


def test_quick_agreement_is_counted_from_scratch_inline(
    alice_client, queue, bob, django_capture_on_commit_callbacks
):
    """A small queue's page counts its agreement again itself (exact, and the count's cost
    measured again, so a queue that grows past quick goes to the task), rather than folding
    in the changes: folds cost little at any size and would keep a big queue "quick"."""
    from review.models import AgreementChange

    before = QueueFigures.objects.get(queue=queue, kind="agreement")
    decide(queue, bob, "k1", action="reject")
    assert AgreementChange.objects.filter(queue=queue).exists()
    html, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert asked == []
    row = QueueFigures.objects.get(queue=queue, kind="agreement")
    assert row.counted_at > before.counted_at
    assert row.seconds != before.seconds
    assert row.value["judge"]["n"] == 1
    assert not AgreementChange.objects.filter(queue=queue).exists()
    assert "Judge (overall)</th><td>1</td>" in html


def test_it_counts_a_new_queues_figures_when_it_builds_it(queue):
    rows = {row.kind: row for row in QueueFigures.objects.filter(queue=queue)}
    assert sorted(rows) == KINDS
    newest = AuditEntry.objects.filter(queue=queue).latest("id").pk
    assert {row.version for row in rows.values()} == {newest}
    assert rows["progress"].value["total"] == 8
    assert rows["agreement"].value["judge"]["n"] == 0


def test_a_slow_queue_page_shows_stored_figures_and_asks_for_one_recount(
    alice_client, queue, bob, slow, django_capture_on_commit_callbacks
):
    html, fresh_queries, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "<strong>0</strong> decided" in html
    assert "as of" not in html.lower()
    assert asked == []

    decide(queue, bob, "k1")
    html, first_stale, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "<strong>0</strong> decided" in html  # the stored figures, not a recount
    assert "Decided counts as of" in html
    assert "As of" in html  # the agreement too
    assert len(asked) == 2  # one recount per kind, sent after commit
    assert all(row.requested_at for row in QueueFigures.objects.filter(queue=queue))

    # Coalesced: later stale views ask for nothing more while the recount is pending.
    decide(queue, bob, "k2", action="reject")
    html, later_stale, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert asked == []
    assert "Decided counts as of" in html

    # Constant: a stale view costs what a fresh one does, plus the one conditional UPDATE
    # on the view that asks.
    assert later_stale == fresh_queries
    assert first_stale == fresh_queries + 1

    for kind in KINDS:
        queue_figures_task(queue.pk, kind)  # what the worker runs
    html, after, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "<strong>2</strong> decided" in html
    assert "<td>bob</td><td>2</td><td>1</td><td>1</td>" in html
    assert "as of" not in html.lower()
    assert asked == []
    assert after == fresh_queries
    assert not QueueFigures.objects.filter(queue=queue, requested_at__isnull=False).exists()


def test_a_slow_queue_page_costs_the_same_queries_stale_or_not(
    alice_client, dataset, bob, slow, django_assert_max_num_queries
):
    """However many decisions the figures lag behind, the page reads the stored rows."""
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=60)
    queue, _ = queue_build(batch=batch, seed=3)
    alice_client.get(page_url(queue))  # warm: session, permissions
    with CaptureQueriesContext(connection) as fresh:
        assert alice_client.get(page_url(queue)).status_code == 200
    fresh_queries = len(fresh.captured_queries)  # read now: each request resets the log
    for n in range(20):
        decide(queue, bob, f"k{n}", action="approve" if n % 3 else "reject")
    alice_client.get(page_url(queue))  # the view that asks for the recount
    for _ in range(3):
        with django_assert_max_num_queries(fresh_queries):
            html = alice_client.get(page_url(queue)).content.decode()
        assert "<strong>0</strong> decided" in html


def test_quick_figures_are_recounted_inline_and_stay_exact(
    alice_client, queue, bob, django_capture_on_commit_callbacks
):
    decide(queue, bob, "k1")
    html, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "<strong>1</strong> decided" in html
    assert "as of" not in html.lower()
    assert asked == []  # nothing for a worker to do
    newest = AuditEntry.objects.filter(queue=queue).latest("id").pk
    assert set(QueueFigures.objects.filter(queue=queue).values_list("version", flat=True)) == {
        newest
    }


def test_a_queue_without_figures_says_counting_and_asks_once(
    alice_client, queue, slow, django_capture_on_commit_callbacks
):
    """A queue built before figures were kept: the page answers at once, saying so."""
    QueueFigures.objects.filter(queue=queue).delete()
    html, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "Counting" in html
    assert "Every item is decided" not in html
    assert len(asked) == 2
    _, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert asked == []
    for kind in KINDS:
        figures_recount(queue_id=queue.pk, kind=kind)
    html, _, _ = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert "Counting" not in html
    assert "of 8</span>" in html


def test_a_lost_request_is_asked_again(
    alice_client, queue, bob, slow, django_capture_on_commit_callbacks
):
    decide(queue, bob, "k1")
    QueueFigures.objects.filter(queue=queue).update(
        requested_at=timezone.now() - REQUEST_LOST - timedelta(seconds=1)
    )
    _, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert len(asked) == 2


def test_old_figures_at_the_current_version_are_recounted(
    alice_client, queue, slow, django_capture_on_commit_callbacks
):
    """Re-run checks change the agreement without a new audit entry: figures are recounted
    after a few minutes even when nothing was decided."""
    long_ago = timezone.now() - timedelta(hours=1)
    QueueFigures.objects.filter(queue=queue).update(computed_at=long_ago, counted_at=long_ago)
    _, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert len(asked) == 2


def test_a_count_from_scratch_waits_twenty_times_its_last_cost(queue):
    row = QueueFigures.objects.get(queue=queue, kind="progress")
    now = timezone.now()
    row.seconds, row.computed_at, row.counted_at = 2.0, now, now - FIGURES_MAX_AGE
    assert recount_delay(row, now) == pytest.approx(2.0 * STALE_FACTOR)
    assert recount_delay(row, now + timedelta(seconds=30)) == pytest.approx(10.0)
    assert recount_delay(row, now + timedelta(minutes=5)) == 0
    row.seconds = 3600  # bounded: never more than two minutes behind
    assert recount_delay(row, now) == 120


@pytest.mark.parametrize("kind", KINDS)
def test_figures_counted_lately_fold_a_second_after_the_last_recount(queue, kind):
    """Folding in the decisions' changes costs what was decided since: no need to wait
    twenty times a count from scratch, until that count is due again."""
    row = QueueFigures.objects.get(queue=queue, kind=kind)
    now = timezone.now()
    row.seconds, row.computed_at, row.counted_at = 2.0, now, now
    assert recount_delay(row, now) == pytest.approx(FOLD_EVERY.total_seconds())
    assert recount_delay(row, now + FOLD_EVERY) == 0
    row.counted_at = now - FIGURES_MAX_AGE  # a count from scratch is due: its cost counts
    assert recount_delay(row, now) == pytest.approx(2.0 * STALE_FACTOR)


def test_a_page_asking_while_a_recount_runs_queues_the_next_after_it(
    alice_client, queue, bob, slow, django_capture_on_commit_callbacks
):
    """Under steady decisions a page asks while the last recount is still running: the next
    one is due its turn (twenty times the cost) after that one started, not at once because
    the figures stored before it are old."""
    decide(queue, bob, "k1")
    long_ago = timezone.now() - timedelta(minutes=10)
    QueueFigures.objects.filter(queue=queue).update(
        computed_at=long_ago, counted_at=long_ago, seconds=2.0
    )
    assert (
        recount_delay(QueueFigures.objects.get(queue=queue, kind="agreement"), timezone.now()) == 0
    )
    recount_started(queue_id=queue.pk, kind="agreement")  # the task begins to count

    row = QueueFigures.objects.get(queue=queue, kind="agreement")
    assert row.requested_at is None  # a page asks again ...
    _, _, asked = view(alice_client, queue, django_capture_on_commit_callbacks)
    assert asked
    row.refresh_from_db()
    assert row.requested_at is not None
    # ... for a recount due 2 s x 20 after the running one started.
    assert recount_delay(row, timezone.now()) == pytest.approx(2.0 * STALE_FACTOR, abs=2)


def test_a_redelivered_recount_counts_nothing_new(queue, django_assert_max_num_queries):
    figures_recount(queue_id=queue.pk, kind="agreement")
    # Already at the queue's version: the request mark, the queue, the row; no count.
    with django_assert_max_num_queries(3):
        figures_recount(queue_id=queue.pk, kind="agreement")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_recounts_and_the_page_shows_it(alice_client, dataset, bob, settings):
    """The recount runs in a real Celery worker process; the web process reads its figures."""
    settings.SYNTHAUG_REVIEW_SLOW_FIGURES_SECONDS = 0
    celery_app.control.purge()
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, _ = checked_batch(dataset, count=8)
    queue, _ = queue_build(batch=batch, seed=5)
    decide(queue, bob, "k1")
    decide(queue, bob, "k2", action="reject")
    stale = alice_client.get(page_url(queue)).content.decode()  # asks; sent at its commit
    assert "Decided counts as of" in stale
    newest = AuditEntry.objects.filter(queue=queue).latest("id").pk
    with celery_worker():
        wait_for(
            lambda: QueueFigures.objects.filter(queue=queue, version=newest).count() == 2,
            what="the worker's recount",
        )
    html = alice_client.get(page_url(queue)).content.decode()
    assert "<strong>2</strong> decided" in html
    assert "Judge (overall)</th><td>2</td>" in html
    assert "as of" not in html.lower()


def test_stored_agreement_reads_back_as_counted(queue, bob):
    from review.selectors import agreement_figures, judge_agreement, stored_agreement

    decide(queue, bob, "k1")
    decide(queue, bob, "k2", action="reject")
    figures_recount(queue_id=queue.pk, kind="agreement")
    row = QueueFigures.objects.get(queue=queue, kind="agreement")
    counted = judge_agreement(batch=queue.batch)
    assert stored_agreement(row.value, row.detail) == counted
    assert (row.value, row.detail) == agreement_figures(queue=queue)
    page = stored_agreement(row.value)  # the page's read: sizes without the ids
    assert page.judge_disagreements == set()
    assert page.judge_disagreed_count == len(counted.judge_disagreements)


def test_a_stale_page_narrows_to_the_stored_disagreements(alice_client, queue, bob, slow):
    from review.selectors import judge_agreement

    decide(queue, bob, "k1", action="reject")
    figures_recount(queue_id=queue.pk, kind="agreement")
    disagreed = QueueFigures.objects.get(queue=queue, kind="agreement").detail["judge"]
    decide(queue, bob, "k2", action="reject")  # stale now; the page shows the stored set
    html = alice_client.get(
        page_url(queue) + "?show=judge", headers={"HX-Request": "true"}
    ).content.decode()
    shown = {int(pk) for pk in re.findall(r">#(\d+)</a>", html)}
    live = judge_agreement(batch=queue.batch).judge_disagreements
    assert disagreed
    assert live != set(disagreed)  # the page could tell them apart
    assert shown == set(disagreed)
