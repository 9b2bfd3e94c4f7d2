"""Text search over imported samples: the copy into SampleSearch after commit, on PostgreSQL.

Search must find every sample at every moment: before the indexing task has run (the
import's samples are read from Sample), after it (from SampleSearch), and while another run
holds the job. Transactional tests: imports and indexing commit here as they do in
production, and the lock test holds a row from a second connection.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.urls import reverse

from datasets import receivers
from datasets.models import ImportJob, Sample, SampleSearch
from datasets.selectors.browse import SampleFilters, sample_page
from datasets.services import search
from datasets.services.imports import import_file
from datasets.tasks import generation_reap, search_index_task
from synthaug.engine.text import content_hash
from tests.test_import_support import write_jsonl


def _rows(prefix: str, count: int) -> list[dict]:
    return [
        {
            "id": f"{prefix}{i}",
            "question": f"Which {prefix} okapi question is number {i}?",
            "answer": "yes",
            "topic": "health",
        }
        for i in range(count)
    ]


def _import(dataset, user, tmp_path, prefix: str, count: int) -> ImportJob:
    path = write_jsonl(tmp_path / f"{prefix}.jsonl", _rows(prefix, count))
    job = import_file(dataset=dataset, created_by=user, path=path)
    assert job.status == ImportJob.Status.SUCCEEDED
    return job


def _found(dataset, q: str, **filters) -> set[str]:
    page = sample_page(
        dataset=dataset, filters=SampleFilters(q=q, **filters), after=None, limit=1000
    )
    return {sample.external_id for sample in page.items}


def _generated(dataset, text: str) -> Sample:
    """A sample that did not come from an import (Sample's own partial trigram index)."""
    item = {"question": text}
    return Sample.objects.create(
        dataset=dataset,
        external_id="made",
        input=item,
        text=text,
        origin="real",
        status="accepted",
        content_hash=content_hash(item),
        source_group="made",
    )


@pytest.mark.django_db(transaction=True)
def test_it_finds_imported_samples_before_and_after_the_indexing_task(dataset, alice, tmp_path):
    job = _import(dataset, alice, tmp_path, "a", 30)
    _generated(dataset, "Which made-by-hand okapi question?")
    everything = {f"a{i}" for i in range(30)} | {"made"}

    # Before: nothing copied yet, the job waits, and search reads Sample.
    job.refresh_from_db()
    assert job.search_indexed_at is None
    assert not SampleSearch.objects.exists()
    assert _found(dataset, "OKAPI question") == everything
    assert _found(dataset, "okapi question is number 17?") == {"a17"}

    assert search.search_index_pending(dataset_id=dataset.pk) == 30

    job.refresh_from_db()
    assert job.search_indexed_at is not None
    assert SampleSearch.objects.count() == 30
    # The generated sample is not copied: Sample's partial trigram index has it.
    assert not SampleSearch.objects.filter(sample__external_id="made").exists()
    assert _found(dataset, "OKAPI question") == everything
    assert _found(dataset, "okapi question is number 17?") == {"a17"}
    assert _found(dataset, "okapi", origin="synthetic") == set()
    assert _found(dataset, "no such words") == set()

    # Idempotent: a second run (a redelivered task) finds nothing left.
    assert search.search_index_pending(dataset_id=dataset.pk) == 0
    assert SampleSearch.objects.count() == 30


@pytest.mark.django_db(transaction=True)
def test_the_samples_page_finds_them_through_the_view_in_both_states(
    dataset, alice, alice_client, tmp_path
):
    _import(dataset, alice, tmp_path, "v", 12)
    url = reverse("datasets:detail", args=[dataset.slug])
    before = alice_client.get(url, {"q": "V OKAPI question is number 11?"}).content.decode()
    search_index_task(dataset.pk)
    after = alice_client.get(url, {"q": "V OKAPI question is number 11?"}).content.decode()

    for html in (before, after):
        assert "Which v okapi question is number 11?" in html
        assert "question is number 10?" not in html


@pytest.mark.django_db(transaction=True)
def test_one_run_covers_every_waiting_import_of_the_dataset(dataset, alice, tmp_path):
    first = _import(dataset, alice, tmp_path, "b", 10)
    second = _import(dataset, alice, tmp_path, "c", 15)

    assert search.search_index_pending(dataset_id=dataset.pk) == 25
    # The task the second import queued has nothing left to do.
    search_index_task(dataset.pk)

    assert SampleSearch.objects.count() == 25
    assert (
        ImportJob.objects.filter(
            pk__in=[first.pk, second.pk], search_indexed_at__isnull=False
        ).count()
        == 2
    )


@pytest.mark.django_db(transaction=True)
def test_each_import_queues_one_indexing_task_after_commit(dataset, alice, tmp_path, monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(search_index_task, "delay", lambda dataset_id: sent.append(dataset_id))
    # Outside a transaction delay_on_commit sends at once, through ``delay``.
    job = _import(dataset, alice, tmp_path, "q", 3)
    assert sent == [dataset.pk]

    sent.clear()
    receivers.index_imported_texts(sender=None, dataset_id=dataset.pk, sample_ids=[1])
    assert sent == []  # samples named by id are not imports: nothing to copy
    assert job.pk


@pytest.mark.django_db(transaction=True)
def test_a_job_held_by_another_run_is_skipped_and_still_searchable(dataset, alice, tmp_path):
    job = _import(dataset, alice, tmp_path, "d", 8)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute(
                    "SELECT id FROM datasets_importjob WHERE id = %s FOR NO KEY UPDATE", [job.pk]
                )
                held.set()
                release.wait(30)
                cursor.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(30)
        assert search.search_index_pending(dataset_id=dataset.pk) == 0
        assert not SampleSearch.objects.exists()
        assert _found(dataset, "d okapi") == {f"d{i}" for i in range(8)}
    finally:
        release.set()
        thread.join(30)
    assert search.search_index_pending(dataset_id=dataset.pk) == 8


@pytest.mark.django_db(transaction=True)
def test_a_failure_while_copying_leaves_nothing_behind(dataset, alice, tmp_path, monkeypatch):
    job = _import(dataset, alice, tmp_path, "e", 20)

    def merge_fails(cursor, model) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(search, "gin_merge_pending", merge_fails)
    with pytest.raises(OSError, match="No space left"):
        search.search_index_pending(dataset_id=dataset.pk)

    job.refresh_from_db()
    assert job.search_indexed_at is None
    assert not SampleSearch.objects.exists()
    assert _found(dataset, "e okapi") == {f"e{i}" for i in range(20)}
    monkeypatch.undo()
    assert search.search_index_pending(dataset_id=dataset.pk) == 20


@pytest.mark.django_db(transaction=True)
def test_the_reaper_queues_imports_whose_task_was_lost(dataset, alice, tmp_path, monkeypatch):
    job = _import(dataset, alice, tmp_path, "f", 2)
    sent: list[int] = []
    monkeypatch.setattr(search_index_task, "delay", lambda dataset_id: sent.append(dataset_id))

    generation_reap()
    assert sent == []  # finished just now: its own task is still expected

    ImportJob.objects.filter(pk=job.pk).update(finished_at=job.finished_at - search_stale())
    generation_reap()
    assert sent == [dataset.pk]

    search.search_index_pending()
    sent.clear()
    generation_reap()
    assert sent == []


def search_stale():
    from datasets.tasks import SEARCH_INDEX_STALE

    return SEARCH_INDEX_STALE * 2


@pytest.mark.django_db(transaction=True)
def test_deleting_samples_deletes_their_search_entries(dataset, alice, tmp_path):
    _import(dataset, alice, tmp_path, "g", 5)
    search.search_index_pending()
    assert SampleSearch.objects.count() == 5

    Sample.objects.filter(external_id__in=["g1", "g3"]).delete()

    assert set(SampleSearch.objects.values_list("sample__external_id", flat=True)) == {
        "g0",
        "g2",
        "g4",
    }
    assert _found(dataset, "g okapi") == {"g0", "g2", "g4"}
