"""``manage.py coverage``: the matrix and its gaps as a table or as JSON."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from datasets.models import CoverageState
from datasets.services.coverage import coverage_counts_refresh
from tests.factories import make_samples

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("coverage", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def counted(dataset):
    dataset.coverage_default_target = 5
    dataset.save()
    make_samples(dataset, 2, tags={"topic": "law", "locale": "de"}, difficulty="hard")
    make_samples(dataset, 6, tags={"topic": "health", "locale": "en"}, difficulty="easy")
    coverage_counts_refresh(dataset_id=dataset.pk)
    return dataset


def test_it_prints_the_matrix_and_the_gaps_as_a_table(counted):
    out = run("truthful", "--dims", "topic")
    lines = out.splitlines()
    assert "Coverage of truthful: topic x difficulty" in lines[0]
    law = next(line for line in lines if line.startswith("law "))
    assert law.split() == ["law", "0/5", "-5", "0/5", "-5", "2/5", "-3", "0/5", "-5", "0"]
    health = next(line for line in lines if line.startswith("health "))
    assert health.split()[1] == "6/5"  # met: no gap mark
    total_gap = 5 * 4 * 3 - 2 - 5  # 3 topics x 4 difficulties x 5, less what exists
    assert f"Total gap: {total_gap} samples" in out
    assert "  gap      3  topic=law x hard  (approved 2 of 5, 0 pending)" in out


def test_it_prints_json_with_every_cell_and_the_gaps(counted):
    report = json.loads(run("truthful", "--dims", "topic,locale", "--json"))
    assert report["dimensions"] == ["topic", "locale"]
    assert report["refreshed_at"] is not None
    cell = next(
        c
        for c in report["cells"]
        if c["slice"] == {"topic": "law", "locale": "de"} and c["difficulty"] == "hard"
    )
    assert cell == {
        "slice": {"topic": "law", "locale": "de"},
        "difficulty": "hard",
        "real": 2,
        "synthetic_approved": 0,
        "synthetic_pending": 0,
        "approved": 2,
        "target": 5,
        "gap": 3,
        "synthetic_share": 0.0,
        "over_ceiling": False,
    }
    assert report["gaps"][0]["gap"] == 5
    assert report["total_gap"] == sum(g["gap"] for g in report["gaps"])


def test_refresh_rebuilds_the_counts_first(dataset):
    make_samples(dataset, 3, tags={"topic": "tax"}, difficulty="easy")
    out = run("truthful", "--refresh", "--dims", "topic")
    assert "Counted 3 samples" in out
    assert CoverageState.objects.get(dataset=dataset).samples_counted == 3
    assert any(line.split()[:2] == ["tax", "3/20"] for line in out.splitlines())


def test_it_explains_bad_arguments(dataset):
    with pytest.raises(CommandError, match="No dataset"):
        run("nope")
    with pytest.raises(CommandError, match="one or two of the dataset's dimensions"):
        run("truthful", "--dims", "colour")
    out = run("truthful")
    assert "have not been built yet" in out
