from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from synthaug import settings as project_settings
from synthaug.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def test_it_generates_a_secret_key_once_and_keeps_it_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = project_settings.secret_key_load(tmp_path)
    second = project_settings.secret_key_load(tmp_path)
    assert first == second
    assert len(first) >= 50
    mode = stat.S_IMODE((tmp_path / "secret_key").stat().st_mode)
    assert mode == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secret_key")]


def test_it_prefers_the_secret_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert project_settings.secret_key_load(tmp_path) == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), ("off", False), ("", False)]
)
def test_it_reads_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert project_settings.env_bool("SOME_FLAG", False) is expected


def test_it_refuses_a_malformed_boolean_or_integer(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        project_settings.env_bool("SOME_FLAG")
    monkeypatch.setenv("SOME_INT", "ten")
    with pytest.raises(ImproperlyConfigured, match="SOME_INT"):
        project_settings.env_int("SOME_INT", 1)


def test_it_enforces_a_strict_csp_without_inline_script():
    csp = settings.SECURE_CSP
    assert "'unsafe-inline'" not in csp["script-src"]
    assert "'unsafe-eval'" not in csp["script-src"]
    assert "'unsafe-inline'" not in csp["style-src"]
    assert csp["object-src"] == ["'none'"]
    assert not getattr(settings, "SECURE_CSP_REPORT_ONLY", None)


def test_it_configures_celery_for_redelivery_after_a_crash():
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_always_eager is False
    # Tasks are DjangoTask, so callers can enqueue on commit.
    assert hasattr(celery_app.Task, "delay_on_commit")


def test_it_keeps_the_redis_visibility_timeout_above_the_longest_task():
    # The suite runs with CELERY_BROKER_URL pointing at Redis.
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout > settings.CELERY_TASK_TIME_LIMIT * 2


def _settings_in_subprocess(env: dict[str, str], expression: str) -> str:
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='synthaug.settings'; "
        "django.setup(); from django.conf import settings as s; print(" + expression + ")"
    )
    clean = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY"}
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_it_defaults_to_the_embedded_services_with_debug_off(tmp_path):
    out = _settings_in_subprocess(
        {"SYNTHAUG_VAR_DIR": str(tmp_path)},
        "s.DEBUG, s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
        "s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']",
    )
    debug, engine, name, broker, folder = out.split(" ")
    assert debug == "False"
    assert engine == "django.db.backends.sqlite3"
    assert name == str(tmp_path / "db.sqlite3")
    assert broker == "filesystem://"
    assert folder.startswith(str(tmp_path))
    assert (tmp_path / "secret_key").exists()


def test_it_uses_postgres_and_redis_from_the_environment(tmp_path):
    out = _settings_in_subprocess(
        {
            "SYNTHAUG_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://app@db.internal:5432/synthaug",
            "CELERY_BROKER_URL": "redis://cache.internal:6379/0",
        },
        "s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL",
    )
    assert out.split(" ") == [
        "django.db.backends.postgresql",
        "db.internal",
        "redis://cache.internal:6379/0",
    ]
