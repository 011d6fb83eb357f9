"""The audit trail: append-only events, each with its DICOM audit event code (PS3.15 A.5).

Events are never changed or deleted through the app: saving an existing event, deleting one, or
bulk updates raise. Only the retention command removes old events (``AuditEvent.prune``). On
PostgreSQL a trigger enforces the same in the database itself.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    pass


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events cannot be changed")

    def delete(self):
        raise AppendOnlyError("audit events cannot be deleted (see the prune_audit command)")


class AuditEvent(models.Model):
    """One audited action: who, from where, what, on which object, with what outcome."""

    class Action(models.TextChoices):
        LOGIN = "login", "Login"
        LOGOUT = "logout", "Logout"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOCKOUT = "lockout", "Account locked out"
        UPLOAD_RECEIVED = "upload_received", "Upload received"
        INGEST_FINISHED = "ingest_finished", "Ingest finished"
        INGEST_FAILED = "ingest_failed", "Ingest failed"
        STUDY_LIST = "study_list", "Study list"
        STUDY_SEARCH = "study_search", "Study search"
        STUDY_VIEW = "study_view", "Study viewed"
        SERIES_VIEW = "series_view", "Series viewed"
        IMAGES_VIEW = "images_view", "Images viewed"
        DOWNLOAD = "download", "Download"
        STUDY_DELETE = "study_delete", "Study deleted"
        SERIES_DELETE = "series_delete", "Series deleted"
        SHARE_ADD = "share_add", "Share added"
        SHARE_REMOVE = "share_remove", "Share removed"
        TOKEN_CREATE = "token_create", "API token created"
        TOKEN_REVOKE = "token_revoke", "API token revoked"
        PASSWORD_CHANGE = "password_change", "Password changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        ADMIN_CHANGE = "admin_change", "Admin change"
        AUDIT_READ = "audit_read", "Audit log read"
        AUDIT_EXPORT = "audit_export", "Audit log exported"
        ANNOTATION_CREATE = "annotation_create", "Measurement created"
        ANNOTATION_DELETE = "annotation_delete", "Measurement deleted"
        ANNOTATION_EXPORT = "annotation_export", "Measurements exported (DICOM SR)"
        DICOM_REJECTED = "dicom_rejected", "DICOM association rejected"
        DICOM_STORE = "dicom_store", "Instances received (C-STORE)"
        DICOM_FIND = "dicom_find", "DICOM query (C-FIND)"
        DICOM_SEND = "dicom_send", "Instances sent (C-GET / C-MOVE)"
        DEID_EXPORT = "deid_export", "De-identified export"
        DEID_COPY = "deid_copy", "Anonymised copy made"
        LINK_CREATE = "link_create", "Share link created"
        LINK_REVOKE = "link_revoke", "Share link revoked"
        LINK_USE = "link_use", "Share link used"

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"

    time = models.DateTimeField(default=timezone.now, db_index=True)
    # No database constraint: deleting a user must not touch (update) their events.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    event_code = models.CharField("EventID code (DCM)", max_length=16)
    event_action = models.CharField("EventActionCode", max_length=1)  # C R U D E
    object_type = models.CharField(max_length=32, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_uid = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    detail = models.JSONField(default=dict, blank=True)  # never patient names or other PHI

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["user", "action", "-time"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self):
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("audit events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events cannot be deleted (see the prune_audit command)")

    @classmethod
    def prune(cls, before) -> int:
        """Remove events older than ``before`` (retention); the only way events ever go."""
        from django.db import connection, transaction

        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL dicomviewer.audit_prune = 'on'")
            queryset = models.QuerySet(model=cls).filter(time__lt=before)
            return queryset._raw_delete(queryset.db)
