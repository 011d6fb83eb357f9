"""Bulk loads from this machine (management commands, STOW-RS): stage a ZIP in the scratch folder
and hand it to ``upload_create``, which moves it into the storage and queues the ingest."""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile

from studies import scratch
from studies.models import Upload
from studies.services.uploads import upload_create, upload_from_path


class StagedFile(UploadedFile):
    """A file already in the scratch folder: ``upload_create`` moves it instead of copying it."""

    def __init__(self, path: Path, name: str):
        super().__init__(open(path, "rb"), name=name, content_type="application/zip", size=path.stat().st_size)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def upload_staged(*, owner, path: Path, name: str) -> Upload:
    staged = StagedFile(path, name)
    try:
        return upload_create(owner=owner, uploaded=staged)
    finally:
        staged.close()
        Path(path).unlink(missing_ok=True)


def zip_folder(folder: Path) -> Path:
    """Every file under ``folder`` in a new ZIP (stored, not compressed) in the scratch folder."""
    fd, name = tempfile.mkstemp(dir=scratch.tmp_dir(), prefix="import-", suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(name, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and not path.is_symlink():
                    archive.write(path, str(path.relative_to(folder)))
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def upload_from_disk(*, owner, path: Path) -> Upload:
    """A ZIP file (copied) or a folder (zipped) on this machine, through the upload pipeline."""
    path = Path(path)
    if path.is_dir():
        return upload_staged(owner=owner, path=zip_folder(path), name=f"{path.name or 'folder'}.zip")
    return upload_from_path(owner=owner, path=path)


def upload_wait(
    upload: Upload, *, timeout: float, on_change: Callable[[Upload], None] | None = None, poll: float = 0.5
) -> Upload:
    """Poll until the upload is done or failed (or ``timeout`` seconds pass); report each change."""
    from studies.services.ingest import upload_progress

    deadline = time.monotonic() + timeout
    last = None
    while True:
        upload.refresh_from_db()
        state = (upload.status, upload.stage, upload_progress(upload))
        if state != last and on_change is not None:
            on_change(upload)
        last = state
        if upload.is_finished or time.monotonic() >= deadline:
            return upload
        time.sleep(poll)
