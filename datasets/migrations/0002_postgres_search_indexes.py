"""PostgreSQL-only indexes: trigram search on sample text and GIN on tags.

Django's icontains on PostgreSQL compiles to ``UPPER(text) LIKE UPPER(%s)``, so the trigram
index is on ``UPPER(text)``; tag filters use ``tags @> {...}``, served by jsonb_path_ops.
SQLite (the embedded default) has neither and does without.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS sample_text_trgm ON datasets_sample "
    "USING gin (UPPER(text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS sample_tags_gin ON datasets_sample "
    "USING gin (tags jsonb_path_ops)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS sample_tags_gin",
    "DROP INDEX IF EXISTS sample_text_trgm",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for sql in statements:
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("datasets", "0001_initial")]
    operations = [migrations.RunPython(_run(FORWARD), _run(BACKWARD))]
