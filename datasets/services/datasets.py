"""Creating datasets, users and memberships."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import transaction

from datasets.models import Dataset, Membership
from synthaug import roles

# A sample is {"input": ..., "expected": ...}; a question-answering default that datasets
# can replace with their own schema.
DEFAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["input", "expected"],
    "properties": {
        "input": {
            "type": "object",
            "required": ["question"],
            "properties": {"question": {"type": "string", "minLength": 1}},
        },
        "expected": {
            "type": "object",
            "required": ["answer"],
            "properties": {"answer": {"type": "string", "minLength": 1}},
        },
    },
}


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValidationError unless ``schema`` compiles as a JSON Schema for a sample."""
    import fastjsonschema

    if not isinstance(schema, dict):
        raise ValidationError("The schema must be a JSON object.")
    try:
        fastjsonschema.compile(schema)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ValidationError(f"The schema is not valid JSON Schema: {exc}") from None


def check_tag_dimensions(tag_dimensions: dict[str, Any]) -> None:
    if not isinstance(tag_dimensions, dict):
        raise ValidationError("Tag dimensions must be an object of dimension -> allowed values.")
    for name, values in tag_dimensions.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("Each tag dimension needs a name.")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(f"Allowed values of {name!r} must be a list of strings.")


@transaction.atomic
def dataset_create(
    *,
    name: str,
    slug: str,
    created_by: AbstractUser | None,
    task_type: str = Dataset.TaskType.QA,
    description: str = "",
    schema: dict[str, Any] | None = None,
    tag_dimensions: dict[str, list[str]] | None = None,
    license_note: str = "",
) -> Dataset:
    """Create a dataset; its creator becomes a member."""
    schema = DEFAULT_SCHEMA if schema is None else schema
    tag_dimensions = {} if tag_dimensions is None else tag_dimensions
    check_schema(schema)
    check_tag_dimensions(tag_dimensions)
    dataset = Dataset.objects.create(
        name=name,
        slug=slug,
        task_type=task_type,
        description=description,
        schema=schema,
        tag_dimensions=tag_dimensions,
        license_note=license_note,
        created_by=created_by,
    )
    if created_by is not None:
        Membership.objects.create(dataset=dataset, user=created_by)
    return dataset


def membership_add(*, dataset: Dataset, user: AbstractUser) -> Membership:
    membership, _ = Membership.objects.get_or_create(dataset=dataset, user=user)
    return membership


@transaction.atomic
def user_create(
    *, username: str, role: str, email: str = "", password: str | None = None
) -> tuple[AbstractUser, str]:
    """Create a user in ``role`` and return it with its password (random unless given).

    There are no default passwords: the caller shows the returned one once.
    """
    if role not in roles.ROLES:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(roles.ROLES)}.")
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise ValidationError(f"A user named {username!r} already exists.")
    password = password or secrets.token_urlsafe(12)
    user = user_model.objects.create_user(username=username, email=email, password=password)
    if role == roles.ADMIN:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    user.groups.add(Group.objects.get(name=role))
    return user, password
