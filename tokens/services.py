"""Creating, finding and revoking API tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

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


_marked_used: dict[int, float] = {}


def token_mark_used(token_id: int) -> None:
    """Record that the token was used (for the image fast path, which reads no token row): at most
    one write per token per LAST_USED_RESOLUTION and process."""
    now = time.monotonic()
    last = _marked_used.get(token_id)
    if last is not None and now - last < LAST_USED_RESOLUTION.total_seconds():
        return
    _marked_used[token_id] = now
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=timezone.now() - LAST_USED_RESOLUTION)
    ApiToken.objects.filter(stale, pk=token_id).update(last_used_at=timezone.now())


def token_for_key(key: str) -> ApiToken | None:
    """The active token with this key (and mark it used), or None."""
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
