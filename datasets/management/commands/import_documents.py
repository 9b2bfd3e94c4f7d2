"""manage.py import_documents DATASET FILE: source documents from text, Markdown, JSON
Lines or SQuAD-style JSON (whose questions also become real samples).
"""

from __future__ import annotations

from datasets.importing.cli import ImportCommand
from datasets.models import ImportJob


class Command(ImportCommand):
    help = "Import source documents (text, Markdown, JSON Lines, SQuAD-style JSON) into a dataset."
    kind = ImportJob.Kind.DOCUMENTS
    formats = ["text", "markdown", "jsonl", "squad"]

    def _success(self, job: ImportJob, where: str, elapsed: float) -> str:
        parts = [f"{job.documents_imported:,} new source documents"]
        if job.documents_reused:
            parts.append(f"{job.documents_reused:,} already in the dataset and reused")
        if job.format == ImportJob.Format.SQUAD:
            parts.append(f"{job.rows_imported:,} questions imported as samples")
        if job.rows_skipped:
            parts.append(f"{job.rows_skipped:,} bad rows skipped")
        return f"Imported from {where}: {', '.join(parts)} in {elapsed:.1f} s."
