"""The uploaded file of an import job: stored under MEDIA_ROOT/imports/<random>/ in chunks,
opened for reading by the engines, removed once the job is over (its name, size and
SHA-256 stay on the job).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.text import get_valid_filename

from datasets.importing.readers import FileError
from datasets.models import ImportJob


def _chunks(file: Any) -> Iterator[bytes]:
    if isinstance(file, str | Path):
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk
        return
    if hasattr(file, "chunks"):
        yield from file.chunks()
        return
    with contextlib.suppress(AttributeError, OSError):
        file.seek(0)
    while chunk := file.read(1 << 20):
        yield chunk


def upload_store(file: Any, file_name: str) -> tuple[str, int, str]:
    """Copy the upload under MEDIA_ROOT/imports/<random>/ in chunks: (path, size, sha256).

    Raises ValidationError (and keeps nothing) when it is larger than allowed.
    """
    folder = Path("imports") / secrets.token_hex(16)
    name = get_valid_filename(PurePath(file_name).name) or "upload"
    relative = folder / name
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    limit = settings.SYNTHAUG_MAX_UPLOAD_BYTES
    try:
        with open(target, "wb") as out:
            for chunk in _chunks(file):
                size += len(chunk)
                if size > limit:
                    raise ValidationError(
                        f"The file is larger than {limit:,} bytes, the most an import accepts."
                    )
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise
    return str(relative), size, digest.hexdigest()


def upload_path(job: ImportJob) -> Path:
    return Path(settings.MEDIA_ROOT) / job.file_path


@contextlib.contextmanager
def upload_open(job: ImportJob) -> Iterator[BinaryIO]:
    try:
        fh = open(upload_path(job), "rb")  # noqa: SIM115 - closed below, after the generator
    except OSError:
        raise FileError("The uploaded file is no longer on the server; upload it again.") from None
    with fh:
        yield fh


def upload_discard(relative: str) -> None:
    """Remove a stored upload by its relative path (a job that could not be created)."""
    shutil.rmtree((Path(settings.MEDIA_ROOT) / relative).parent, ignore_errors=True)


def upload_remove(job: ImportJob) -> None:
    """Drop the uploaded copy once the job is over (its name, size and hash stay)."""
    if job.file_path:
        shutil.rmtree(upload_path(job).parent, ignore_errors=True)
