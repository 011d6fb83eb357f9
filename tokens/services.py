"""Creating, finding and revoking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from audit.services import acting_user, record
from tokens.models import ApiToken

LAST_USED_RESOLUTION = timedelta(minutes=5)  # write last_used_at at most this often per token


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the key (shown once, never stored)."""
    key = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip()[:100] or "token", prefix=key[:8], key_hash=hash_key(key)
    )
    return token, key


def token_revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])


def tokens_revoke_all(user, *, reason: str, request=None) -> int:
    """Revoke every active token of ``user`` (a password changed or reset, an account deactivated):
    one audit event for the act, naming the user and how many tokens went; none if there were none.
    The event's user is whoever did it (``acting_user``)."""
    count = ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if count:
        record(
            AuditEvent.Action.TOKEN_REVOKE,
            request=request,
            user=acting_user(request, user),
            obj=user,
            detail={"reason": reason, "tokens": count},
        )
    return count


def token_for_key(key: str) -> ApiToken | None:
    """The active token with this key (and mark it used), or None."""
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
