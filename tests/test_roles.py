from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from datasets.models import Membership
from synthaug import roles


def test_it_creates_the_role_groups_with_exactly_their_permissions(db):
    annotator = Group.objects.get(name=roles.ANNOTATOR)
    lead = Group.objects.get(name=roles.LEAD)
    annotator_perms = {
        f"{p.content_type.app_label}.{p.codename}" for p in annotator.permissions.all()
    }
    lead_perms = {f"{p.content_type.app_label}.{p.codename}" for p in lead.permissions.all()}
    assert annotator_perms == roles.ROLE_PERMISSIONS[roles.ANNOTATOR]
    assert lead_perms == roles.ROLE_PERMISSIONS[roles.LEAD]
    assert "datasets.import_data" not in annotator_perms
    assert "datasets.add_dataset" not in annotator_perms


def test_it_gives_leads_but_not_annotators_the_right_to_create_and_import(alice, bob):
    assert alice.has_perm("datasets.add_dataset")
    assert alice.has_perm("datasets.import_data")
    assert not bob.has_perm("datasets.add_dataset")
    assert not bob.has_perm("datasets.import_data")
    assert bob.has_perm("datasets.view_sample")


def test_it_resyncs_permissions_that_drifted(db):
    lead = Group.objects.get(name=roles.LEAD)
    lead.permissions.clear()
    roles.roles_sync()
    assert lead.permissions.filter(codename="import_data").exists()


def test_it_creates_a_user_with_a_random_password_printed_once(db, dataset):
    out = StringIO()
    call_command("user_create", "dora", "--role", "annotator", "--dataset", "truthful", stdout=out)
    password = re.search(r"Password \(shown once, store it now\): (\S+)", out.getvalue()).group(1)
    assert len(password) >= 16
    user = get_user_model().objects.get(username="dora")
    assert authenticate(username="dora", password=password) == user
    assert list(user.groups.values_list("name", flat=True)) == ["annotator"]
    assert Membership.objects.filter(user=user, dataset=dataset).exists()
    assert not user.is_staff


def test_it_makes_admins_staff_superusers(db):
    call_command("user_create", "root-admin", "--role", "admin", stdout=StringIO())
    user = get_user_model().objects.get(username="root-admin")
    assert user.is_staff
    assert user.is_superuser


def test_it_refuses_a_duplicate_user_and_an_unknown_dataset(alice):
    with pytest.raises(CommandError, match="already exists"):
        call_command("user_create", "alice", "--role", "lead", stdout=StringIO())
    with pytest.raises(CommandError, match="No dataset"):
        call_command("user_create", "eve", "--role", "lead", "--dataset", "nope")
    assert not get_user_model().objects.filter(username="eve").exists()


# --- The authentication backend: ModelBackend's answers, in one query --------------------


def _fresh(user):
    """The user as a new request loads it: no permission cached yet."""
    return get_user_model().objects.get(pk=user.pk)


def test_a_users_own_and_group_permissions_come_in_one_query(
    alice, bob, charlie, django_assert_num_queries
):
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Permission

    from synthaug.auth import OneQueryModelBackend

    # bob has a permission of his own besides his role's.
    bob.user_permissions.add(Permission.objects.get(codename="view_importjob"))
    admin = get_user_model().objects.create_superuser("root-user", password="x" * 20)
    inactive = get_user_model().objects.create_user("gone", password="x" * 20, is_active=False)
    inactive.groups.add(Group.objects.get(name=roles.LEAD))

    ours, django = OneQueryModelBackend(), ModelBackend()
    for user in (alice, bob, charlie, admin, inactive):
        expected = django.get_all_permissions(_fresh(user))
        user = _fresh(user)
        with django_assert_num_queries(1 if user.is_active else 0):
            assert ours.get_all_permissions(user) == expected
            # Cached on the user for the rest of the request, as ModelBackend does.
            assert ours.has_perm(user, "datasets.view_sample") == user.is_active
    # The header's role names come with the same query.
    for user, names in ((alice, ["lead"]), (bob, ["annotator"]), (admin, [])):
        user = _fresh(user)
        with django_assert_num_queries(1):
            assert user.has_perm("datasets.view_sample")
            assert ours.role_names(user) == names
    assert "datasets.view_importjob" in ours.get_all_permissions(_fresh(bob))
    assert not _fresh(bob).has_perm("datasets.import_data")
    assert _fresh(admin).has_perm("review.manage_queue")
    assert not _fresh(inactive).has_perm("datasets.view_sample")


def test_every_page_names_the_users_roles(alice_client, bob_client, client):
    from django.urls import reverse

    url = reverse("datasets:list")
    assert "alice · lead</span>" in alice_client.get(url).content.decode()
    assert "bob · annotator</span>" in bob_client.get(url).content.decode()
    assert client.get(url).status_code == 302
