"""Frame and bulk data fetches are many small requests (a viewer loads every frame): one DOWNLOAD
event per user and series per AUDIT_IMAGE_WINDOW seconds, like image views."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record

_recent: dict[tuple[int, int], float] = {}
_lock = threading.Lock()


def record_frames_download(request, series) -> None:
    user = request.user
    if not user.is_authenticated:
        return
    window = settings.AUDIT_IMAGE_WINDOW
    key, now = (user.pk, series.pk), time.monotonic()
    with _lock:
        last = _recent.get(key)
        if last is not None and now - last < window:
            return
        _recent[key] = now
        if len(_recent) > 10_000:
            _recent.clear()
    since = timezone.now() - timedelta(seconds=window)
    exists = AuditEvent.objects.filter(
        user=user,
        action=AuditEvent.Action.DOWNLOAD,
        object_type="series",
        object_id=str(series.pk),
        time__gte=since,
        detail__what="frames",
    ).exists()
    if not exists:
        record(
            AuditEvent.Action.DOWNLOAD,
            request=request,
            obj=series,
            detail={"study_id": series.study_id, "what": "frames", "dicomweb": True},
        )
