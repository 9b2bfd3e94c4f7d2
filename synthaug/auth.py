"""The authentication backend: Django's ModelBackend, with what a page needs to know about
its user (their permissions, their roles' names) read in one query instead of three.

Every page checks a permission (the getters in ``datasets/access.py``, the templates'
``perms``) and names the user's roles in its header. ModelBackend reads the user's own
permissions and their groups' permissions with one query each, and the header read the
groups with a third. Here one ``UNION`` brings all three, once per request; the answers,
and the per-request cache on the user object, are ModelBackend's.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connections, router


class OneQueryModelBackend(ModelBackend):
    def _load(self, user_obj) -> None:
        """Fill ``_perm_cache`` (as ModelBackend would) and ``_role_names``."""
        sql, times = _load_sql(router.db_for_read(Permission), user_obj.is_superuser)
        found, roles = set(), []
        with connections[router.db_for_read(Permission)].cursor() as cursor:
            cursor.execute(sql, [user_obj.pk] * times)
            for app_label, name in cursor.fetchall():
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


@cache
def _load_sql(alias: str, superuser: bool) -> tuple[str, int]:
    """The one query of ``_load`` and how many times it takes the user's id: the groups'
    names (with an empty app label, which no permission has) and the user's permissions,
    their own and their groups' (every one, for a superuser).

    Written as SQL from the models' metadata, once per process: composed through the ORM
    (a union of three querysets) it cost a millisecond of CPU per request to compile,
    seven times what running it costs, on every page.
    """
    q = connections[alias].ops.quote_name
    user = get_user_model()
    user_groups = user.groups.through
    user_perms = user.user_permissions.through
    group_perms = Group.permissions.through

    def table(model) -> str:
        return q(model._meta.db_table)

    def column(model, name: str) -> str:
        return q(model._meta.get_field(name).column)

    def link(through, to) -> str:
        """The column of ``through`` (a many-to-many table) that points at ``to``."""
        field = next(f for f in through._meta.fields if f.related_model is to)
        return q(field.column)

    # Names come from the models' metadata, values go as parameters.
    perm = (
        f"SELECT ct.{column(ContentType, 'app_label')}, p.{column(Permission, 'codename')} "  # noqa: S608
        f"FROM {table(Permission)} p JOIN {table(ContentType)} ct "
        f"ON ct.{column(ContentType, 'id')} = p.{column(Permission, 'content_type')}"
    )
    parts = [
        f"SELECT '', g.{column(Group, 'name')} FROM {table(Group)} g "  # noqa: S608
        f"JOIN {table(user_groups)} ug ON ug.{link(user_groups, Group)} = g.{column(Group, 'id')} "
        f"WHERE ug.{link(user_groups, user)} = %s"
    ]
    if superuser:
        parts.append(perm)
    else:
        parts.append(
            f"{perm} JOIN {table(user_perms)} up "
            f"ON up.{link(user_perms, Permission)} = p.{column(Permission, 'id')} "
            f"WHERE up.{link(user_perms, user)} = %s"
        )
        parts.append(
            f"{perm} JOIN {table(group_perms)} gp "
            f"ON gp.{link(group_perms, Permission)} = p.{column(Permission, 'id')} "
            f"JOIN {table(user_groups)} ug ON ug.{link(user_groups, Group)} = "
            f"gp.{link(group_perms, Group)} WHERE ug.{link(user_groups, user)} = %s"
        )
    return " UNION ".join(parts), 1 if superuser else 3


_backend = OneQueryModelBackend()


def role_names(user) -> list[str]:
    """The names of the user's roles (groups), for the page header; read with their
    permissions, or taken from what a permission check of this request read."""
    return _backend.role_names(user)
