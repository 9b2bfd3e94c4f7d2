"""Claims on the embedded default (SQLite, no row locks): the conditional UPDATE path.

Runs in a subprocess with a clean environment (SQLite in a temporary folder), where four
reviewer threads with their own connections drain a queue together.
"""

from __future__ import annotations

import pytest

from tests.test_embedded_default import _manage, _run_script

pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, os, threading, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from collections import Counter
from django.contrib.auth import get_user_model
from django.db import connection, connections
from datasets.models import Batch, Sample
from review.models import Decision, ReviewSettings
from review.services import decision_record, item_claim_next, queue_build, StaleClaim
from synthaug.engine.text import content_hash

assert connection.vendor == "sqlite"
assert not connection.features.has_select_for_update_skip_locked
from datasets.services.datasets import dataset_create
dataset = dataset_create(name="Embedded", slug="embedded", created_by=None)
ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
batch = Batch.objects.create(dataset=dataset, method="paraphrase", requested_count=200,
                             status="ready")
Sample.objects.bulk_create([
    Sample(dataset=dataset, input={"q": f"q{n}"}, text=f"q{n}", origin="synthetic",
           batch=batch, seq=n, content_hash=content_hash({"q": f"q{n}"}),
           source_group=f"g{n}", method="paraphrase", difficulty="easy")
    for n in range(200)
])
from datasets.models import CheckResult
CheckResult.objects.bulk_create([
    CheckResult(sample=sample, batch=batch, kind="judge", passed=sample.seq % 3 != 0,
                model="offline rules v1")
    for sample in Sample.objects.filter(batch=batch)
])
queue, _ = queue_build(batch=batch)
users = [get_user_model().objects.create(username=f"r{n}") for n in range(4)]

# A stale submit is refused here too.
first = item_claim_next(queue=queue, user=users[0])
from django.utils import timezone
from datetime import timedelta
later = timezone.now() + timedelta(seconds=queue.lease_seconds + 1)
taken = item_claim_next(queue=queue, user=users[1], now=later)
stale = False
try:
    decision_record(item_id=first.pk, user=users[0], action="approve",
                    claim_seq=first.claim_seq, idempotency_key="stale")
except StaleClaim:
    stale = True
decision_record(item_id=taken.pk, user=users[1], action="approve",
                claim_seq=taken.claim_seq, idempotency_key="taken")

claims = [[] for _ in users]
errors = []
def review(i):
    try:
        while (item := item_claim_next(queue=queue, user=users[i])) is not None:
            claims[i].append(item.pk)
            approve = item.pk % 4 != 0
            decision_record(item_id=item.pk, user=users[i],
                            action="approve" if approve else "reject",
                            reason="" if approve else "other",
                            claim_seq=item.claim_seq, idempotency_key=f"{i}-{item.pk}")
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()

# The figures task folds the agreement changes, and the coverage counts are rebuilt,
# while the reviewers decide.
from review.services.figures import figures_recount
from datasets.services.coverage import coverage_counts_refresh
counted_at = figures_recount(queue_id=queue.pk, kind="agreement").counted_at
progress_counted_at = figures_recount(queue_id=queue.pk, kind="progress").counted_at
deciding = threading.Event()
deciding.set()
folds = []
def fold():
    try:
        while deciding.is_set():
            folds.append(figures_recount(queue_id=queue.pk, kind="agreement").version)
            figures_recount(queue_id=queue.pk, kind="progress")
            coverage_counts_refresh(dataset_id=dataset.pk)
    except BaseException as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()
folder = threading.Thread(target=fold)
folder.start()
threads = [threading.Thread(target=review, args=(i,)) for i in range(4)]
[t.start() for t in threads]
[t.join(120) for t in threads]
deciding.clear()
folder.join(60)
from review.models import AgreementChange
from review.selectors import agreement_figures
row = figures_recount(queue_id=queue.pk, kind="agreement")
progress = figures_recount(queue_id=queue.pk, kind="progress")
from review.models import ProgressChange
from review.selectors import queue_tally
from datasets.models import CoverageChange
from datasets.selectors.coverage import kept_counts
from synthaug.engine.coverage import bucket_of
kept = Counter(
    {(k.difficulty, k.bucket.value): k.n for k in kept_counts(dataset=dataset, dimensions=())}
)
oracle = Counter(
    (s.difficulty, bucket.value) for s in Sample.objects.filter(dataset=dataset)
    if (bucket := bucket_of(origin=s.origin, status=s.status, review_status=s.review_status))
)
coverage_counts_refresh(dataset_id=dataset.pk)
every = Counter(pk for c in claims for pk in c)
per_item = Counter(Decision.objects.values_list("item_id", flat=True))
print(json.dumps({
    "stale": stale, "expired_first": taken.pk == first.pk, "errors": errors, "claimed": len(every),
    "max_claims": max(every.values()), "workers": sum(1 for c in claims if c),
    "decisions": sum(per_item.values()), "max_per_item": max(per_item.values()),
    "left": queue.items.exclude(state="done").count(), "queue": queue.pk,
    "folds": len(set(folds)), "folded": row.counted_at == counted_at,
    "changes_left": AgreementChange.objects.count(), "judge_n": row.value["judge"]["n"],
    "as_counted": [row.value, row.detail] == list(agreement_figures(queue=queue)),
    "coverage_as_samples": kept == oracle, "coverage_counted": sum(kept.values()),
    "rejected": Sample.objects.filter(review_status="rejected").count(),
    "coverage_changes_left": CoverageChange.objects.count(),
    "progress_folded": progress.counted_at == progress_counted_at,
    "progress_as_counted": progress.value == queue_tally(queue=queue)[0],
    "progress_done": progress.value["done"],
    "progress_changes_left": ProgressChange.objects.count(),
}))
"""

# A worker's recount in one process, the page's read in another: figures are shared.
RECOUNT = r"""
import os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from review.tasks import queue_figures_task
for kind in ("progress", "agreement"):
    queue_figures_task(int(sys.argv[1]), kind)
"""
READ = r"""
import json, os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from review.models import AuditEntry, ReviewQueue
from review.selectors import stored_figures
queue = ReviewQueue.objects.get(pk=int(sys.argv[1]))
rows = stored_figures(queue=queue)
print(json.dumps({
    "current": [row.version == row.current for row in rows.values()],
    "done": rows["progress"].value["done"],
}))
"""


def test_claims_work_without_row_locks_on_sqlite(tmp_path):
    _manage(tmp_path, "migrate", "--noinput", "-v0")
    outcome = _run_script(tmp_path, SCRIPT)
    assert outcome["stale"] is True
    assert outcome["expired_first"] is True  # no sweep: expiry is in the claim's condition
    assert outcome["errors"] == []
    assert outcome["claimed"] == 199  # all but the one decided before the threads ran
    assert outcome["max_claims"] == 1
    assert outcome["decisions"] == 200
    assert outcome["max_per_item"] == 1
    assert outcome["left"] == 0
    # Agreement folded decision by decision, with folds landing between decisions.
    assert outcome["folds"] > 5
    assert outcome["folded"] is True  # never counted from scratch
    assert outcome["changes_left"] == 0
    assert outcome["judge_n"] == 200
    assert outcome["as_counted"] is True
    # Rejections moved the coverage counts as they were made, with rebuilds between them.
    assert outcome["coverage_as_samples"] is True
    assert outcome["rejected"] >= 45  # about a quarter of the 200
    assert outcome["coverage_counted"] == 200 - outcome["rejected"]
    assert outcome["coverage_changes_left"] == 0
    # Progress folded the same way.
    assert outcome["progress_folded"] is True
    assert outcome["progress_as_counted"] is True
    assert outcome["progress_done"] == 200
    assert outcome["progress_changes_left"] == 0

    # Counted by another process (as a worker would), read by a third (as a page would).
    _run_script(tmp_path, RECOUNT, str(outcome["queue"]))
    shared = _run_script(tmp_path, READ, str(outcome["queue"]))
    assert shared["current"] == [True, True]
    assert shared["done"] == 200
