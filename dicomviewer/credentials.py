"""One place that notices a user's credentials change, whatever changed them (the password change
and reset pages, the admin, ``changepassword``, the shell, the API): a password set, or an account
deactivated. It sends ``credentials_changed`` once the row is saved; the token service revokes
every API token of that user and the audit trail records the password change or reset.

Saves that touch neither (sign-in's ``last_login``, a hasher upgrading the stored hash of the
same password, fixtures) send nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal, receiver

from audit.middleware import current_request

# user, reason ("password_change", "password_reset" or "deactivated"), request (or None)
credentials_changed = Signal()

PASSWORD_CHANGE = "password_change"
PASSWORD_RESET = "password_reset"
DEACTIVATED = "deactivated"
RESET_VIEW = "password_reset_confirm"  # django.contrib.auth.urls' name of the mailed link's form
WATCHED = {"password", "is_active"}


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="credentials-note")
def note(sender, instance, raw=False, update_fields=None, **kwargs):
    instance._credentials_reason = None
    if raw or instance.pk is None or (update_fields is not None and not WATCHED & set(update_fields)):
        return
    # set_password() keeps the raw password until the save (no query needed then); a hasher
    # upgrade at sign-in clears it first (same password, new hash); set_unusable_password() only
    # writes an unusable hash
    password_set = getattr(instance, "_password", None) is not None
    if not password_set:
        old = sender._base_manager.filter(pk=instance.pk).values("password", "is_active").first()
        if old is None:
            return
        password_set = old["password"] != instance.password and not instance.has_usable_password()
    if password_set:
        request = current_request()
        match = getattr(request, "resolver_match", None)
        instance._credentials_reason = PASSWORD_RESET if match and match.url_name == RESET_VIEW else PASSWORD_CHANGE
    elif old["is_active"] and not instance.is_active:
        instance._credentials_reason = DEACTIVATED


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="credentials-announce")
def announce(sender, instance, created=False, raw=False, **kwargs):
    reason = getattr(instance, "_credentials_reason", None)
    if reason is None:
        return
    instance._credentials_reason = None
    credentials_changed.send(sender=sender, user=instance, reason=reason, request=current_request())
