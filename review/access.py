"""Permission-checked getters for the review app, in the pattern of datasets/access.py:
outside one's datasets is a 404, a member without the permission gets a 403."""

from __future__ import annotations

from django.http import Http404

from datasets.access import User, check_perm, datasets_visible_to
from review.models import ReviewItem, ReviewQueue

VIEW = "review.view_reviewqueue"
DECIDE = "review.add_decision"
MANAGE = "review.manage_queue"


def access_queue(user: User, slug: str, pk: int, *, perm: str = VIEW) -> ReviewQueue:
    # The dataset, its membership and the queue in one query: every queue page and every
    # decision comes through here.
    queue = (
        ReviewQueue.objects.select_related("batch", "dataset")
        .filter(pk=pk, dataset__in=datasets_visible_to(user).filter(slug=slug))
        .first()
    )
    if queue is None:
        raise Http404("No such queue")
    check_perm(user, perm)
    queue.batch.dataset = queue.dataset
    return queue


def access_queue_item(
    user: User, slug: str, pk: int, item_pk: int, *, perm: str = DECIDE
) -> ReviewItem:
    queue = access_queue(user, slug, pk, perm=perm)
    item = ReviewItem.objects.filter(queue=queue, pk=item_pk).first()
    if item is None:
        raise Http404("No such item")
    item.queue = queue
    return item
