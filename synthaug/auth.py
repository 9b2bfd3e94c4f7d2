"""The authentication backend: Django's ModelBackend, with what a page needs to know about
its user (their permissions, their roles' names) read in one query instead of three.

Every page checks a permission (the getters in ``datasets/access.py``, the templates'
``perms``) and names the user's roles in its header. ModelBackend reads the user's own
permissions and their groups' permissions with one query each, and the header read the
groups with a third. Here one ``UNION`` brings all three, once per request; the answers,
and the per-request cache on the user object, are ModelBackend's.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db.models import CharField, Value


class OneQueryModelBackend(ModelBackend):
    def _load(self, user_obj) -> None:
        """Fill ``_perm_cache`` (as ModelBackend would) and ``_role_names``."""
        fields = ("content_type__app_label", "codename")
        # Group rows have an empty app label, which no permission has.
        groups = (
            Group.objects.filter(user=user_obj)
            .annotate(app=Value("", output_field=CharField()))
            .values_list("app", "name")
            .order_by()
        )
        if user_obj.is_superuser:
            parts = [Permission.objects.values_list(*fields).order_by()]
        else:
            parts = [
                Permission.objects.filter(user=user_obj).values_list(*fields).order_by(),
                Permission.objects.filter(group__user=user_obj).values_list(*fields).order_by(),
            ]
        found, roles = set(), []
        for app_label, name in groups.union(*parts).order_by():
            if app_label:
                found.add(f"{app_label}.{name}")
            else:
                roles.append(name)
        if user_obj.is_active:
            user_obj._perm_cache = found
        user_obj._role_names = sorted(roles)

    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            self._load(user_obj)
        return user_obj._perm_cache

    def role_names(self, user_obj) -> list[str]:
        if user_obj.is_anonymous:
            return []
        if not hasattr(user_obj, "_role_names"):
            self._load(user_obj)
        return user_obj._role_names


_backend = OneQueryModelBackend()


def role_names(user) -> list[str]:
    """The names of the user's roles (groups), for the page header; read with their
    permissions, or taken from what a permission check of this request read."""
    return _backend.role_names(user)
