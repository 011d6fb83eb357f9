"""Receiving an upload: keep the file (streamed to scratch by Django) in the storage and queue the ingest."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db import transaction
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from studies import storage
from studies.models import Upload
from studies.services.queue import Task, enqueue

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


class InvalidUpload(Exception):
    """The request's file is not acceptable; the message says why."""


class SizeLimitHandler(FileUploadHandler):
    """Stops reading a request body as soon as it passes MAX_UPLOAD_BYTES."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > settings.MAX_UPLOAD_BYTES + 1024 * 1024:
            # Announced too large: answer "no fields, no files" without reading the body (Django's
            # parser does not catch StopUpload raised here), and the view answers 413.
            self.request.upload_too_large = True
            return QueryDict(), MultiValueDict()
        return None

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None


def check_zip(uploaded: UploadedFile) -> None:
    uploaded.seek(0)
    magic = uploaded.read(4)
    uploaded.seek(0)
    if magic not in ZIP_MAGIC:
        raise InvalidUpload("The file is not a ZIP archive. Upload a .zip file of DICOM images.")
    if not zipfile.is_zipfile(uploaded):
        raise InvalidUpload("The file is not a valid ZIP archive: it may be truncated or corrupt.")
    uploaded.seek(0)


def upload_create(*, owner, uploaded: UploadedFile) -> Upload:
    """Store the uploaded ZIP and queue its ingest (after the transaction commits)."""
    check_zip(uploaded)
    name = os.path.basename(uploaded.name or "upload.zip")[:255]
    with transaction.atomic():
        upload = Upload.objects.create(owner=owner, original_name=name, size_bytes=uploaded.size)
        upload.file = storage.upload_name(upload.pk)
        if hasattr(uploaded, "temporary_file_path"):  # moved into a local storage folder, else copied
            storage.save_file(upload.file, Path(uploaded.temporary_file_path()), move=True)
        else:
            uploaded.seek(0)
            storage.save_bytes(upload.file, uploaded.read())
        upload.save(update_fields=["file"])
        transaction.on_commit(lambda: queue_ingest(upload.pk))
    return upload


def upload_from_path(*, owner, path, name: str | None = None) -> Upload:
    """Queue the ingest of a ZIP already on this machine (management commands)."""
    with open(path, "rb") as fp:
        uploaded = UploadedFile(fp, name=name or os.path.basename(path), size=os.path.getsize(path))
        return upload_create(owner=owner, uploaded=uploaded)


def queue_ingest(upload_id: int) -> None:
    enqueue(Task.UPLOAD_INGEST, upload_id)


class UploadBusy(Exception):
    """The upload cannot be re-run now; the message says why."""


def upload_rerun(upload: Upload) -> None:
    """Run an upload again: its whole ingest if the ZIP is still kept (a failed upload), else
    a rebuild of every series it stored, from the stored originals."""
    if upload.status in (Upload.Status.QUEUED, Upload.Status.PROCESSING):
        raise UploadBusy("This upload is still being processed.")
    series_ids = list(upload.series.values_list("pk", flat=True))
    if upload.file and storage.exists(upload.file):
        from studies.services.series_build import undo_upload

        undo_upload(upload)  # whatever a failed attempt stored goes; the new run stores it again
        Upload.objects.filter(pk=upload.pk).update(
            attempts=0,
            status=Upload.Status.QUEUED,
            stage="queued",
            progress=0,
            error="",
            files_total=0,
            files_dicom=0,
            files_skipped=0,
            skipped=[],
            finished_at=None,
        )
        transaction.on_commit(lambda: queue_ingest(upload.pk))
        return
    if not series_ids:
        raise UploadBusy("Nothing to re-run: the archive was discarded and none of its images were stored.")
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING, stage="rendering", progress=50, error="", finished_at=None
    )
    for series_id in series_ids:
        transaction.on_commit(lambda series_id=series_id: enqueue(Task.SERIES_REBUILD, series_id))
