"""Coverage on the embedded default: SQLite, nothing configured, the real commands."""

from __future__ import annotations

import json

import pytest

from tests.test_embedded_default import _manage

pytestmark = pytest.mark.slow


def test_the_demo_opens_on_gaps_and_the_counts_hold_on_sqlite(tmp_path):
    _manage(tmp_path, "migrate", "--noinput", "-v0")
    _manage(tmp_path, "demo")
    report = json.loads(_manage(tmp_path, "coverage", "demo", "--json"))
    assert report["dimensions"] == ["task", "locale"]
    assert report["refreshed_at"] is not None  # the demo counted, no worker needed
    unset = {
        (c["slice"]["task"], c["slice"]["locale"]): c["real"]
        for c in report["cells"]
        if c["difficulty"] == ""
    }
    # 817 TruthfulQA questions and 1,185 XQuAD questions, all English, difficulty unset.
    assert unset[("truthfulness", "en")] == 817
    assert unset[("reading_comprehension", "en")] == 1185
    assert unset[("truthfulness", "de")] == 0
    # Every targeted cell (2 tasks x 4 locales x 4 difficulties, target 25) is a visible gap,
    # less what the demo's checked batches already brought in (approved synthetic samples).
    targeted = [c for c in report["cells"] if c["target"]]
    assert len(targeted) == 2 * 4 * 4
    assert all(c["target"] == 25 and c["gap"] > 0 for c in targeted)
    brought = sum(min(c["approved"], 25) for c in targeted)
    assert 0 < brought < 2 * 4 * 4 * 25
    assert report["total_gap"] == 2 * 4 * 4 * 25 - brought
    again = json.loads(_manage(tmp_path, "coverage", "demo", "--json", "--refresh"))
    assert again["cells"] == report["cells"]
