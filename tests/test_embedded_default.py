"""The embedded default: SQLite and the file broker, with nothing configured.

These run the real commands in subprocesses with a clean environment (no DATABASE_URL, no
CELERY_BROKER_URL), the way `make run` does on a fresh machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.workers import celery_worker

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG"}
    }
    env["SYNTHAUG_VAR_DIR"] = str(var_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _python(var_dir: Path, *argv: str, timeout: float) -> str:
    """``python *argv`` from the repo on the embedded default under ``var_dir``; its stdout."""
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=_env(var_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _run_script(var_dir: Path, script: str, *args: str, timeout: float = 300) -> dict:
    """Run ``python -c script``; the JSON object its last line prints ({} if nothing)."""
    out = _python(var_dir, "-c", script, *args, timeout=timeout).strip()
    return json.loads(out.splitlines()[-1]) if out else {}


def _manage(var_dir: Path, *args: str, timeout: float = 180) -> str:
    return _python(var_dir, "manage.py", *args, timeout=timeout)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    var_dir = tmp_path_factory.mktemp("embedded")
    _manage(var_dir, "migrate", "--noinput", "-v0")
    return var_dir


def test_it_migrates_and_loads_the_demo_on_sqlite(embedded):
    assert (embedded / "db.sqlite3").exists()
    out = _manage(embedded, "demo")
    assert "2002 real samples, 240 source documents" in out
    assert "skipped 5 rows" in out
    first = re.search(r"lead\s+demo-lead\s+(\S+)", out).group(1)
    # Running it again keeps the data and gives new passwords (none are defaults).
    again = _manage(embedded, "demo")
    assert "2002 real samples, 240 source documents" in again
    assert re.search(r"lead\s+demo-lead\s+(\S+)", again).group(1) != first


WORKER_SCRIPT = """
import os, sys, time, django
os.environ["DJANGO_SETTINGS_MODULE"] = "synthaug.settings"
django.setup()
from pathlib import Path
from django.db import transaction
from datasets.models import Dataset, ImportJob
from datasets.services.imports import import_job_confirm, import_job_create

dataset = Dataset.objects.get(slug="demo")
path = Path(sys.argv[1])
with transaction.atomic():
    job = import_job_create(
        dataset=dataset, created_by=None, file=path, file_name=path.name,
        mapping={"input": {"question": "q"}, "expected": {"answer": "a"},
                 "tags": {"task": {"const": "truthfulness"}}},
    )

def wait(status):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == status:
            return
        if job.status == ImportJob.Status.FAILED:
            sys.exit("failed: " + job.file_error + job.failure_reason)
        time.sleep(0.3)
    sys.exit("timed out in " + job.status)

wait(ImportJob.Status.VALIDATED)
with transaction.atomic():
    import_job_confirm(job=job, user=None)
wait(ImportJob.Status.SUCCEEDED)
print("imported", job.rows_imported, job.engine)
"""


def test_it_runs_an_import_through_a_worker_on_the_file_broker(embedded, tmp_path):
    _manage(embedded, "demo")
    data = tmp_path / "few.jsonl"
    data.write_text(
        '{"q": "Is the embedded broker real?", "a": "yes"}\n'
        '{"q": "Does SQLite take the rows?", "a": "yes"}\n',
        encoding="utf-8",
    )
    with celery_worker(env=_env(embedded)) as worker:
        result = subprocess.run(
            [sys.executable, "-c", WORKER_SCRIPT, str(data)],
            cwd=ROOT,
            env=_env(embedded),
            capture_output=True,
            text=True,
            timeout=180,
        )
        log = worker.log_text()
    assert result.returncode == 0, result.stdout + result.stderr + log[-3000:]
    assert "imported 2 streamed" in result.stdout
    assert "filesystem" in log  # the worker really used the embedded broker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_it_serves_the_login_page_with_a_strict_csp(embedded):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**_env(embedded), "DEBUG": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        body = response.read().decode()
        csp = response.headers["Content-Security-Policy"]
        assert response.status == 200
        assert 'name="username"' in body
        assert "script-src 'self' 'nonce-" in csp
        assert "unsafe-inline" not in csp
        # Anything else needs a login.
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/datasets/", timeout=5)
        assert page.geturl().endswith("/login/?next=/datasets/")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
