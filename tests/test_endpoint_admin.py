"""The admin of model endpoints ("Test connection": one real call over HTTP to the scripted
OpenAI-compatible server) and of prompt templates (used versions are read-only inline)."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import NoReverseMatch, clear_url_caches, reverse
from django.utils import timezone

from datasets.admin_generation import PromptVersionForm
from datasets.models import ModelEndpoint, PromptTemplate, PromptVersion
from datasets.services.generation import offline_endpoints
from tests.conftest import PASSWORD


@pytest.fixture
def changelist() -> str:
    """The endpoint changelist, registering the generation admin if admin.py does not yet."""
    import datasets.admin_generation  # noqa: F401

    try:
        return reverse("admin:datasets_modelendpoint_changelist")
    except NoReverseMatch:
        # The URLconf was built before the registration: build it again.
        importlib.reload(importlib.import_module(settings.ROOT_URLCONF))
        clear_url_caches()
        return reverse("admin:datasets_modelendpoint_changelist")


@pytest.fixture
def root_client(db) -> Client:
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.force_login(admin)
    return client


def run_action(client: Client, changelist: str, *endpoints: ModelEndpoint) -> list[str]:
    response = client.post(
        changelist,
        {"action": "test_connection", "_selected_action": [e.pk for e in endpoints]},
        follow=True,
    )
    assert response.status_code == 200
    return [f"{m.level_tag}: {m.message}" for m in response.context["messages"]]


def scripted_endpoint(llm_server, **fields) -> ModelEndpoint:
    values = {
        "name": "scripted",
        "base_url": llm_server.base_url,
        "model": "scripted-model",
        "family": "tests",
        "timeout_seconds": 5,
        **fields,
    }
    return ModelEndpoint.objects.create(**values)


def test_it_tests_a_connection_with_one_real_call(root_client, changelist, llm_server, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "sk-test-123")
    endpoint = scripted_endpoint(llm_server, api_key_env="SCRIPTED_KEY")

    messages = run_action(root_client, changelist, endpoint)

    assert len(messages) == 1
    assert messages[0].startswith("success: scripted: connected. Model scripted-model")
    assert " ms, " in messages[0]
    assert "input +" in messages[0]
    assert "output tokens" in messages[0]
    requests = llm_server.chat_requests
    assert len(requests) == 1
    assert requests[0].headers["authorization"] == "Bearer sk-test-123"
    assert requests[0].body["model"] == "scripted-model"
    assert "sk-test-123" not in messages[0]


def test_it_reports_a_refused_key(root_client, changelist, llm_server):
    endpoint = scripted_endpoint(llm_server)
    llm_server.status(401, message="Incorrect API key provided")

    messages = run_action(root_client, changelist, endpoint)

    assert len(messages) == 1
    assert messages[0].startswith("error: scripted: failed, auth (HTTP 401)")
    assert "Incorrect API key provided" in messages[0]
    assert len(llm_server.chat_requests) == 1  # no retries on a permanent error


def test_it_does_not_call_without_the_key_it_names(
    root_client, changelist, llm_server, monkeypatch
):
    monkeypatch.delenv("MISSING_KEY", raising=False)
    endpoint = scripted_endpoint(llm_server, api_key_env="MISSING_KEY")

    messages = run_action(root_client, changelist, endpoint)

    assert messages[0].startswith("error: scripted: not called")
    assert "MISSING_KEY" in messages[0]
    assert llm_server.requests == []


def test_it_answers_for_offline_endpoints_without_a_call(root_client, changelist, llm_server):
    generator, judge = offline_endpoints()
    working = scripted_endpoint(llm_server)

    messages = run_action(root_client, changelist, generator, judge, working)

    assert f"success: {generator.name}: built-in, no network: nothing to test." in messages
    assert f"success: {judge.name}: built-in, no network: nothing to test." in messages
    assert len(llm_server.chat_requests) == 1  # only the real endpoint was called


def test_it_keeps_the_admin_to_staff(changelist, alice_client):
    response = alice_client.get(changelist)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


# --- prompt templates ------------------------------------------------------------------------


@pytest.fixture
def template(db) -> PromptTemplate:
    return PromptTemplate.objects.create(name="law-paraphrase", purpose="paraphrase")


def test_it_shows_used_versions_read_only(root_client, changelist, template):
    PromptVersion.objects.create(
        template=template, number=1, user="Frozen {question}", used_at=timezone.now()
    )
    PromptVersion.objects.create(template=template, number=2, user="Open {question}")

    page = root_client.get(
        reverse("admin:datasets_prompttemplate_change", args=[template.pk])
    ).content.decode()

    frozen = page[: page.index("Frozen {question}")]
    open_ = page[: page.index("Open {question}")]
    assert frozen[frozen.rindex("<textarea") :].find("disabled") != -1
    assert open_[open_.rindex("<textarea") :].find("disabled") == -1


def test_it_ignores_edits_posted_for_a_used_version(template):
    used = PromptVersion.objects.create(
        template=template, number=1, user="Frozen {question}", used_at=timezone.now()
    )

    form = PromptVersionForm(
        data={"system": "", "user": "Changed {question}", "output_schema": "{}", "notes": ""},
        instance=used,
    )

    assert form.is_valid()
    assert not form.has_changed(), form.changed_data
    assert form.cleaned_data["user"] == "Frozen {question}"


def test_it_adds_an_inline_version_as_the_next_number(root_client, changelist, template):
    PromptVersion.objects.create(
        template=template, number=1, user="Frozen {question}", used_at=timezone.now()
    )
    prefix = "versions"
    data = {
        "name": template.name,
        "purpose": template.purpose,
        "description": "",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-INITIAL_FORMS": "1",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-id": str(template.versions.get().pk),
        f"{prefix}-0-template": str(template.pk),
        f"{prefix}-0-user": "Tampered {question}",
        f"{prefix}-0-output_schema": "{}",
        f"{prefix}-1-template": str(template.pk),
        f"{prefix}-1-system": "",
        f"{prefix}-1-user": "New wording {question}",
        f"{prefix}-1-output_schema": "{}",
        f"{prefix}-1-notes": "Second try.",
    }

    response = root_client.post(
        reverse("admin:datasets_prompttemplate_change", args=[template.pk]), data
    )

    assert response.status_code == 302
    versions = list(template.versions.order_by("number").values_list("number", "user"))
    assert versions == [(1, "Frozen {question}"), (2, "New wording {question}")]
    assert template.versions.get(number=2).created_by.username == "root"
