"""The review pages through the test client, with and without HX-Request, their query
counts, and who may do what (alice lead member, bob annotator member, charlie outsider)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.template.defaultfilters import floatformat
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from datasets.forms import SampleFilterForm
from datasets.models import Sample
from review.models import AuditEntry, Decision, ReviewItem, ReviewSettings
from review.selectors import AgreementReport
from review.services import item_claim_next, queue_add_samples, queue_build
from review.templatetags.review_table import _two, agreement_rows
from synthaug.engine.agreement import Agreement
from tests.factories import make_sample
from tests.review_support import checked_batch, full_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(dataset):
    return full_queue(dataset)


def url(name, queue, *args):
    return reverse(f"review:{name}", args=[queue.dataset.slug, queue.pk, *args])


def form_fields(html: str, item_pk: int) -> dict:
    """The hidden fields of the decision form of one item, as the page rendered them."""
    section = html[html.index(f'id="review-item-{item_pk}"') :]
    claim = re.search(r'name="claim" value="(\d+)"', section).group(1)
    key = re.search(r'name="key" value="([0-9a-f]+)"', section).group(1)
    return {"claim": claim, "key": key}


def test_the_review_page_shows_the_item_and_prefetches_the_next(bob_client, queue, bob):
    response = bob_client.get(url("work", queue))
    html = response.content.decode()
    assert response.status_code == 200
    held = list(
        ReviewItem.objects.filter(queue=queue, claimed_by=bob, state="claimed").order_by(
            "claimed_at", "position"
        )
    )
    assert len(held) == 3
    assert f'id="review-item-{held[0].pk}" data-item="{held[0].pk}" data-current' in html
    assert f'id="review-item-{held[1].pk}" data-item="{held[1].pk}" hidden data-prefetched' in html
    assert "judge rationale" in html
    assert "<kbd>A</kbd>" in html
    assert 'src="/static/synthaug/review.js"' in html


def test_a_decision_without_htmx_redirects_and_with_htmx_returns_the_next_item(
    bob_client, queue, bob
):
    html = bob_client.get(url("work", queue)).content.decode()
    first = ReviewItem.objects.filter(claimed_by=bob).order_by("claimed_at", "position")[0]
    fields = form_fields(html, first.pk)

    response = bob_client.post(url("decide", queue, first.pk), {**fields, "action": "approve"})
    assert response.status_code == 302
    assert response["Location"] == url("work", queue)
    assert Sample.objects.get(pk=first.sample_id).review_status == "approved"

    html = bob_client.get(url("work", queue)).content.decode()
    second = ReviewItem.objects.filter(claimed_by=bob, state="claimed").order_by(
        "claimed_at", "position"
    )[0]
    fields = form_fields(html, second.pk)
    response = bob_client.post(
        url("decide", queue, second.pk),
        {**fields, "action": "reject", "reason": "unsafe", "comment": "<b>no</b>"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="review-stage"')
    assert "<html" not in body
    decision = Decision.objects.get(item=second)
    assert decision.reason == "unsafe"
    assert decision.comment == "<b>no</b>"
    # The double submit of the same form: recorded once, no error.
    again = bob_client.post(
        url("decide", queue, second.pk),
        {**fields, "action": "reject", "reason": "unsafe"},
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 200
    assert Decision.objects.filter(item=second).count() == 1


def test_a_stale_submit_gets_409_with_a_clear_message(bob_client, alice_client, queue, bob, alice):
    html = bob_client.get(url("work", queue)).content.decode()
    first = ReviewItem.objects.filter(claimed_by=bob).order_by("claimed_at", "position")[0]
    fields = form_fields(html, first.pk)
    # The lease runs out and alice gets the item.
    ReviewItem.objects.filter(claimed_by=bob).update(state="open")
    ReviewItem.objects.exclude(pk=first.pk).update(state="done", claimed_by=alice)
    assert item_claim_next(queue=queue, user=alice).pk == first.pk

    for headers in ({}, {"HX-Request": "true"}):
        response = bob_client.post(
            url("decide", queue, first.pk), {**fields, "action": "approve"}, headers=headers
        )
        assert response.status_code == 409
        assert "went to someone else" in response.content.decode()
    assert not Decision.objects.exists()


def test_a_reject_without_reason_is_refused_and_nothing_recorded(bob_client, queue, bob):
    html = bob_client.get(url("work", queue)).content.decode()
    first = ReviewItem.objects.filter(claimed_by=bob).order_by("claimed_at", "position")[0]
    response = bob_client.post(
        url("decide", queue, first.pk), {**form_fields(html, first.pk), "action": "reject"}
    )
    assert response.status_code == 400
    assert "choose a reason" in response.content.decode()
    assert not Decision.objects.exists()


def test_undo_through_the_page(bob_client, queue, bob):
    html = bob_client.get(url("work", queue)).content.decode()
    first = ReviewItem.objects.filter(claimed_by=bob).order_by("claimed_at", "position")[0]
    bob_client.post(
        url("decide", queue, first.pk), {**form_fields(html, first.pk), "action": "approve"}
    )
    html = bob_client.get(url("work", queue)).content.decode()
    assert f"approve of sample #{first.sample_id}" in html
    key = re.search(
        r'class="undo-form">\s*<input[^>]*>\s*<input type="hidden" name="key" value="([0-9a-f]+)"',
        html,
    )
    response = bob_client.post(
        url("undo", queue), {"key": key.group(1)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert Sample.objects.get(pk=first.sample_id).review_status == ""
    assert (
        f'id="review-item-{first.pk}" data-item="{first.pk}" data-current'
        in response.content.decode()
    )


def test_queue_and_work_pages_have_a_constant_query_count(alice_client, dataset, alice):
    ReviewSettings.objects.create(dataset=dataset, sample_rate=1.0, min_per_stratum=1)
    seen = []
    for count in (8, 80):
        batch, _ = checked_batch(dataset, count=count)
        queue, _ = queue_build(batch=batch, seed=1)
        for item in list(queue.items.all()[: count // 2]):
            ReviewItem.objects.filter(pk=item.pk).update(
                state="claimed", claimed_by=alice, lease_until=timezone.now() + timedelta(hours=1)
            )
        counts = {}
        for name, headers in (("queue", {}), ("queue", {"HX-Request": "true"}), ("work", {})):
            alice_client.get(url(name, queue), headers=headers)  # warm: session, claims
            with CaptureQueriesContext(connection) as ctx:
                response = alice_client.get(url(name, queue), headers=headers)
            assert response.status_code == 200
            counts[(name, bool(headers))] = len(ctx.captured_queries)
        seen.append(counts)
    assert seen[0] == seen[1]
    # The item list reads the queue's kept item count: no count query at any size. The
    # queue comes with its dataset and membership in one query, the user's permissions in
    # one more, with the names of their roles for the header (synthaug/auth.py).
    assert seen[0] == {("queue", False): 9, ("queue", True): 5, ("work", False): 9}


def test_queues_page_and_nav(bob_client, queue):
    response = bob_client.get(reverse("review:queues"))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="{reverse("review:queues")}">Review</a>' in html
    assert url("work", queue) in html


def test_the_batch_link_leads_to_its_queue_or_says_why_not(alice_client, dataset, queue):
    response = alice_client.get(reverse("review:batch", args=[dataset.slug, queue.batch_id]))
    assert response.status_code == 302
    assert response["Location"] == url("queue", queue)
    other, _ = checked_batch(dataset, count=3)
    page = alice_client.get(reverse("review:batch", args=[dataset.slug, other.pk]))
    assert "No spot-check queue yet" in page.content.decode()
    built = alice_client.post(reverse("review:build", args=[dataset.slug, other.pk]))
    assert built.status_code == 302
    assert other.review_queue.items.count() == 3


def test_lead_tools_bulk_reassign_add_and_audit(alice_client, bob, dataset, queue):
    ids = list(queue.items.values_list("pk", flat=True)[:3])
    # Without the confirmation nothing happens.
    alice_client.post(url("bulk", queue), {"item": ids, "action": "approve"})
    assert not Decision.objects.exists()
    response = alice_client.post(
        url("bulk", queue), {"item": ids, "action": "approve", "confirm": "on"}
    )
    assert response.status_code == 302
    assert Decision.objects.filter(via="bulk").count() == 3
    rest = list(queue.items.exclude(pk__in=ids).values_list("pk", flat=True))
    alice_client.post(url("reassign", queue), {"items": " ".join(map(str, rest)), "to": bob.pk})
    assert set(queue.items.filter(pk__in=rest).values_list("assigned_to", flat=True)) == {bob.pk}
    extra = Sample.objects.create(
        dataset=dataset,
        input={"q": "x"},
        text="x",
        origin="real",
        content_hash="h" * 64,
        source_group="g",
    )
    alice_client.post(url("add", queue), {"sample_ids": str(extra.pk)})
    assert queue.items.filter(sample=extra, reason="added").exists()
    audit = alice_client.get(url("audit", queue)).content.decode()
    assert "Bulk approve: 3 items" in audit
    assert "Reassigned 5 items to bob" in audit
    assert AuditEntry.objects.filter(queue=queue).count() == 1 + 3 + 1 + 1 + 1


def test_the_add_form_offers_the_filter_forms_choices_and_adds_what_one_matches(
    alice_client, alice, dataset, queue
):
    html = alice_client.get(url("queue", queue)).content.decode()
    tools = html[html.index('id="lead-tools"') :]
    for name in ("origin", "status", "difficulty"):
        select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', tools, re.S).group(1)
        offered = re.findall(r'<option value="([^"]*)">', select)
        assert offered == [str(value) for value, _ in SampleFilterForm.base_fields[name].choices]
    assert '<input type="search" name="q" maxlength="200"' in tools
    # The members to reassign to, by name.
    assert f'<option value="{alice.pk}">alice</option>' in tools
    hard = [make_sample(dataset, difficulty="hard", text=f"hard {n}") for n in range(2)]
    make_sample(dataset, difficulty="easy", text="easy")
    response = alice_client.post(url("add", queue), {"difficulty": "hard", "origin": "real"})
    assert response.status_code == 302
    added = set(queue.items.filter(reason="added").values_list("sample_id", flat=True))
    assert added == {sample.pk for sample in hard}


def test_the_item_list_names_who_holds_each_item(alice_client, bob, queue):
    item = item_claim_next(queue=queue, user=bob)
    fragment = {"HX-Request": "true"}
    html = alice_client.get(url("queue", queue), headers=fragment).content.decode()
    row = html[html.index(f'<tr id="item-{item.pk}">') :]
    assert row[: row.index("</tr>")].endswith("<td>bob</td><td>anyone</td>")


def test_the_agreement_and_disagreements_are_one_click_away(alice_client, queue, alice):
    # Judge: passes when n % 3 != 0. People approve everything -> disagree where n % 3 == 0.
    from review.services import bulk_decide

    bulk_decide(
        queue=queue, item_ids=queue.items.values_list("pk", flat=True), by=alice, action="approve"
    )
    html = alice_client.get(url("queue", queue)).content.decode()
    assert "Judge (overall)" in html
    assert "Items where the judge and a person disagree (3)" in html
    narrowed = alice_client.get(url("queue", queue) + "?show=judge", headers={"HX-Request": "true"})
    assert len(re.findall(r'<tr id="item-\d+"', narrowed.content.decode())) == 3


PERMISSION_MATRIX = [
    # (view, method, alice lead, bob annotator, charlie outsider)
    ("queue", "get", 200, 200, 404),
    ("work", "get", 200, 200, 404),
    ("audit", "get", 200, 403, 404),
    ("bulk", "post", 302, 403, 404),
    ("reassign", "post", 302, 403, 404),
    ("add", "post", 302, 403, 404),
    ("undo", "post", 400, 400, 404),
]


@pytest.mark.parametrize(("name", "method", "lead", "annotator", "outsider"), PERMISSION_MATRIX)
def test_the_permission_matrix(
    name,
    method,
    lead,
    annotator,
    outsider,
    queue,
    alice_client,
    bob_client,
    charlie_client,
    client,
):
    target = url(name, queue)
    for who, expected in (
        (alice_client, lead),
        (bob_client, annotator),
        (charlie_client, outsider),
    ):
        response = getattr(who, method)(target, {})
        assert response.status_code == expected, (name, who, response.status_code)
    anonymous = getattr(client, method)(target, {})
    assert anonymous.status_code == 302
    assert "/login/" in anonymous["Location"]


def test_an_outsider_cannot_decide_an_item(charlie_client, queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    response = charlie_client.post(
        url("decide", queue, item.pk),
        {"claim": item.claim_seq, "key": "k" * 10, "action": "approve"},
    )
    assert response.status_code == 404
    assert not Decision.objects.exists()


def test_the_queue_page_figures_follow_each_decision(alice_client, queue, alice, bob):
    from review.services import decision_record

    page = alice_client.get(url("queue", queue)).content.decode()
    assert "<strong>0</strong> decided" in page
    item = item_claim_next(queue=queue, user=bob)
    held = alice_client.get(url("queue", queue)).content.decode()
    assert "<strong>1</strong> being reviewed" in held  # claims are read live
    decision_record(
        item_id=item.pk, user=bob, action="approve", claim_seq=item.claim_seq, idempotency_key="k1"
    )
    after = alice_client.get(url("queue", queue)).content.decode()
    assert "<strong>1</strong> decided" in after
    assert "<td>bob</td><td>1</td><td>1</td><td>0</td>" in after
    assert "Judge (overall)</th><td>1</td>" in after


def test_an_expired_lease_counts_as_waiting(alice_client, queue, bob):
    item = item_claim_next(queue=queue, user=bob)
    assert (
        "<strong>1</strong> being reviewed"
        in alice_client.get(url("queue", queue)).content.decode()
    )
    ReviewItem.objects.filter(pk=item.pk).update(lease_until=timezone.now() - timedelta(1))
    page = alice_client.get(url("queue", queue)).content.decode()
    assert "<strong>0</strong> being reviewed" in page
    assert "<strong>8</strong> waiting" in page


def test_the_item_list_counts_the_queue_it_keeps_and_counts_filtered_lists(
    alice_client, queue, alice, dataset
):
    fragment = {"HX-Request": "true"}
    assert (
        '<p class="count">8 items</p>'
        in alice_client.get(url("queue", queue), headers=fragment).content.decode()
    )
    queue_add_samples(queue=queue, sample_ids=[make_sample(dataset).pk], by=alice)
    assert (
        '<p class="count">9 items</p>'
        in alice_client.get(url("queue", queue), headers=fragment).content.decode()
    )
    first = queue.items.order_by("pk").first()
    ReviewItem.objects.filter(pk=first.pk).update(state="done", claimed_by=alice)
    done = alice_client.get(url("queue", queue) + "?state=done", headers=fragment)
    assert '<p class="count">1 item</p>' in done.content.decode()


def test_the_item_rows_escape_hostile_text_and_show_invisible_characters(
    alice_client, bob_client, queue
):
    item = queue.items.order_by("pk").first()
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">\u202eevil'
    Sample.objects.filter(pk=item.sample_id).update(text=hostile)
    fragment = {"HX-Request": "true"}
    html = alice_client.get(url("queue", queue), headers=fragment).content.decode()
    row = html[html.index(f'<tr id="item-{item.pk}">') :]
    row = row[: row.index("</tr>")]
    assert "<script>" not in html
    assert "<img" not in html
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in row
    )
    assert '<span class="invisible-char">U+202E</span>evil' in row
    assert f'name="item" value="{item.pk}" form="bulk-form"' in row  # a lead selects rows
    assert f">#{item.sample_id}</a>" in row
    assert "<td>anyone</td>" in row
    # An annotator sees the same rows without the bulk checkboxes.
    plain = bob_client.get(url("queue", queue), headers=fragment).content.decode()
    assert f'<tr id="item-{item.pk}"><td>#{item.pk}</td>' in plain
    assert 'name="item"' not in plain


@pytest.mark.parametrize("value", [0.0, 1.0, 0.125, 0.625, 0.335, -0.215, 0.7333333, 0.995])
def test_agreement_numbers_round_as_the_floatformat_filter_does(value):
    assert _two(value) == floatformat(value, 2)


def test_the_agreement_rows_cover_every_case_and_escape_labels():
    measured = Agreement(
        n=12, agree=9, accuracy=0.75, accuracy_low=0.4677, accuracy_high=0.9111,
        kappa=0.625, kappa_low=0.2, kappa_high=1.0,
    )  # fmt: skip
    one_verdict = Agreement(
        n=3, agree=3, accuracy=1.0, accuracy_low=0.4385, accuracy_high=1.0,
        kappa=None, kappa_low=None, kappa_high=None,
    )  # fmt: skip
    empty = Agreement(0, 0, None, None, None, None, None, None)
    report = AgreementReport(
        judge=measured,
        by_check={"judge": measured},
        by_stratum={"<b>hard</b> / paraphrase": one_verdict},
        people=empty,
    )
    rows = str(agreement_rows(report)).split("\n")
    assert rows == [
        '<tr><th>Judge (overall)</th><td>12</td><td>0.75 <span class="muted">[0.47, 0.91]'
        '</span></td><td>0.63 <span class="muted">[0.20, 1.00]</span></td><td>3</td></tr>',
        '<tr><th>Check: judge</th><td>12</td><td>0.75 <span class="muted">[0.47, 0.91]'
        '</span></td><td>0.63 <span class="muted">[0.20, 1.00]</span></td><td>3</td></tr>',
        "<tr><th>Stratum: &lt;b&gt;hard&lt;/b&gt; / paraphrase</th><td>3</td><td>1.00 "
        '<span class="muted">[0.44, 1.00]</span></td><td><span class="muted">undefined (one '
        "verdict for all)</span></td><td>0</td></tr>",
        '<tr><th>Between reviewers (overlap)</th><td>0</td><td><span class="muted">no '
        'decisions yet</span></td><td><span class="muted">—</span></td><td>0</td></tr>',
    ]


def test_the_composition_table_puts_the_build_figures_beside_the_queue_figures(
    alice_client, dataset
):
    ReviewSettings.objects.create(dataset=dataset, sample_rate=0.1, min_per_stratum=3)
    batch, _ = checked_batch(dataset, count=100, difficulties=("easy", "medium", "hard", "hard"))
    queue, _ = queue_build(batch=batch, seed=7)
    html = alice_client.get(url("queue", queue)).content.decode()
    # Stratum, in batch, sampled at build, in queue, decided.
    assert "<tr><td>hard / paraphrase</td><td>50</td><td>5</td><td>5</td><td>0</td></tr>" in html
    assert "<tr><td>easy / paraphrase</td><td>25</td><td>3</td><td>3</td><td>0</td></tr>" in html
