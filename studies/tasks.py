"""Celery tasks: thin wrappers that call services with primary keys only. Services enqueue them
by name (``studies.services.queue``) and never import this module."""

from celery import shared_task
from django.conf import settings

from studies import storage
from studies.services import cleanup, ingest, rendering, series_build
from studies.services.queue import Task

STORAGE_RETRIES = 6  # a render chunk waits out a storage outage this many times (1, 2, 4 ... 32 s)


@shared_task(
    name=Task.UPLOAD_INGEST.value,
    acks_late=True,
    soft_time_limit=settings.INGEST_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT + 60,
)
def upload_ingest_task(upload_id: int) -> None:
    ingest.upload_ingest(upload_id)


@shared_task(name=Task.SERIES_RENDER_CHUNK.value, bind=True, acks_late=True, soft_time_limit=600, time_limit=660)
def series_render_chunk(self, series_id: int, version: int, plane: str, start: int, stop: int) -> None:
    try:
        rendering.render_chunk(series_id, version, plane, start, stop)
    except storage.StorageUnavailable as exc:
        if self.request.retries >= STORAGE_RETRIES or self.app.conf.task_always_eager:
            rendering.render_failed(series_id, version, f"the file storage could not be used ({exc})")
            return
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc


@shared_task(
    name=Task.SERIES_REBUILD.value,
    acks_late=True,
    soft_time_limit=settings.INGEST_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT + 60,
)
def series_rebuild_task(series_id: int) -> None:
    series_build.series_rebuild(series_id)


@shared_task(name=Task.CLEANUP.value, acks_late=True, soft_time_limit=1800, time_limit=1860)
def cleanup_task() -> dict:
    """Scheduled housekeeping (Celery beat), the same as ``manage.py cleanup_uploads``."""
    return cleanup.cleanup()
