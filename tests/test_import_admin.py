"""Importing samples through the Django admin (django-import-export): dry run, then confirm."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from datasets.models import ImportJob, Sample
from datasets.services.datasets import user_create
from synthaug import roles
from tests.test_import_support import HEADER, good_rows

IMPORT_URL = reverse("admin:datasets_sample_import")
PROCESS_URL = reverse("admin:datasets_sample_process_import")


@pytest.fixture
def admin_client(db) -> Client:
    user, _ = user_create(username="root", role=roles.ADMIN, password="x" * 20)
    client = Client()
    client.force_login(user)
    return client


def csv_file(rows: list[list[str]], name: str = "admin.csv") -> SimpleUploadedFile:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def dry_run(client: Client, dataset, upload, mapping: str = ""):
    return client.post(
        IMPORT_URL,
        {
            "resource": "0",
            "dataset": dataset.pk,
            "import_file": upload,
            "format": "0",
            "mapping": mapping,
        },
    )


def test_it_previews_then_imports_with_a_job_of_record(admin_client, dataset):
    upload = csv_file([["Q", "A", "Category"], ["Admin question?", "Yes", "law"]])
    mapping = "input.question = Q\nexpected.answer = A\ntags.topic = Category"

    preview = dry_run(admin_client, dataset, upload, mapping)

    assert preview.status_code == 200
    assert "confirm_form" in preview.context, preview.context.get("form").errors
    assert "Admin question?" in preview.content.decode()
    assert not Sample.objects.exists()
    assert not ImportJob.objects.exists()

    confirm = preview.context["confirm_form"]
    response = admin_client.post(PROCESS_URL, dict(confirm.initial))

    assert response.status_code == 302
    sample = Sample.objects.get()
    assert sample.input == {"question": "Admin question?"}
    assert sample.tags == {"topic": "law"}
    assert (sample.origin, sample.status, sample.source_file, sample.source_row) == (
        "real",
        "accepted",
        "admin.csv",
        1,
    )
    job = sample.import_job
    assert (job.engine, job.status, job.rows_imported, job.created_by.username) == (
        "import_export",
        "succeeded",
        1,
        "root",
    )
    assert job.mapping["input"] == {"question": "Q"}


def test_it_shows_row_errors_and_offers_no_confirmation(admin_client, dataset):
    upload = csv_file([HEADER, *good_rows(), ["x", "", "a", "", ""], ["y", "Q?", "a", "mars", ""]])

    response = dry_run(admin_client, dataset, upload)

    page = response.content.decode()
    assert response.status_code == 200
    assert "confirm_form" not in response.context
    assert "is required" in page
    assert "&#x27;mars&#x27; is not an allowed value" in page
    assert not Sample.objects.exists()
    assert not ImportJob.objects.exists()


def test_it_explains_a_file_it_cannot_read(admin_client, dataset):
    upload = SimpleUploadedFile("latin.csv", "question,answer\nCafé,x\n".encode("cp1252"))

    response = dry_run(admin_client, dataset, upload)

    assert response.status_code == 200
    assert "not UTF-8 (byte 0xE9 at offset 19" in response.content.decode()
    assert not Sample.objects.exists()


def test_it_only_offers_datasets_the_user_belongs_to(dataset, alice, charlie):
    charlie.is_staff = True
    charlie.save()
    client = Client()
    client.force_login(charlie)

    response = client.post(
        IMPORT_URL,
        {
            "resource": "0",
            "dataset": dataset.pk,
            "import_file": csv_file([HEADER, *good_rows()]),
            "format": "0",
        },
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Sample.objects.exists()


def test_its_csv_and_xlsx_exports_neutralise_formula_looking_cells():
    import tablib
    from openpyxl import load_workbook

    from datasets.importing.formats import SafeCSV, SafeXLSX

    data = tablib.Dataset(["=HYPERLINK(1)", "+1", "plain", 3], headers=["a", "b", "c", "d"])

    exported = SafeCSV().export_data(data)
    assert exported.splitlines()[1] == "'=HYPERLINK(1),'+1,plain,3"
    sheet = load_workbook(io.BytesIO(SafeXLSX().export_data(data))).active
    assert [cell.value for cell in sheet[2]] == ["'=HYPERLINK(1)", "'+1", "plain", 3]
    assert sheet["A2"].data_type == "s"
