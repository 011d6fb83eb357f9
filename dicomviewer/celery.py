"""The Celery application. Configuration comes from Django settings (CELERY_* names)."""

import os
import resource
import threading
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")

app = Celery("dicomviewer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

SCRATCH_SWEEP_S = 30.0
_stopping = threading.Event()


@worker_ready.connect
def recover_on_start(sender=None, **kwargs):
    """The filesystem broker loses a killed worker's messages: pick up its unfinished work. And
    keep this host's scratch to what running work needs."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        from studies.services.cleanup import recover_interrupted_work

        recover_interrupted_work()
    threading.Thread(target=_sweep_scratch, name="scratch-sweep", daemon=True).start()
    if settings.METRICS_PORT:  # a worker host's samples, for Prometheus (dicomviewer/metrics.py)
        from prometheus_client import start_http_server

        from dicomviewer.metrics import registry

        start_http_server(settings.METRICS_PORT, registry=registry())


@worker_process_init.connect
def limit_child_memory(**kwargs):
    """Cap the data (heap and anonymous mappings, RLIMIT_DATA) of each worker child: a decode that
    would need more gets a MemoryError, which fails that file or series with a reason, instead of
    the kernel killing the worker or something else on the host. Memory-mapped volumes are files
    and not counted."""
    from django.conf import settings

    limit_memory(settings.WORKER_MEMORY_LIMIT_MB)


def limit_memory(megabytes: int) -> None:
    if megabytes <= 0:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    wanted = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


@worker_shutdown.connect
def stop_sweeping(sender=None, **kwargs):
    _stopping.set()


def _sweep_scratch():
    """Every SCRATCH_SWEEP_S: drop cached copies of series that no worker renders any more."""
    from django.db import close_old_connections, connection

    from studies.services.cleanup import forget_finished_scratch

    while not _stopping.wait(SCRATCH_SWEEP_S):
        try:
            close_old_connections()
            forget_finished_scratch()
        except Exception:  # the next round tries again
            time.sleep(1)
        finally:
            connection.close()


_task_log_ids: dict = {}


@task_prerun.connect
def log_with_task_id(task_id=None, **kwargs):
    """A worker's log lines carry the id of the task they belong to (as a web's, its request's)."""
    from dicomviewer.front import request_id

    _task_log_ids[task_id] = request_id.set(task_id or "-")


@task_postrun.connect
def log_without_task_id(task_id=None, **kwargs):
    from dicomviewer.front import request_id

    token = _task_log_ids.pop(task_id, None)
    if token is not None:
        request_id.reset(token)


@task_postrun.connect
def release_image_sources(**kwargs):
    """A worker child keeps no image source from one task to the next. A volume's source maps its
    volume.npy, and the pages a render touched stay resident in every child that kept it: kept
    for the last eight series (as the web keeps them, for images at other windows), each child's
    memory grew by a whole volume per series ingested (250 MB for a 500-slice CT) until
    WORKER_MAX_MEMORY_PER_CHILD_MB replaced it, and a volume deleted meanwhile kept its disk space.
    A chunk builds its source again from source.json (and a map of the file): 1.1 ms for a
    500-slice CT, 0.4 ms for a 100-image stack, where rendering a chunk of 32 of the CT's images
    takes 72 ms (axial) to 144-178 ms (coronal) (`bench/sources.py`, 2026-12-01)."""
    from studies.services import image_source

    image_source.clear()
