"""Scheduled audit work (Celery beat: CELERY_BEAT_SCHEDULE in settings)."""

from celery import shared_task

from audit.services import audit_prune


@shared_task(name="audit.prune", acks_late=True)
def audit_prune_task() -> int:
    return audit_prune()
