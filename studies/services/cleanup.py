"""Housekeeping: abandoned files and interrupted work. Run by ``manage.py cleanup_uploads``
(from cron in production); ``recover_interrupted_work`` also runs when a worker starts."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from studies import scratch, storage
from studies.models import Instance, RenderedChunk, Series, Upload
from studies.services import locks
from studies.services.queue import Task, enqueue

log = logging.getLogger(__name__)
TMP_MAX_AGE_S = 24 * 3600
ORPHAN_MIN_AGE_S = 3600  # a file this young may belong to an ingest that is writing its rows


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _files(folder: Path):
    return (p for p in folder.iterdir()) if folder.is_dir() else iter(())


def cleanup(now=None) -> dict:
    """Remove what nothing refers to any more, and end uploads that can no longer finish."""
    now = now or timezone.now()
    report = {
        "tmp_files": 0,
        "work_dirs": 0,
        "failed_zips": 0,
        "stuck_uploads": 0,
        "orphan_originals": 0,
        "orphan_derived": 0,
        "scratch_series": 0,
    }
    for path in _files(scratch.tmp_dir()):
        if path.is_file() and _older_than(path, TMP_MAX_AGE_S):
            path.unlink(missing_ok=True)
            report["tmp_files"] += 1
    report["stuck_uploads"] = _end_stuck_uploads(now)
    running = set(Upload.objects.filter(status=Upload.Status.PROCESSING).values_list("pk", flat=True))
    for path in _files(scratch.root() / "work"):
        if path.name.isdigit() and int(path.name) not in running:
            scratch.remove_tree(path)
            report["work_dirs"] += 1
    keep_until = now - timedelta(days=settings.FAILED_UPLOAD_RETENTION_DAYS)
    for upload in Upload.objects.filter(status=Upload.Status.FAILED, finished_at__lt=keep_until).exclude(file=""):
        storage.delete_prefix(storage.upload_prefix(upload.pk))
        Upload.objects.filter(pk=upload.pk).update(file="")
        report["failed_zips"] += 1
    report["orphan_originals"], report["orphan_derived"] = _orphans()
    report["scratch_series"] = forget_finished_scratch()
    scratch.trim(settings.SCRATCH_CACHE_BYTES)
    return report


def forget_finished_scratch() -> int:
    """Drop this host's cached copies (volumes, originals) of series no worker is rendering: what
    a worker fetched for its render chunks is scratch, kept only while the series renders."""
    cached = scratch.cached_series()
    if not cached:
        return 0
    rendering = set(
        Series.objects.filter(pk__in=cached, render_status=Series.Render.RENDERING).values_list("pk", flat=True)
    )
    done = cached - rendering
    for series_id in done:
        scratch.forget(f"derived/{series_id}")
        scratch.forget(f"originals/{series_id}")
    return len(done)


def _end_stuck_uploads(now) -> int:
    """Uploads still queued or processing long after any ingest could have ended."""
    deadline = now - timedelta(seconds=settings.INGEST_TIME_LIMIT + 900)
    ended = 0
    stuck = Upload.objects.filter(status__in=[Upload.Status.QUEUED, Upload.Status.PROCESSING], created_at__lt=deadline)
    for upload in stuck:
        with locks.claim(locks.UPLOAD, upload.pk) as free:
            if not free:
                continue  # an ingest is running it right now
            ended += Upload.objects.filter(pk=upload.pk, status=upload.status).update(
                status=Upload.Status.FAILED,
                stage="failed",
                finished_at=now,
                error="The ingest was interrupted and did not finish; run the upload again.",
            )
    return ended


def _orphans() -> tuple[int, int]:
    """Stored files no row refers to (an outage kept a delete from finishing, say), once old
    enough not to belong to an ingest that is still writing its rows."""
    originals = derived = 0
    series_ids = set(Series.objects.values_list("pk", flat=True))
    oldest = time.time() - ORPHAN_MIN_AGE_S
    for folder in storage.default().subfolders("originals/"):
        if not folder.isdigit():
            continue
        files = list(storage.iter_names(f"originals/{folder}/"))
        known = (
            set()
            if int(folder) not in series_ids
            else set(Instance.objects.filter(series_id=int(folder)).values_list("file", flat=True))
        )
        stale = [name for name, modified in files if name not in known and modified < oldest]
        storage.delete_many(stale)
        originals += len(stale)
    for folder in storage.default().subfolders("derived/"):
        if folder.isdigit() and int(folder) not in series_ids:
            files = list(storage.iter_names(f"derived/{folder}/"))
            if all(modified < oldest for _name, modified in files):
                storage.delete_prefix(f"derived/{folder}/")
                derived += 1
    return originals, derived


def recover_interrupted_work() -> int:
    """Re-queue ingests that a stopped worker left half done. Only needed with the filesystem
    broker, which (unlike Redis) loses the messages of a worker killed mid-task."""
    requeued = 0
    unfinished = Upload.objects.filter(status__in=[Upload.Status.QUEUED, Upload.Status.PROCESSING])
    for upload in unfinished.exclude(stage="rendering"):
        with locks.claim(locks.UPLOAD, upload.pk) as free:
            if free:  # a duplicate delivery is harmless: the claim and the status stop it
                enqueue(Task.UPLOAD_INGEST, upload.pk)
                requeued += 1
    rendering = list(Series.objects.filter(render_status=Series.Render.RENDERING).values_list("pk", flat=True))
    # A chunk of the current version that was under way died with the worker: a death of its
    # series' rendering, counted where the rebuild looks (TASK_MAX_WORKER_DEATHS), so that a chunk
    # that kills its worker is not rebuilt and rendered again at every start.
    under_way = RenderedChunk.objects.filter(
        series_id__in=rendering, version=F("series__render_version"), done=False, attempts__gt=0
    )
    died = set(under_way.values_list("series_id", flat=True))
    if died:
        Series.objects.filter(pk__in=died).update(rebuild_attempts=F("rebuild_attempts") + 1)
        under_way.update(attempts=0)
    for series_id in rendering:
        log.info("re-rendering series %s left unfinished", series_id)
        enqueue(Task.SERIES_REBUILD, series_id)
        requeued += 1
    return requeued
