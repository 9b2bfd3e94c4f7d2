"""The review page in Debian's Chromium: a reviewer clears a queue by keyboard only, and
hostile samples render as inert, visible text under the enforced CSP."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from datasets.models import Sample, SourceDocument
from datasets.services.datasets import dataset_create, membership_add, user_create
from datasets.templatetags.display import INVISIBLE
from review.models import Decision, ReviewItem, ReviewSettings
from review.services import queue_build
from synthaug import roles
from tests.browser import logged_in_page, problems
from tests.conftest import PASSWORD
from tests.factories import make_sample
from tests.review_support import checked_batch

PWN = "window.__pwned=1;alert(1)"
HOSTILE = [
    f"<script>{PWN}</script> is this safe?",
    f"<img src=x onerror={PWN}> look",
    f'<a href="javascript:{PWN}">click</a> javascript:{PWN}',
    f"</script><script>{PWN}</script> inside JSON",
    '<div hx-get="/logout/" hx-trigger="load">boom</div>',
    "total: \u202e$01\u202c and ig\u200bnore\u2060 this\ufeff",
    "C" * 1_000_000 + f"<script>{PWN}</script>",
]


def _visible(text: str) -> str:
    return INVISIBLE.sub(lambda m: f"U+{ord(m.group()):04X}", text)


@pytest.fixture
def review_data(transactional_db) -> dict:
    alice, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    bob, _ = user_create(username="bob", role=roles.ANNOTATOR, password=PASSWORD)
    dataset = dataset_create(name="Hostile <i>review</i>", slug="hostile", created_by=alice)
    membership_add(dataset=dataset, user=bob)
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    batch, samples = checked_batch(dataset, count=len(HOSTILE), text=lambda n: HOSTILE[n])
    # One with a hostile parent (diff), one with a hostile source passage (grounding span).
    parent = make_sample(dataset, text=f"parent {HOSTILE[1]}")
    Sample.objects.filter(pk=samples[0].pk).update(parent=parent)
    document = SourceDocument.objects.create(
        dataset=dataset,
        title=f"Doc {HOSTILE[0]}",
        text=f"Before the span. {HOSTILE[2]} After the span.",
        content_hash="d" * 64,
    )
    start = len("Before the span. ")
    Sample.objects.filter(pk=samples[1].pk).update(
        source_document=document,
        source_passage=HOSTILE[2],
        passage_start=start,
        passage_end=start + len(HOSTILE[2]),
    )
    queue, _ = queue_build(batch=batch, seed=4)
    # Read back now: Playwright's event loop forbids ORM calls beside it.
    stored = {sample.pk: Sample.objects.get(pk=sample.pk) for sample in samples}
    return {"dataset": dataset, "queue": queue, "samples": stored}


def _work_url(live_server, data) -> str:
    queue = data["queue"]
    return f"{live_server.url}{reverse('review:work', args=[data['dataset'].slug, queue.pk])}"


def _current(page):
    return page.locator("#review-stage section.review-item[data-current]")


def _nothing_ran(page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert problems(page) == []


def test_a_reviewer_clears_the_queue_by_keyboard_only(live_server, review_data):
    keys = ["a", "r 2", "d 3", "a", "s", "u", "a", "a", "r 6", "a", "a", "a"]
    seen: list[int] = []
    with logged_in_page(live_server.url, "bob", PASSWORD) as page:
        page.goto(_work_url(live_server, review_data))
        expect(page.locator(".shortcuts")).to_contain_text("Approve")
        for key in keys:
            before = _current(page).get_attribute("data-item")
            undo_before = page.locator(".undo-form").inner_text()
            seen.append(int(before))
            for part in key.split():
                page.keyboard.press(part)
            if key.startswith("d"):
                # A re-tag keeps the item on screen with its new level.
                expect(_current(page)).to_contain_text("Hard (Set by a person, bob)")
            elif key == "u":
                expect(page.locator(".undo-form")).not_to_have_text(undo_before)
            else:
                expect(_current(page).or_(page.locator(".review-empty"))).not_to_have_attribute(
                    "data-item", before
                )
            _nothing_ran(page)
            if page.locator(".review-empty").count():
                break
        expect(page.locator(".review-empty")).to_be_visible()
        _nothing_ran(page)

    queue = review_data["queue"]
    assert not ReviewItem.objects.filter(queue=queue).exclude(state="done").exists()
    actions = list(Decision.objects.order_by("id").values_list("action", "reason", "difficulty"))
    assert ("reject", "unsafe", "") in actions  # R then 2: the second reason
    assert ("retag", "", "hard") in actions  # D then 3: the third level
    assert ("reject", "low_quality", "") in actions  # R then 6
    assert any(action == "skip" for action, _, _ in actions)
    assert any(action == "undo" for action, _, _ in actions)
    assert Sample.objects.filter(difficulty="hard", difficulty_set_by__username="bob").exists()
    live = Decision.objects.filter(action__in=("approve", "reject"), undone_by__isnull=True)
    assert live.count() == len(HOSTILE)


def test_hostile_samples_render_as_text_with_nothing_executed(live_server, review_data):
    samples = review_data["samples"]
    with logged_in_page(live_server.url, "alice", PASSWORD) as page:
        page.goto(_work_url(live_server, review_data))
        checked = 0
        while page.locator(".review-empty").count() == 0:
            current = _current(page)
            pk = int(current.get_attribute("data-item"))
            sample_text = current.locator("pre[id^=input-]")
            sample = samples[int(current.locator("h2").first.inner_text().split("#")[1])]
            assert sample_text.text_content() == _visible(
                json.dumps(sample.input, indent=2, ensure_ascii=False)
            )
            if len(sample.text) > 100_000:
                assert "clamped" in sample_text.get_attribute("class")
                page.keyboard.press("f")  # show all
                expect(sample_text).not_to_have_class("clamped")
            if current.locator("mark.grounding").count():
                assert current.locator("mark.grounding").text_content() == HOSTILE[2]
            if current.locator(".review-diff").count():
                expect(current.locator(".review-diff")).to_contain_text(f"parent {HOSTILE[1]}")
            assert "U+202E" in page.content() or "\u202e" not in sample.text
            _nothing_ran(page)
            page.keyboard.press("a")
            expect(_current(page).or_(page.locator(".review-empty"))).not_to_have_attribute(
                "data-item", str(pk)
            )
            checked += 1
        assert checked == len(HOSTILE)
        # The queue page lists the same samples, escaped, in the lead's view.
        queue = review_data["queue"]
        page.goto(f"{live_server.url}{reverse('review:queue', args=['hostile', queue.pk])}")
        expect(page.locator("#agreement")).to_contain_text("Judge (overall)")
        _nothing_ran(page)
