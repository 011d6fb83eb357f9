"""Faults: duplicate and interrupted deliveries, time limits, giving up, housekeeping."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from studies import scratch, storage
from studies.models import Instance, Series, Study, Upload
from studies.services import cleanup, ingest, locks, series_build
from studies.services.uploads import upload_from_path
from tests.conftest import make_zip, shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


class Crash(BaseException):
    """Stands for the process dying: nothing in the ingest may catch it."""


@pytest.fixture
def queued_upload(user, tmp_path, monkeypatch):
    """An upload of a real two-series study, queued but not yet run."""
    monkeypatch.setattr("studies.services.uploads.queue_ingest", lambda upload_id: None)
    monkeypatch.setattr("studies.services.rendering.queue_series", lambda *args: None)
    folder = shared_path("mr-transfer-syntaxes-dcmqats")
    files = {f"a/{p.name}": p for p in sorted(folder.glob("*.dcm"))}
    files["b/ct.dcm"] = shared_path("compressed-clinical-nema-wg04", "TOSHIBA_J2K_SIZ0_PixRep1.dcm")
    return upload_from_path(owner=user, path=make_zip(tmp_path / "two.zip", files))


def test_interrupted_attempt_is_undone_and_the_next_stores_each_instance_once(queued_upload, monkeypatch):
    real = series_build.decode_and_queue
    calls = []

    def crash_on_second_series(plan, *args, **kwargs):
        calls.append(plan)
        if len(calls) == 2:
            raise Crash()
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(series_build, "decode_and_queue", crash_on_second_series)
    with pytest.raises(Crash):
        ingest.upload_ingest(queued_upload.pk)
    interrupted = Upload.objects.get(pk=queued_upload.pk)
    assert interrupted.status == Upload.Status.PROCESSING and interrupted.attempts == 1
    assert Instance.objects.count() == 10  # rows of both series were written before the crash

    monkeypatch.setattr(series_build, "decode_and_queue", real)
    ingest.upload_ingest(queued_upload.pk)  # the redelivery
    upload = Upload.objects.get(pk=queued_upload.pk)
    assert upload.attempts == 2 and upload.files_dicom == 10 and upload.files_skipped == 0
    assert Instance.objects.count() == 10 and Series.objects.count() == 2 and Study.objects.count() == 2
    assert all(storage.exists(i.file) for i in Instance.objects.all())


def test_a_second_delivery_while_the_first_runs_does_nothing(queued_upload):
    held, release = threading.Event(), threading.Event()

    def hold_claim():
        from django.db import connection

        with locks.claim(locks.UPLOAD, queued_upload.pk) as ok:
            assert ok
            held.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_claim)
    holder.start()
    held.wait(10)
    try:
        ingest.upload_ingest(queued_upload.pk)
        assert Upload.objects.get(pk=queued_upload.pk).status == Upload.Status.QUEUED
    finally:
        release.set()
        holder.join()
    ingest.upload_ingest(queued_upload.pk)
    assert Upload.objects.get(pk=queued_upload.pk).files_dicom == 10


def test_an_upload_interrupted_too_often_is_given_up(queued_upload):
    Upload.objects.filter(pk=queued_upload.pk).update(
        status=Upload.Status.PROCESSING, attempts=settings.TASK_MAX_WORKER_DEATHS
    )
    ingest.upload_ingest(queued_upload.pk)
    upload = Upload.objects.get(pk=queued_upload.pk)
    assert upload.status == Upload.Status.FAILED and "interrupted 2 times" in upload.error


def test_time_limit_ends_the_upload_failed_with_a_message(queued_upload, monkeypatch):
    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(series_build, "store_series", too_slow)
    ingest.upload_ingest(queued_upload.pk)
    upload = Upload.objects.get(pk=queued_upload.pk)
    assert upload.status == Upload.Status.FAILED and "longer than the limit" in upload.error
    assert not scratch.work_dir(upload.pk).exists()


def test_cleanup_removes_abandoned_files_and_ends_stuck_uploads(user, media_root, settings):
    old = time.time() - 3 * 24 * 3600
    tmp_file = scratch.tmp_dir() / "abandoned.upload"
    tmp_file.write_bytes(b"x")
    os.utime(tmp_file, (old, old))
    stuck = Upload.objects.create(owner=user, original_name="s.zip", status=Upload.Status.PROCESSING)
    Upload.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(days=1))
    failed = Upload.objects.create(
        owner=user,
        original_name="f.zip",
        status=Upload.Status.FAILED,
        file="uploads/999/upload.zip",
        finished_at=timezone.now() - timedelta(days=30),
    )
    storage.save_bytes(storage.upload_name(failed.pk), b"PK")
    zip_path = storage.local_path(storage.upload_name(failed.pk))
    Upload.objects.filter(pk=failed.pk).update(file=storage.upload_name(failed.pk))
    storage.save_bytes("originals/424242/gone.dcm", b"x")
    orphan = storage.local_path("originals/424242/gone.dcm")
    os.utime(orphan, (old, old))
    work = scratch.work_dir(stuck.pk)
    work.mkdir(parents=True)

    report = cleanup.cleanup()
    assert not tmp_file.exists() and not zip_path.exists() and not orphan.exists()
    assert report["tmp_files"] == 1 and report["failed_zips"] == 1 and report["stuck_uploads"] == 1
    stuck.refresh_from_db()
    assert stuck.status == Upload.Status.FAILED and "interrupted" in stuck.error
    assert not work.exists()  # the ended upload's extraction folder went with it


def test_cleanup_keeps_files_that_rows_refer_to(user, tmp_path, eager_celery, media_root):
    from tests.conftest import ingest_zip

    ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))
    old = time.time() - 3 * 24 * 3600
    for path in (media_root / "originals").rglob("*"):
        os.utime(path, (old, old))
    cleanup.cleanup()
    assert all(storage.exists(i.file) for i in Instance.objects.all())
    series = Series.objects.get()
    assert storage.exists(storage.image_name(series.pk, series.render_version, "stack", 0))
