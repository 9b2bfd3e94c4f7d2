"""The import pages: upload, job page (full and htmx fragment), confirm, error CSV, list."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from datasets.models import ImportJob, Sample
from datasets.services.imports import import_job_execute, import_job_validate
from datasets.tasks import import_job_execute_task, import_job_validate_task
from tests.test_import_support import (
    HEADER,
    good_rows,
    media_root,  # noqa: F401 - autouse fixture
    run_job,
    write_csv,
)

Status = ImportJob.Status


def csv_upload(rows: list[list[str]], name: str = "upload.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def upload(client: Client, dataset, rows, *, capture, **fields) -> tuple:
    data = {"kind": "samples", "format": "", "mapping": "", "file": csv_upload(rows), **fields}
    with capture(execute=False) as callbacks:
        response = client.post(reverse("datasets:import_new", args=[dataset.slug]), data)
    return response, callbacks


def job_url(job: ImportJob, name: str = "datasets:import_detail") -> str:
    return reverse(name, args=[job.dataset.slug, job.pk])


# --- Upload ----------------------------------------------------------------------------


def test_it_shows_the_upload_form_with_a_mapping_from_the_schema(alice_client, dataset):
    response = alice_client.get(reverse("datasets:import_new", args=[dataset.slug]))

    assert response.status_code == 200
    page = response.content.decode()
    assert 'enctype="multipart/form-data"' in page
    assert "# input.question = question" in page
    assert "# tags.topic = topic" in page


def test_it_creates_a_job_and_sends_the_check_after_commit(
    alice_client, dataset, django_capture_on_commit_callbacks
):
    response, callbacks = upload(
        alice_client,
        dataset,
        [HEADER, *good_rows()],
        capture=django_capture_on_commit_callbacks,
        mapping='tags.locale = "en"',
    )

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == job_url(job)
    assert (job.status, job.format, job.file_name, job.created_by.username) == (
        "pending",
        "csv",
        "upload.csv",
        "alice",
    )
    assert job.mapping == {"tags": {"locale": {"const": "en"}}}
    assert len(callbacks) == 1
    assert callbacks[0].func == import_job_validate_task.delay
    assert callbacks[0].args == (job.pk,)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"file": ""}, "This field is required."),
        ({"file": SimpleUploadedFile("notes.docx", b"x")}, "Cannot tell the format of"),
        ({"mapping": "input.question Question"}, "Line 1: write target = column"),
        ({"mapping": "tags.mood = Mood"}, "no tag dimension"),
        ({"kind": "documents"}, "Source documents come from"),
    ],
)
def test_it_shows_the_form_again_with_errors(
    alice_client, dataset, django_capture_on_commit_callbacks, fields, message
):
    response, callbacks = upload(
        alice_client,
        dataset,
        [HEADER],
        capture=django_capture_on_commit_callbacks,
        **fields,
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ImportJob.objects.exists()
    assert callbacks == []


# --- The job page ----------------------------------------------------------------------


def test_it_polls_while_the_job_runs_and_stops_when_it_is_checked(
    alice_client, dataset, django_capture_on_commit_callbacks
):
    upload(
        alice_client, dataset, [HEADER, *good_rows()], capture=django_capture_on_commit_callbacks
    )
    job = ImportJob.objects.get()

    running = alice_client.get(job_url(job), headers={"HX-Request": "true"})
    assert running.status_code == 200
    fragment = running.content.decode()
    assert fragment.lstrip().startswith("<section")
    assert "<html" not in fragment
    assert 'hx-trigger="every 1s"' in fragment
    assert "waits for a worker" in fragment

    import_job_validate(job=job)
    done = alice_client.get(job_url(job), headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in done
    assert "All 3 rows passed the checks" in done
    assert "What happens if you eat watermelon seeds?" in done
    assert f'action="{job_url(job, "datasets:import_confirm")}"' in done

    full = alice_client.get(job_url(job)).content.decode()
    assert "<html" in full
    assert 'id="import-job"' in full
    assert "hx-trigger" not in full


def test_it_escapes_everything_that_comes_from_the_file(alice_client, dataset, tmp_path, alice):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    path = write_csv(
        tmp_path / "hostile.csv", [["id", "question", "answer"], ["h1", hostile, "a"], ["", "", ""]]
    )
    path.write_text(path.read_text() + 'h3,"Bad <b>row</b>",\n')
    job = run_job(dataset, alice, path, confirm=False)

    page = alice_client.get(job_url(job)).content.decode()

    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<b>row</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Bad &lt;b&gt;row&lt;/b&gt;" in page


def test_it_confirms_and_sends_the_import_after_commit(
    alice_client, dataset, alice, tmp_path, django_capture_on_commit_callbacks
):
    job = run_job(
        dataset, alice, write_csv(tmp_path / "t.csv", [HEADER, *good_rows()]), confirm=False
    )

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(job_url(job, "datasets:import_confirm"))

    assert response.status_code == 302
    assert response["Location"] == job_url(job)
    job.refresh_from_db()
    assert (job.status, job.confirmed_by) == (Status.IMPORTING, alice)
    assert [(c.func, c.args) for c in callbacks] == [(import_job_execute_task.delay, (job.pk,))]
    assert not Sample.objects.exists()

    import_job_execute(job=job)
    page = alice_client.get(job_url(job)).content.decode()
    assert "Imported 3 samples." in page
    assert Sample.objects.count() == 3


def test_it_explains_bad_rows_and_offers_to_skip_them(alice_client, dataset, alice, tmp_path):
    rows = [HEADER, *good_rows(), ["x1", "", "no question", "", ""]]
    job = run_job(dataset, alice, write_csv(tmp_path / "t.csv", rows), confirm=False)
    page = alice_client.get(job_url(job)).content.decode()
    assert "1 of 4 rows have problems" in page
    assert "Import 3 rows and skip 1" in page
    assert '<input type="hidden" name="skip_bad_rows" value="on">' in page

    refused = alice_client.post(job_url(job, "datasets:import_confirm"), follow=True)
    assert "nothing is imported while any row is bad" in refused.content.decode()
    job.refresh_from_db()
    assert job.status == Status.VALIDATED

    alice_client.post(job_url(job, "datasets:import_confirm"), {"skip_bad_rows": "on"})
    job.refresh_from_db()
    assert (job.status, job.skip_bad_rows) == (Status.IMPORTING, True)


def test_it_shows_a_failed_file_with_what_to_do_next(alice_client, dataset, alice, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("id,question,answer\n1,Café,x\n".encode("cp1252"))
    job = run_job(dataset, alice, path)

    page = alice_client.get(job_url(job)).content.decode()

    assert "Nothing was imported." in page
    assert "not UTF-8 (byte 0xE9 at offset" in page
    assert reverse("datasets:import_new", args=[dataset.slug]) in page


def test_it_downloads_every_error_with_formulas_neutralised(
    alice_client, dataset, alice, tmp_path, settings
):
    settings.SYNTHAUG_MAX_FIELD_CHARS = 30
    rows = [["id", "question", "answer", "topic"]]
    rows += [[f"r{i}", f"=EVIL({i})" + "x" * 30, "a", ""] for i in range(250)]
    rows += [["ok", "fine", "a", "@home"]]
    job = run_job(dataset, alice, write_csv(tmp_path / "many.csv", rows), confirm=False)
    assert job.error_count == 251

    page = alice_client.get(job_url(job)).content.decode()
    assert "The first 200 of 251 problems" in page
    response = alice_client.get(job_url(job, "datasets:import_errors"))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="import-{job.pk}-errors.csv"'
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    records = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert records[0] == ["row", "field", "problem", "kind", "excerpt"]
    assert len(records) == 252
    assert records[1][:3] == ["1", "input.question", "is 38 characters long; the limit is 30"]
    assert records[1][4].startswith('{"id":"r0","question":"=EVIL(0)')
    last = records[-1]
    assert last[:2] == ["251", "tags.topic"]
    assert last[2].startswith("'@home' is not an allowed")


def test_it_neutralises_cells_that_start_like_formulas(alice_client, dataset, alice, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(
        "id,question,answer\n=SUM(A1),ragged,row,surplus\na,-5 minus 3?,x\nb,-5 MINUS 3?,y\n"
    )
    job = run_job(dataset, alice, path, confirm=False)

    body = b"".join(
        alice_client.get(job_url(job, "datasets:import_errors")).streaming_content
    ).decode()

    records = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))[1:]
    assert records == [
        [
            "1",
            "",
            "has 4 cells, header has 3 (line 2)",
            "unreadable",
            "'=SUM(A1),ragged,row,surplus",
        ],
        ["3", "input", "same content as row 2", "duplicate", "'-5 MINUS 3?"],
    ]


# --- The list --------------------------------------------------------------------------


def test_it_lists_imports_newest_first_in_a_fixed_number_of_queries(
    alice_client, dataset, alice, tmp_path
):
    url = reverse("datasets:imports", args=[dataset.slug])
    run_job(dataset, alice, write_csv(tmp_path / "first.csv", [HEADER, *good_rows()[:1]]))
    with CaptureQueriesContext(connection) as one:
        assert alice_client.get(url).status_code == 200
    for index in range(4):
        path = write_csv(tmp_path / f"more{index}.csv", [HEADER, good_rows()[1]])
        run_job(dataset, alice, path, confirm=False)
    with CaptureQueriesContext(connection) as five:
        page = alice_client.get(url).content.decode()

    assert len(five) == len(one)
    positions = [page.index(f"more{i}.csv") for i in (3, 2, 1, 0)] + [page.index("first.csv")]
    assert positions == sorted(positions)


def test_it_says_what_to_do_when_nothing_was_imported_yet(alice_client, dataset):
    page = alice_client.get(reverse("datasets:imports", args=[dataset.slug])).content.decode()
    assert "Nothing has been imported" in page
    assert reverse("datasets:import_new", args=[dataset.slug]) in page


# --- Who may do what -------------------------------------------------------------------


@pytest.fixture
def a_job(dataset, alice, tmp_path) -> ImportJob:
    return run_job(
        dataset, alice, write_csv(tmp_path / "t.csv", [HEADER, *good_rows()]), confirm=False
    )


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("datasets:import_new", "get"),
        ("datasets:import_new", "post"),
        ("datasets:imports", "get"),
        ("datasets:import_detail", "get"),
        ("datasets:import_confirm", "post"),
        ("datasets:import_errors", "get"),
    ],
)
def test_only_members_who_may_import_reach_the_import_pages(
    client, bob_client, charlie_client, a_job, name, method
):
    dataset = a_job.dataset
    args = (
        [dataset.slug]
        if name in ("datasets:import_new", "datasets:imports")
        else [
            dataset.slug,
            a_job.pk,
        ]
    )
    url = reverse(name, args=args)

    assert getattr(bob_client, method)(url).status_code == 403
    assert getattr(charlie_client, method)(url).status_code == 404
    anonymous = getattr(client, method)(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("login"))
    a_job.refresh_from_db()
    assert a_job.status == Status.VALIDATED
    assert ImportJob.objects.count() == 1


def test_a_job_of_another_dataset_is_not_found(alice_client, a_job, alice):
    from datasets.services.datasets import dataset_create

    other = dataset_create(name="Other", slug="other", created_by=alice)
    response = alice_client.get(reverse("datasets:import_detail", args=[other.slug, a_job.pk]))
    assert response.status_code == 404


def test_confirm_only_accepts_post(alice_client, a_job):
    assert alice_client.get(job_url(a_job, "datasets:import_confirm")).status_code == 405
    a_job.refresh_from_db()
    assert a_job.status == Status.VALIDATED
