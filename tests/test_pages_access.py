"""Who may open which browsing page: the permission matrix, page by page.

alice (lead, member) and bob (annotator, member) read everything in the dataset; only leads
create datasets; charlie (lead, not a member) gets 404s, as if the dataset did not exist;
anonymous users are sent to the login page; superusers see every dataset.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from datasets.models import Batch, Dataset, Sample, SourceDocument
from tests.conftest import PASSWORD
from tests.factories import make_sample


@pytest.fixture
def urls(dataset: Dataset) -> dict[str, str]:
    document = SourceDocument.objects.create(
        dataset=dataset, title="A passage", text="Paris is in France.", content_hash="doc-1"
    )
    real = make_sample(dataset, text="Where is Paris?")
    batch = Batch.objects.create(dataset=dataset, method=Batch.Method.GROUNDED, requested_count=1)
    synthetic = make_sample(
        dataset,
        text="Which country is Paris in?",
        origin=Sample.Origin.SYNTHETIC,
        batch=batch,
        seq=0,
        parent=real,
        source_document=document,
    )
    slug = dataset.slug
    return {
        "detail": reverse("datasets:detail", args=[slug]),
        "sample_real": reverse("datasets:sample", args=[slug, real.pk]),
        "sample_synthetic": reverse("datasets:sample", args=[slug, synthetic.pk]),
        "documents": reverse("datasets:documents", args=[slug]),
        "document": reverse("datasets:document", args=[slug, document.pk]),
    }


DATASET_PAGES = ["detail", "sample_real", "sample_synthetic", "documents", "document"]


@pytest.mark.parametrize("page", DATASET_PAGES)
@pytest.mark.parametrize(
    ("persona", "status"),
    [("alice_client", 200), ("bob_client", 200), ("charlie_client", 404)],
)
def test_it_lets_members_read_and_hides_the_dataset_from_others(
    request, urls, page, persona, status
):
    client: Client = request.getfixturevalue(persona)

    assert client.get(urls[page]).status_code == status


@pytest.mark.parametrize("page", DATASET_PAGES)
def test_it_sends_anonymous_users_to_log_in(urls, page):
    response = Client().get(urls[page])

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={urls[page]}"


@pytest.mark.parametrize("page", DATASET_PAGES)
def test_it_shows_superusers_every_dataset(urls, page):
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.force_login(admin)

    assert client.get(urls[page]).status_code == 200


def test_it_404s_a_sample_asked_for_under_another_dataset(alice_client, urls, alice):
    from datasets.services.datasets import dataset_create

    other = dataset_create(name="Other", slug="other", created_by=alice)
    pk = urls["sample_real"].rstrip("/").rsplit("/", 1)[-1]

    response = alice_client.get(reverse("datasets:sample", args=[other.slug, pk]))

    assert response.status_code == 404


def test_it_404s_a_dataset_that_does_not_exist(alice_client, db):
    assert alice_client.get(reverse("datasets:detail", args=["nope"])).status_code == 404


@pytest.mark.parametrize(
    ("persona", "status"),
    [("alice_client", 200), ("bob_client", 403), ("charlie_client", 200)],
)
def test_it_lets_only_leads_open_the_new_dataset_form(request, dataset, persona, status):
    client: Client = request.getfixturevalue(persona)

    assert client.get(reverse("datasets:new")).status_code == status


def test_it_refuses_a_dataset_post_from_an_annotator(bob_client, dataset):
    response = bob_client.post(
        reverse("datasets:new"), {"name": "Sneaky", "slug": "sneaky", "schema": "{}"}
    )

    assert response.status_code == 403
    assert not Dataset.objects.filter(slug="sneaky").exists()


def test_it_sends_anonymous_users_from_the_list_and_the_form_to_log_in(db):
    for url in (reverse("datasets:list"), reverse("datasets:new")):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("persona", "sees"),
    [("alice_client", True), ("bob_client", True), ("charlie_client", False)],
)
def test_it_lists_only_the_datasets_one_is_a_member_of(request, dataset, persona, sees):
    client: Client = request.getfixturevalue(persona)

    response = client.get(reverse("datasets:list"))

    assert response.status_code == 200
    assert (dataset.get_absolute_url() in response.content.decode()) is sees


def test_it_serves_the_login_page_to_anonymous_users(db):
    # LoginRequiredMiddleware must not redirect the login page to itself.
    response = Client().get(reverse("login"))

    assert response.status_code == 200
    assert 'name="username"' in response.content.decode()


def test_it_logs_in_through_the_form_and_lands_on_the_datasets(alice, dataset):
    client = Client()

    response = client.post(
        reverse("login"), {"username": "alice", "password": PASSWORD}, follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("datasets:list")
    assert dataset.get_absolute_url() in response.content.decode()


def test_it_refuses_to_write_through_the_read_pages(alice_client, urls):
    for page in DATASET_PAGES:
        assert alice_client.post(urls[page]).status_code == 405


def test_it_lists_every_dataset_for_a_superuser(dataset):
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.force_login(admin)

    html = client.get(reverse("datasets:list")).content.decode()

    assert dataset.get_absolute_url() in html
