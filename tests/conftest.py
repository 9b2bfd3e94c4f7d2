"""Shared fixtures: named personas and a dataset they meet in.

- alice is a lead and a member of the dataset (she built it);
- bob is an annotator and a member;
- charlie is a lead but not a member (an outsider to this dataset);
- anonymous is not logged in.
"""

from __future__ import annotations

import pytest
from django.test import Client

from datasets.models import Dataset
from datasets.services.datasets import dataset_create, membership_add, user_create
from synthaug import roles
from tests.llm_server import llm_server_fixture  # noqa: F401  (the `llm_server` fixture)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(db):
    user, _ = user_create(username="alice", role=roles.LEAD, password=PASSWORD)
    return user


@pytest.fixture
def bob(db):
    user, _ = user_create(username="bob", role=roles.ANNOTATOR, password=PASSWORD)
    return user


@pytest.fixture
def charlie(db):
    user, _ = user_create(username="charlie", role=roles.LEAD, password=PASSWORD)
    return user


@pytest.fixture
def dataset(alice, bob) -> Dataset:
    dataset = dataset_create(
        name="Truthful QA",
        slug="truthful",
        created_by=alice,
        tag_dimensions={"topic": ["health", "law", "history"], "locale": []},
    )
    membership_add(dataset=dataset, user=bob)
    return dataset


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    return _client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return _client_for(bob)


@pytest.fixture
def charlie_client(charlie) -> Client:
    return _client_for(charlie)
