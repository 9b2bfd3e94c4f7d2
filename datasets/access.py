"""One permission-checked getter per object; every view goes through these.

Order of checks: an object in a dataset the user is not a member of is a 404 (its existence
is not revealed); a member whose role lacks the permission gets a 403.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from datasets.models import (
    Batch,
    Dataset,
    GenerationItem,
    ImportJob,
    PromptVersion,
    Sample,
    SourceDocument,
)

User = AbstractBaseUser | AnonymousUser


def datasets_visible_to(user: User):
    """The datasets a user may see: all for superusers, their memberships otherwise."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(membership__user=user)


def check_perm(user: User, perm: str | None) -> None:
    if perm and not user.has_perm(perm):
        raise PermissionDenied


def access_dataset(user: User, slug: str, *, perm: str | None = None) -> Dataset:
    dataset = datasets_visible_to(user).filter(slug=slug).first()
    if dataset is None:
        raise Http404("No such dataset")
    check_perm(user, perm)
    return dataset


def access_sample(user: User, slug: str, pk: int, *, perm: str | None = None) -> Sample:
    dataset = access_dataset(user, slug, perm=perm)
    sample = (
        Sample.objects.select_related(
            "import_job",
            "batch",
            "parent",
            "source_document",
            "duplicate_of",
            "difficulty_set_by",
        )
        # The sample page names the document; its full text can be megabytes.
        .defer("source_document__text")
        .filter(dataset=dataset, pk=pk)
        .first()
    )
    if sample is None:
        raise Http404("No such sample")
    sample.dataset = dataset
    return sample


def access_document(user: User, slug: str, pk: int, *, perm: str | None = None) -> SourceDocument:
    dataset = access_dataset(user, slug, perm=perm)
    document = SourceDocument.objects.filter(dataset=dataset, pk=pk).first()
    if document is None:
        raise Http404("No such document")
    document.dataset = dataset
    return document


def access_import_job(
    user: User, slug: str, pk: int, *, perm: str | None = "datasets.import_data"
) -> ImportJob:
    dataset = access_dataset(user, slug, perm=perm)
    job = ImportJob.objects.select_related("created_by").filter(dataset=dataset, pk=pk).first()
    if job is None:
        raise Http404("No such import")
    job.dataset = dataset
    return job


def access_batch(user: User, slug: str, pk: int, *, perm: str) -> Batch:
    dataset = access_dataset(user, slug, perm=perm)
    batch = (
        Batch.objects.select_related("generator", "judge", "prompt_version__template", "created_by")
        .filter(dataset=dataset, pk=pk)
        .first()
    )
    if batch is None:
        raise Http404("No such batch")
    batch.dataset = dataset
    return batch


def access_generation_item(
    user: User, slug: str, pk: int, item_pk: int, *, perm: str
) -> GenerationItem:
    batch = access_batch(user, slug, pk, perm=perm)
    item = GenerationItem.objects.filter(batch=batch, pk=item_pk).first()
    if item is None:
        raise Http404("No such item")
    item.batch = batch
    return item


def access_prompt_version(
    user: User, slug: str, pk: int, *, perm: str
) -> tuple[Dataset, PromptVersion]:
    """Prompts are shared by every dataset; membership of ``slug`` decides who sees them."""
    dataset = access_dataset(user, slug, perm=perm)
    version = PromptVersion.objects.select_related("template", "created_by").filter(pk=pk).first()
    if version is None:
        raise Http404("No such prompt version")
    return dataset, version
