"""Work for the workers, enqueued by task name: services never import ``studies.tasks`` (the tasks
import the services). Arguments are primary keys and numbers only, never patient data."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    UPLOAD_INGEST = "studies.upload_ingest"
    SERIES_RENDER_CHUNK = "studies.series_render_chunk"
    SERIES_REBUILD = "studies.series_rebuild"
    CLEANUP = "studies.cleanup"


def enqueue(task: Task, *args: int | str) -> None:
    from dicomviewer.celery import app

    if app.conf.task_always_eager:  # tests that run the work in-process
        if str(task) not in app.tasks:
            app.loader.import_default_modules()  # Celery's autodiscovery, as a worker does at start
        app.tasks[str(task)].apply_async(args=args)
    else:
        app.send_task(str(task), args=args)
