"""Text search over imported samples on the embedded default (SQLite): ``id IN (union)``.

PostgreSQL gathers the matching ids with ``= ANY(ARRAY(...))``; SQLite takes the union as a
plain IN list. Runs in a subprocess with a clean environment (SQLite in a temporary folder).
"""

from __future__ import annotations

import pytest

from tests.test_embedded_default import _manage, _run_script

pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, os, sys, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from pathlib import Path
import orjson
from django.db import connection
from datasets.models import ImportJob, Sample, SampleSearch
from datasets.selectors.browse import SampleFilters, sample_page
from datasets.services.datasets import dataset_create
from datasets.services.imports import import_file
from datasets.services.search import search_index_pending
from synthaug.engine.text import content_hash

assert connection.vendor == "sqlite"
dataset = dataset_create(name="Embedded", slug="embedded", created_by=None)
path = Path(sys.argv[1])
path.write_bytes(b"".join(
    orjson.dumps({"id": f"r{i}", "question": f"Which okapi question is number {i}?",
                  "answer": "yes"}) + b"\n" for i in range(40)))
job = import_file(dataset=dataset, created_by=None, path=path)
item = {"question": "A hand-made okapi question"}
Sample.objects.create(dataset=dataset, external_id="made", input=item, text=item["question"],
                      origin="real", status="accepted", content_hash=content_hash(item),
                      source_group="made")

def found(q):
    page = sample_page(dataset=dataset, filters=SampleFilters(q=q), after=None, limit=1000)
    return sorted(s.external_id for s in page.items)

before = {"all": found("OKAPI"), "one": found("question is number 17?"), "copied":
          SampleSearch.objects.count()}
copied = search_index_pending(dataset_id=dataset.pk)
again = search_index_pending(dataset_id=dataset.pk)
after = {"all": found("OKAPI"), "one": found("question is number 17?"), "copied":
         SampleSearch.objects.count()}
print(json.dumps({"status": job.status, "before": before, "after": after, "first": copied,
                  "second": again}))
"""


def test_search_finds_imported_samples_before_and_after_indexing_on_sqlite(tmp_path):
    _manage(tmp_path, "migrate", "--noinput", "-v0")
    outcome = _run_script(tmp_path, SCRIPT, str(tmp_path / "rows.jsonl"))
    everything = sorted([f"r{i}" for i in range(40)] + ["made"])
    assert outcome["status"] == "succeeded"
    assert outcome["before"] == {"all": everything, "one": ["r17"], "copied": 0}
    assert outcome["after"] == {"all": everything, "one": ["r17"], "copied": 40}
    assert (outcome["first"], outcome["second"]) == (40, 0)
