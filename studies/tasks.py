"""Celery tasks: thin wrappers that call services with primary keys only."""

from celery import shared_task
from django.conf import settings

from studies.services import ingest, rendering, series_build


@shared_task(
    name="studies.upload_ingest",
    acks_late=True,
    soft_time_limit=settings.INGEST_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT + 60,
)
def upload_ingest_task(upload_id: int) -> None:
    ingest.upload_ingest(upload_id)


@shared_task(name="studies.series_render_chunk", acks_late=True, soft_time_limit=600, time_limit=660)
def series_render_chunk(series_id: int, version: int, plane: str, start: int, stop: int) -> None:
    rendering.render_chunk(series_id, version, plane, start, stop)


@shared_task(
    name="studies.series_rebuild",
    acks_late=True,
    soft_time_limit=settings.INGEST_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT + 60,
)
def series_rebuild_task(series_id: int) -> None:
    series_build.series_rebuild(series_id)
