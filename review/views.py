"""Review pages: my queues, a queue (progress, agreement, items, lead tools), the review
page itself, and the audit log.

Every object comes through a getter in review/access.py. The review page answers htmx
requests with the ``stage`` partial (the held items and their forms) and plain POSTs with a
redirect, so it works without JavaScript.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from datasets.access import access_batch, check_perm
from datasets.forms import CursorForm, SampleFilterForm
from datasets.models import Difficulty
from datasets.selectors.browse import samples_matching
from review import selectors
from review.access import DECIDE, MANAGE, VIEW, access_queue, access_queue_item
from review.forms import AddSamplesForm, BulkForm, DecisionForm, ReassignForm, UndoForm
from review.models import Decision, QueueFigures, ReviewItem, ReviewQueue
from review.services import (
    DecisionRefused,
    bulk_decide,
    decision_record,
    decision_undo,
    queue_add_samples,
    queue_build,
    queue_reassign,
    review_hand,
)
from review.services.figures import queue_figures

ADD_FILTER_CAP = 5000
# The fields the queue page offers for adding a whole filter (not the tag ones).
FILTERS = SampleFilterForm.base_fields
SHORTCUTS = [
    ("A", "Approve"),
    ("R then 1-7", "Reject with a reason"),
    ("D then 1-4", "Re-tag difficulty (easy, medium, hard, adversarial)"),
    ("S", "Skip"),
    ("U", "Undo your last decision"),
    ("F", "Show all of a long text"),
    ("Esc", "Cancel a started R or D"),
]


def _wants_fragment(request: HttpRequest) -> bool:
    return bool(request.htmx) and not request.htmx.history_restore_request


@require_GET
def queue_list(request: HttpRequest) -> HttpResponse:
    queues = list(selectors.queues_for_user(user=request.user)[:200])
    return render(request, "review/queues.html", {"queues": queues})


@require_GET
def batch_queue(request: HttpRequest, slug: str, batch_pk: int) -> HttpResponse:
    """The batch page's link: its queue, or why there is none yet."""
    batch = access_batch(request.user, slug, batch_pk, perm=VIEW)
    queue = ReviewQueue.objects.filter(batch=batch).only("pk").first()
    if queue is not None:
        return redirect("review:queue", slug, queue.pk)
    return render(request, "review/no_queue.html", {"dataset": batch.dataset, "batch": batch})


@require_POST
def batch_queue_build(request: HttpRequest, slug: str, batch_pk: int) -> HttpResponse:
    batch = access_batch(request.user, slug, batch_pk, perm=MANAGE)
    queue, created = queue_build(batch=batch, created_by=request.user)
    if created:
        messages.success(request, "Built the spot-check queue. Next: reviewers take items.")
    return redirect("review:queue", slug, queue.pk)


@require_GET
@vary_on_headers("HX-Request")
def queue_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk)
    show = request.GET.get("show", "")
    state = request.GET.get("state", "")
    state = state if state in ReviewItem.State.values else ""
    fragment = _wants_fragment(request)
    # The list fragment needs no figures unless it narrows to the disagreements.
    figures = None if fragment and not show else queue_figures(queue=queue, detail=bool(show))
    report = None
    if figures is not None:
        agreed = figures[QueueFigures.Kind.AGREEMENT]
        report = selectors.stored_agreement(agreed.value, agreed.detail, agreed.as_of)
    narrowed = None
    if show == "judge":
        narrowed = report.judge_disagreements if report else set()
    elif show == "people":
        narrowed = report.people_disagreements if report else set()
    page = selectors.item_page(
        queue=queue, state=state or None, sample_ids=narrowed, **_after(request)
    )
    context = {
        "dataset": queue.dataset,
        "queue": queue,
        "page": page,
        "state": state,
        "show": show,
        "states": ReviewItem.State.choices,
        # Per-row work kept out of the 50-row loop: one permission check, one reverse().
        "can_manage": request.user.has_perm(MANAGE),
        "sample_base": reverse("datasets:sample", args=[queue.dataset.slug, 0])[:-2],
    }
    if fragment:
        return render(request, "review/queue.html#items", context)
    context.update(
        progress=selectors.queue_progress(
            queue=queue,
            settled=figures[QueueFigures.Kind.PROGRESS].value,
            as_of=figures[QueueFigures.Kind.PROGRESS].as_of,
        ),
        report=report,
        reasons=Decision.Reason.choices,
        members=queue.dataset.members.order_by("username").values_list("pk", "username"),
        filter_fields=[(name, FILTERS[name]) for name in ("origin", "status", "difficulty")],
        filter_text=FILTERS["q"],
    )
    return render(request, "review/queue.html", context)


def _after(request: HttpRequest) -> dict:
    return {"after": CursorForm(request.GET).cursor()["after"]}


def _stage(request: HttpRequest, queue: ReviewQueue, *, error: str = "", status: int = 200):
    hand = review_hand(queue=queue, user=request.user)
    context = {
        "dataset": queue.dataset,
        "queue": queue,
        "views": selectors.hand_details(items=hand),
        "error": error,
        "last": selectors.last_decision(queue=queue, user=request.user),
        "reasons": Decision.Reason.choices,
        "levels": [(value, label) for value, label in Difficulty.choices if value],
        "shortcuts": SHORTCUTS,
        "new_key": lambda: uuid.uuid4().hex,
    }
    template = "review/work.html#stage" if _wants_fragment(request) else "review/work.html"
    return render(request, template, context, status=status)


@require_GET
@vary_on_headers("HX-Request")
def work(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk, perm=DECIDE)
    return _stage(request, queue)


@require_POST
def decide(request: HttpRequest, slug: str, pk: int, item_pk: int) -> HttpResponse:
    item = access_queue_item(request.user, slug, pk, item_pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _refused(request, item.queue, "That decision was incomplete; nothing was recorded.")
    data = form.cleaned_data
    try:
        decision_record(
            item_id=item.pk,
            user=request.user,
            action=data["action"],
            claim_seq=data["claim"],
            idempotency_key=data["key"],
            reason=data["reason"],
            comment=data["comment"],
            difficulty=data["difficulty"],
            rationale=data["rationale"],
        )
    except DecisionRefused as refused:
        return _refused(request, item.queue, str(refused), status=refused.status)
    if _wants_fragment(request):
        return _stage(request, item.queue)
    return redirect("review:work", slug, pk)


def _refused(request, queue, message: str, *, status: int = 400) -> HttpResponse:
    # The page comes back with the message and the reviewer's current items; htmx swaps
    # 400 and 409 answers on this page (review.js), so the reviewer sees why.
    return _stage(request, queue, error=message, status=status)


@require_POST
def undo(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk, perm=DECIDE)
    form = UndoForm(request.POST)
    if not form.is_valid():
        return _refused(request, queue, "Nothing was undone: the form was incomplete.")
    try:
        undone = decision_undo(
            queue=queue, user=request.user, idempotency_key=form.cleaned_data["key"]
        )
    except DecisionRefused as refused:
        return _refused(request, queue, str(refused), status=refused.status)
    if undone is None:
        return _refused(request, queue, "You have no decision here to undo.")
    if _wants_fragment(request):
        return _stage(request, queue)
    return redirect("review:work", slug, pk)


def _back(queue: ReviewQueue) -> HttpResponse:
    return redirect(reverse("review:queue", args=[queue.dataset.slug, queue.pk]) + "#lead-tools")


@require_POST
def bulk(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk, perm=MANAGE)
    form = BulkForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(message for field in form.errors.values() for message in field)
        messages.error(request, f"Nothing was decided. {errors}")
        return _back(queue)
    ids = form.item_ids(queue)
    try:
        count = bulk_decide(
            queue=queue,
            item_ids=ids,
            by=request.user,
            action=form.cleaned_data["action"],
            reason=form.cleaned_data["reason"],
            comment=form.cleaned_data["comment"],
        )
    except DecisionRefused as refused:
        messages.error(request, f"Nothing was decided. {refused}")
        return _back(queue)
    messages.success(request, f"Recorded {count} decisions; each is in the audit log.")
    return _back(queue)


@require_POST
def reassign(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk, perm=MANAGE)
    form = ReassignForm(request.POST, members=queue.dataset.members.all())
    if not form.is_valid():
        messages.error(request, "Nothing was reassigned: choose a member of this dataset.")
        return _back(queue)
    moved = queue_reassign(
        queue=queue, item_ids=form.item_ids(queue), to=form.cleaned_data["to"], by=request.user
    )
    messages.success(request, f"Reassigned {moved} undecided items.")
    return _back(queue)


@require_POST
def add_samples(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk, perm=MANAGE)
    form = AddSamplesForm(request.POST)
    form.is_valid()
    ids = form.ids()
    if not ids:
        filters = SampleFilterForm(request.POST, dataset=queue.dataset).filters()
        if not filters.narrowing:
            messages.error(request, "Give sample ids or at least one filter; nothing was added.")
            return _back(queue)
        ids = list(
            samples_matching(dataset=queue.dataset, filters=filters)
            .order_by("-pk")
            .values_list("pk", flat=True)[:ADD_FILTER_CAP]
        )
    added = queue_add_samples(queue=queue, sample_ids=ids, by=request.user)
    messages.success(
        request, f"Added {added} samples to the queue (samples already in it are kept)."
    )
    return _back(queue)


@require_GET
def audit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    queue = access_queue(request.user, slug, pk)
    check_perm(request.user, MANAGE)
    page = selectors.audit_page(dataset_id=queue.dataset.pk, queue=queue, **_after(request))
    return render(
        request, "review/audit.html", {"dataset": queue.dataset, "queue": queue, "page": page}
    )
