"""The checking stage and its funnel on the embedded default (SQLite), in a subprocess with
no DATABASE_URL: the funnel's aggregate SQL must run on both databases."""

from __future__ import annotations

import pytest

from tests.test_embedded_default import _manage

pytestmark = pytest.mark.slow

SCRIPT = r"""
from django.test import Client
from datasets.models import Batch, Sample
from datasets.services.datasets import dataset_create, user_create
from datasets.services.verification import batch_checks_run_sync
from synthaug import roles
from tests.test_checks_support import checking_batch, grounded

lead, _ = user_create(username="lead", role=roles.LEAD, password="x-" * 10)
dataset = dataset_create(name="Checks", slug="checks", created_by=lead, tag_dimensions={})
batch = checking_batch(dataset)
grounded(batch, 0, "Which region did the Normans name?", "Normandy")
grounded(batch, 1, "Which region did the Normans name, again?", "Brittany and Wales")
grounded(batch, 2, "Which region did the normans NAME?", "Normandy")
batch = batch_checks_run_sync(batch=batch)
print("status", batch.status)
print("statuses", sorted(Sample.objects.filter(batch=batch).values_list("status", flat=True)))
client = Client(SERVER_NAME="localhost")
client.force_login(lead)
response = client.get(batch.get_absolute_url())
print("http", response.status_code)
page = response.content.decode()
funnel = page[page.index('id="funnel"'):]
import re
rows = re.findall(r'<tr class="stage-(\w+)">\s*<td>[^<]*</td>\s*<td class="num">(\d+)</td>', funnel)
print("funnel", rows)
"""


def test_the_checks_and_the_funnel_work_on_sqlite(tmp_path):
    _manage(tmp_path, "migrate", "--noinput", "-v0")

    out = _manage(tmp_path, "shell", "-c", SCRIPT)

    assert "status ready" in out
    assert "http 200" in out
    assert "statuses ['accepted', 'rejected', 'rejected']" in out
    assert (
        "funnel [('generated', '3'), ('format', '3'), ('faithfulness', '2'), ('safety', '2'), "
        "('unique', '1'), ('judge', '1')]"
    ) in out
