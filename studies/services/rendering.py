"""The write side of images: rendering every plane image of a stored series, in chunks queued
across the workers, and finishing the series (and its uploads) once all are stored.

A series' images belong to its ``render_version``; when its instances change the version goes
up, new images are written beside the old ones and the old version is removed once the new
one is complete. Chunks of a stale version do nothing. What it takes to render an image comes
from ``image_source`` (the read side), which the web uses too.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dicomviewer.metrics import FAILURES, IMAGES_RENDERED
from studies import scratch, storage
from studies.imaging.planes import STACK
from studies.imaging.render import encode_png
from studies.models import RenderedChunk, Series, Upload
from studies.services import image_source, locks
from studies.services.queue import Task, enqueue

log = logging.getLogger(__name__)

CHUNK_IMAGES = 32  # images per chunk at 512 x 512 and above
CHUNK_PIXELS = CHUNK_IMAGES * 512 * 512  # smaller images: more per chunk (a chunk costs a task and a few writes)
CHUNK_MAX_IMAGES = 2048  # but no more (1 x 1 images would make one chunk of 8 million: one task, no progress)
UPLOAD_THREADS = 4  # concurrent writes to a remote storage while the next images are encoded


# --- the queue ----------------------------------------------------------------------------


def plan_chunks(planes: dict) -> list[tuple[str, int, int]]:
    """Chunks of every plane, the middle of each plane first (where a viewer opens)."""
    per_plane = {}
    for name, info in planes.items():
        count = info["count"]
        middle = count // 2
        size = min(CHUNK_MAX_IMAGES, max(CHUNK_IMAGES, CHUNK_PIXELS // max(1, info["width"] * info["height"])))
        starts = list(range(0, count, size))
        starts.sort(key=lambda start: abs(start + size // 2 - middle))
        per_plane[name] = [(name, start, min(start + size, count)) for start in starts]
    order = [name for name in ("axial", STACK, "coronal", "sagittal") if name in per_plane]
    order += [name for name in per_plane if name not in order]
    chunks = []
    while any(per_plane[name] for name in order):
        for name in order:
            if per_plane[name]:
                chunks.append(per_plane[name].pop(0))
    return chunks


def queue_series(series_id: int, version: int) -> None:
    series = Series.objects.filter(pk=series_id, render_version=version).only("planes").first()
    if series is None:
        return
    for plane, start, stop in plan_chunks(series.planes):
        enqueue(Task.SERIES_RENDER_CHUNK, series_id, version, plane, start, stop)


def mark_rendered(series_id: int, version: int) -> None:
    """Every image of a version was stored by its ingest (a stack, rendered from its decode)."""
    counted = Series.objects.filter(pk=series_id, render_version=version).update(images_done=F("images_total"))
    if counted:
        IMAGES_RENDERED.inc(Series.objects.filter(pk=series_id).values_list("images_total", flat=True).first() or 0)
        _finish_series_if_done(series_id, version)


def render_chunk(series_id: int, version: int, plane: str, start: int, stop: int) -> None:
    """Render and store images ``start``..``stop`` of a plane. A storage that cannot be reached
    raises StorageUnavailable (the task tries again later); other errors fail the series, and so
    does a chunk whose earlier deliveries killed their worker too often."""
    if not Series.objects.filter(pk=series_id, render_version=version).exists():
        return  # deleted, or superseded by a newer version
    chunk, _created = RenderedChunk.objects.get_or_create(
        series_id=series_id, version=version, plane=plane, start=start, defaults={"done": False}
    )
    if chunk.done:
        return  # a second delivery of a chunk that was stored and counted
    if chunk.attempts >= settings.TASK_MAX_WORKER_DEATHS:
        render_failed(
            series_id,
            version,
            f"rendering images {start + 1}-{stop} of the {plane} plane stopped the worker {chunk.attempts} times "
            "(killed, or out of memory) and was given up",
        )
        return
    with locks.counted_while_running(RenderedChunk.objects.filter(pk=chunk.pk), "attempts"):
        rendered = _render_chunk(series_id, version, plane, start, stop)
    if not rendered:
        return
    with transaction.atomic():  # counted once, however many times the chunk was delivered
        first_time = RenderedChunk.objects.filter(pk=chunk.pk, done=False).update(done=True)
        updated = first_time and Series.objects.filter(pk=series_id, render_version=version).update(
            images_done=F("images_done") + (stop - start)
        )
    if updated:
        IMAGES_RENDERED.inc(stop - start)
        _finish_series_if_done(series_id, version)


def _render_chunk(series_id: int, version: int, plane: str, start: int, stop: int) -> bool:
    """True once stored; False when it failed the series."""
    try:
        try:
            _render_and_store(series_id, version, plane, start, stop)
        except FileNotFoundError:  # a cached copy trimmed away under a kept source: once more, afresh
            image_source.forget(series_id)
            _render_and_store(series_id, version, plane, start, stop)
    except storage.StorageUnavailable:
        raise
    except Exception as exc:
        log.exception("rendering series %s %s %s-%s failed", series_id, plane, start, stop)
        render_failed(series_id, version, f"rendering failed: {str(exc)[:200]}")
        return False
    return True


def render_failed(series_id: int, version: int, reason: str) -> None:
    FAILURES.labels("render").inc()
    Series.objects.filter(pk=series_id, render_version=version).update(
        render_status=Series.Render.FAILED, render_error=reason
    )
    finish_uploads_if_rendered(series_id=series_id)


def _render_and_store(series_id: int, version: int, plane: str, start: int, stop: int) -> None:
    source = image_source.source(series_id, version)
    names = [storage.image_name(series_id, version, plane, index) for index in range(start, stop)]
    if storage.is_local():
        for index, name in zip(range(start, stop), names, strict=True):
            storage.save_bytes(name, encode_png(source.display(plane, index)))
        return
    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        pending = [
            pool.submit(storage.save_bytes, name, encode_png(source.display(plane, index)))
            for index, name in zip(range(start, stop), names, strict=True)
        ]
        for future in pending:
            future.result()


def _finish_series_if_done(series_id: int, version: int) -> None:
    finished = Series.objects.filter(
        pk=series_id,
        render_version=version,
        render_status=Series.Render.RENDERING,
        images_done__gte=F("images_total"),
    ).update(render_status=Series.Render.DONE, rebuild_attempts=0)
    if finished:
        RenderedChunk.objects.filter(series_id=series_id, version__lte=version).delete()
        storage.save_bytes(storage.complete_name(series_id, version), b"")
        storage.remove_old_versions(series_id, version)
        # this worker's copies of the series' files are not needed any more
        scratch.forget(f"derived/{series_id}")
        scratch.forget(f"originals/{series_id}")
        finish_uploads_if_rendered(series_id=series_id)


def finish_uploads_if_rendered(*, upload_ids: list[int] | None = None, series_id: int | None = None) -> None:
    """Mark uploads done (or failed) once every series they touched is rendered."""
    uploads = Upload.objects.filter(status=Upload.Status.PROCESSING, stage="rendering")
    if upload_ids is not None:
        uploads = uploads.filter(pk__in=upload_ids)
    if series_id is not None:
        uploads = uploads.filter(series=series_id)
    for upload in uploads:
        states = list(upload.series.values_list("render_status", "series_number", "render_error"))
        if any(state in (Series.Render.PENDING, Series.Render.RENDERING) for state, _, _ in states):
            continue
        failed = [
            f"series {number if number is not None else '?'}: {error}"
            for state, number, error in states
            if state == Series.Render.FAILED
        ]
        status = Upload.Status.FAILED if failed else Upload.Status.DONE
        error = (
            ("The files were stored, but some images could not be rendered (" + "; ".join(failed) + ").")
            if failed
            else ""
        )
        changed = Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
            status=status,
            progress=100,
            stage=status,
            error=error,
            finished_at=timezone.now(),
            file="" if status == Upload.Status.DONE else upload.file,
        )
        if changed:
            if status == Upload.Status.DONE:
                storage.delete_prefix(storage.upload_prefix(upload.pk))
            audit_ingest_end(upload, status, error)


def audit_ingest_end(upload: Upload, status: str, error: str) -> None:
    from audit.models import AuditEvent
    from audit.services import record

    failed = status == Upload.Status.FAILED
    record(
        AuditEvent.Action.INGEST_FAILED if failed else AuditEvent.Action.INGEST_FINISHED,
        user=upload.owner,
        obj=upload,
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        detail={
            "files_dicom": upload.files_dicom,
            "files_skipped": upload.files_skipped,
            "studies": list(upload.studies.values_list("pk", flat=True)),
        },
    )
