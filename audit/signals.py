"""Authentication and admin events, from Django's own signals."""

from axes.signals import user_locked_out
from django.contrib.admin.models import LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from audit.middleware import current_request
from audit.models import AuditEvent
from audit.services import acting_user, record
from dicomviewer.credentials import PASSWORD_CHANGE, PASSWORD_RESET, credentials_changed

A = AuditEvent.Action


@receiver(user_logged_in)
def on_login(sender, request, user, **kwargs):
    record(A.LOGIN, request=request, user=user)


@receiver(user_logged_out)
def on_logout(sender, request, user, **kwargs):
    if user is not None:
        record(A.LOGOUT, request=request, user=user)


@receiver(user_login_failed)
def on_login_failed(sender, credentials, request=None, **kwargs):
    record(
        A.LOGIN_FAILED,
        request=request,
        user=None,
        username=str(credentials.get("username", ""))[:150],
        outcome=AuditEvent.Outcome.FAILURE,
    )


@receiver(post_save, sender=LogEntry)
def on_admin_change(sender, instance, created, **kwargs):
    if not created:
        return
    flag = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "changed")
    record(
        A.ADMIN_CHANGE,
        request=current_request(),  # the client's address and user agent
        user=instance.user,
        object_type=instance.content_type.model if instance.content_type else "",
        object_id=str(instance.object_id or "")[:64],
        detail={"action": flag},
    )


@receiver(user_locked_out)
def on_lockout(sender, request, username, ip_address, **kwargs):
    record(
        A.LOCKOUT, request=request, user=None, username=str(username or "")[:150], outcome=AuditEvent.Outcome.FAILURE
    )


@receiver(credentials_changed, dispatch_uid="audit-password-change")
def on_password_set(sender, user, reason, request=None, **kwargs):
    """A password changed (by its user, an administrator, a command) or reset through the mailed
    link; the event names the account, and its user is whoever did it (the account itself when
    nobody is signed in: a reset, a command)."""
    if reason not in (PASSWORD_CHANGE, PASSWORD_RESET):
        return
    action = A.PASSWORD_RESET if reason == PASSWORD_RESET else A.PASSWORD_CHANGE
    record(action, request=request, user=acting_user(request, user), obj=user)
