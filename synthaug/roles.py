"""The three roles and what each may do.

Roles are Django groups so admins can see and change them in the admin; this module is the
one place that says which permissions each group holds, and ``roles_sync`` makes the
database match it after every migrate. What a user may *see* is decided per dataset by
membership; what they may *do* there is decided by these permissions.
"""

from __future__ import annotations

from typing import Any

ANNOTATOR = "annotator"
LEAD = "lead"
ADMIN = "admin"
ROLES = (ANNOTATOR, LEAD, ADMIN)

_ANNOTATOR_PERMS = {
    "datasets.view_batch",
    "datasets.view_dataset",
    "datasets.view_sample",
    "datasets.view_sourcedocument",
    # Spot checks (review app): annotators review; leads also manage queues.
    "review.view_reviewqueue",
    "review.add_decision",
}
_LEAD_PERMS = _ANNOTATOR_PERMS | {
    "datasets.add_dataset",
    "datasets.change_dataset",
    "datasets.import_data",
    "datasets.view_importjob",
    "datasets.add_batch",
    "datasets.change_batch",
    "review.manage_queue",
}

ROLE_PERMISSIONS: dict[str, set[str]] = {
    ANNOTATOR: _ANNOTATOR_PERMS,
    LEAD: _LEAD_PERMS,
    ADMIN: _LEAD_PERMS,  # admins are also superusers and staff; the group is for display.
}


def roles_sync(**kwargs: Any) -> None:
    """Create the role groups and set exactly their permissions (post_migrate handler)."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)
