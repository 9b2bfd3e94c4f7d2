"""Import staging: progress and failure fields on ImportJob, a kind on ImportRowError, and
the two staging tables of the streamed import path.

The staging tables are UNLOGGED on PostgreSQL: they hold checked rows only between an
import's validation and its confirmation, and everything in them can be rebuilt from the
uploaded file, so writing them to the WAL would only slow the COPY down. After a crash
PostgreSQL empties them; an import caught in between is validated again. SQLite has no
such table kind and uses an ordinary one.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


STAGING_TABLES = ["datasets_importstagedrow", "datasets_importstageddocument"]


def _set_logged(logged: bool):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in STAGING_TABLES:
            schema_editor.execute(f"ALTER TABLE {table} SET {'LOGGED' if logged else 'UNLOGGED'}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0002_postgres_search_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="bytes_processed",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="importjob",
            name="confirmed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importjob",
            name="confirmed_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="importjob",
            name="documents_reused",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="importjob",
            name="failure_reason",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="importrowerror",
            name="kind",
            field=models.CharField(
                choices=[
                    ("unreadable", "Row could not be read"),
                    ("invalid", "Row breaks a rule"),
                    ("duplicate", "Duplicate"),
                ],
                default="invalid",
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="ImportStagedDocument",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row", models.IntegerField()),
                ("title", models.CharField(max_length=500)),
                ("text", models.TextField()),
                ("origin", models.CharField(blank=True, max_length=500)),
                ("external_id", models.CharField(blank=True, max_length=200)),
                ("content_hash", models.CharField(max_length=64)),
                ("tags", models.JSONField(default=dict)),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="datasets.importjob",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["job", "row"], name="importstageddoc_job_row")],
            },
        ),
        migrations.CreateModel(
            name="ImportStagedRow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("row", models.IntegerField()),
                ("external_id", models.CharField(blank=True, max_length=200)),
                ("input", models.JSONField()),
                ("expected", models.JSONField(default=dict)),
                ("text", models.TextField()),
                ("tags", models.JSONField(default=dict)),
                ("difficulty", models.CharField(blank=True, max_length=12)),
                ("content_hash", models.CharField(max_length=64)),
                ("source_group", models.CharField(max_length=80)),
                ("document_hash", models.CharField(blank=True, max_length=64)),
                ("source_passage", models.TextField(blank=True)),
                ("passage_start", models.IntegerField(blank=True, null=True)),
                ("passage_end", models.IntegerField(blank=True, null=True)),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="datasets.importjob",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["job", "row"], name="importstagedrow_job_row")],
            },
        ),
        migrations.RunPython(_set_logged(False), _set_logged(True)),
    ]
