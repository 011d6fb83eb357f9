"""Writing audit events. Views call ``record``; image fetches call ``record_images_view``.

Each action maps to its DICOM audit event (PS3.15 A.5.3, DCM codes) and EventActionCode.
Details never carry patient names: objects are named by id and UID only, searches by the
names of the filters used, not their values.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent

A = AuditEvent.Action
# action -> (EventID code, EventActionCode)
EVENT_CODES = {
    A.LOGIN: ("110114", "E"),  # User Authentication
    A.LOGOUT: ("110114", "E"),
    A.LOGIN_FAILED: ("110114", "E"),
    A.LOCKOUT: ("110113", "E"),  # Security Alert
    A.UPLOAD_RECEIVED: ("110107", "C"),  # Import
    A.INGEST_FINISHED: ("110107", "C"),
    A.INGEST_FAILED: ("110107", "C"),
    A.STUDY_LIST: ("110112", "E"),  # Query
    A.STUDY_SEARCH: ("110112", "E"),
    A.STUDY_VIEW: ("110103", "R"),  # DICOM Instances Accessed
    A.SERIES_VIEW: ("110103", "R"),
    A.IMAGES_VIEW: ("110103", "R"),
    A.DOWNLOAD: ("110106", "R"),  # Export
    A.STUDY_DELETE: ("110105", "D"),  # DICOM Study Deleted
    A.SERIES_DELETE: ("110105", "D"),
    A.SHARE_ADD: ("110113", "U"),  # Security Alert (permissions changed)
    A.SHARE_REMOVE: ("110113", "U"),
    A.TOKEN_CREATE: ("110113", "C"),
    A.TOKEN_REVOKE: ("110113", "D"),
    A.PASSWORD_CHANGE: ("110113", "U"),  # Security Alert (user security attributes changed)
    A.PASSWORD_RESET: ("110113", "U"),
    A.ADMIN_CHANGE: ("110113", "U"),
    A.AUDIT_READ: ("110101", "R"),  # Audit Log Used
    A.AUDIT_EXPORT: ("110101", "R"),
    A.ANNOTATION_CREATE: ("110103", "C"),  # DICOM Instances Accessed (a measurement made on them)
    A.ANNOTATION_DELETE: ("110103", "D"),
    A.ANNOTATION_EXPORT: ("110106", "R"),  # Export
    A.DICOM_REJECTED: ("110113", "E"),  # Security Alert (unknown or refused calling AE)
    A.DICOM_STORE: ("110104", "C"),  # DICOM Instances Transferred (received)
    A.DICOM_FIND: ("110112", "E"),  # Query
    A.DICOM_SEND: ("110104", "R"),  # DICOM Instances Transferred (sent)
    A.DEID_EXPORT: ("110106", "R"),  # Export
    A.DEID_COPY: ("110106", "R"),
    A.LINK_CREATE: ("110113", "C"),  # Security Alert (access granted)
    A.LINK_REVOKE: ("110113", "D"),
    A.LINK_USE: ("110103", "R"),  # DICOM Instances Accessed
}

_recent_image_views: dict[tuple[int, int], float] = {}
_recent_lock = threading.Lock()


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, which dicomviewer.front has set from trusted proxies'
    X-Forwarded-For (the same address the rate limits and django-axes use)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def acting_user(request, fallback):
    """Who did an act on an account: the request's signed-in user, else the account itself (a
    reset through the mailed link, a management command)."""
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else fallback


def describe(obj) -> dict:
    """object_type / object_id / object_uid of a model instance, without patient data."""
    if obj is None:
        return {}
    uid = ""
    for field in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"):
        uid = getattr(obj, field, "") or uid
    return {"object_type": obj._meta.model_name, "object_id": str(obj.pk), "object_uid": uid}


def record(
    action: str,
    *,
    request=None,
    user=None,
    obj=None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    username: str | None = None,
    detail: dict | None = None,
    **fields,
) -> AuditEvent:
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not user.is_authenticated:
        user = None
    code, event_action = EVENT_CODES[action]
    values = {**describe(obj), **fields}
    return AuditEvent.objects.create(
        user=user,
        username=(username if username is not None else (user.get_username() if user else ""))[:150],
        ip=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:512],
        action=action,
        event_code=code,
        event_action=event_action,
        outcome=outcome,
        detail=detail or {},
        **values,
    )


def record_images_view(request, series, link_id: int | None = None) -> None:
    """One event per user and series per AUDIT_IMAGE_WINDOW seconds, however many images load.
    Through a share link (``link_id``): one per link and series, with the link id in detail."""
    user = request.user
    if not user.is_authenticated and link_id is None:
        return
    window = settings.AUDIT_IMAGE_WINDOW
    key = (f"link{link_id}" if link_id is not None else user.pk, series.pk)
    now = time.monotonic()
    with _recent_lock:
        last = _recent_image_views.get(key)
        if last is not None and now - last < window:
            return
        _recent_image_views[key] = now
        if len(_recent_image_views) > 10_000:
            _recent_image_views.clear()
    since = timezone.now() - timedelta(seconds=window)
    # another process of the server may have written it already
    recent = AuditEvent.objects.filter(
        action=A.IMAGES_VIEW, object_type="series", object_id=str(series.pk), time__gte=since
    )
    recent = recent.filter(detail__link_id=link_id) if link_id is not None else recent.filter(user=user)
    if not recent.exists():
        detail = {"study_id": series.study_id, **({"link_id": link_id} if link_id is not None else {})}
        record(A.IMAGES_VIEW, request=request, obj=series, detail=detail)


def audit_prune(days: int | None = None) -> int:
    """Delete events older than ``days`` (AUDIT_RETENTION_DAYS; 0 keeps everything). Run daily by
    the scheduler (Celery beat) and by ``manage.py prune_audit``."""
    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    return AuditEvent.prune(timezone.now() - timedelta(days=days))
