"""The Celery application. Configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")

app = Celery("dicomviewer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def recover_on_start(sender=None, **kwargs):
    """The filesystem broker loses a killed worker's messages: pick up its unfinished work."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        from studies.services.cleanup import recover_interrupted_work

        recover_interrupted_work()
