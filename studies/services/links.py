"""Share links: the owner of a study makes an expiring, revocable link that opens it read-only
without an account. Only a SHA-256 hash of the link's secret (``secrets.token_urlsafe(32)``, 256
bits) is stored, so the URL is shown once, when the link is made. Every act is audited here:
``link_create``, ``link_revoke`` and ``link_use`` (one per link page opened) with the link id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from studies import selectors
from studies.models import ShareLink, Study

LABEL_MAX = 100
TOKEN_MAX = 100  # the secret is 43 characters; anything longer is no token of ours


class LinkError(Exception):
    """The link cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Resolution:
    """What a token or link id names: the link and its state, or no link (``state`` is None)."""

    link: ShareLink | None
    state: ShareLink.State | None

    @property
    def active(self) -> bool:
        return self.state == ShareLink.State.ACTIVE

    @property
    def reason(self) -> str:
        if self.state == ShareLink.State.REVOKED:
            return "This link was revoked by the person who shared it."
        if self.state == ShareLink.State.EXPIRED:
            return "This link has expired."
        return "No such link."


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def max_hours() -> int:
    return settings.SHARE_LINK_MAX_DAYS * 24


def link_create(
    *, study: Study, by, expires_in_hours: int | None = None, deidentified: bool = False, label: str = "", request=None
) -> tuple[ShareLink, str]:
    """A new link and its secret token (the only time it exists outside the URL)."""
    if not selectors.can_share_study(by, study):
        raise PermissionError("Only the study's owner can make links to it.")
    hours = settings.SHARE_LINK_DEFAULT_HOURS if expires_in_hours is None else expires_in_hours
    if not 1 <= hours <= max_hours():
        raise LinkError(f"expires_in_hours must be between 1 and {max_hours()} ({settings.SHARE_LINK_MAX_DAYS} days).")
    label = (label or "").strip()
    if len(label) > LABEL_MAX:
        raise LinkError(f"The label can be at most {LABEL_MAX} characters long.")
    token = secrets.token_urlsafe(32)
    link = ShareLink.objects.create(
        study=study,
        created_by=by,
        token_hash=token_hash(token),
        label=label,
        deidentified=deidentified,
        expires_at=timezone.now() + timedelta(hours=hours),
    )
    detail = {"link_id": link.pk, "hours": hours, "deidentified": deidentified}
    record(AuditEvent.Action.LINK_CREATE, request=request, user=by, obj=study, detail=detail)
    return link, token


def link_revoke(*, link: ShareLink, by, request=None) -> None:
    """Revoke a link (its pages and endpoints refuse at once; see README for image URLs). A link
    revoked already stays as it was, with no second event."""
    if not selectors.can_share_study(by, link.study):
        raise PermissionError("Only the study's owner can revoke its links.")
    revoked = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    link.refresh_from_db(fields=["revoked_at"])
    if revoked:
        record(AuditEvent.Action.LINK_REVOKE, request=request, user=by, obj=link.study, detail={"link_id": link.pk})


def _resolution(link: ShareLink | None) -> Resolution:
    if link is None:
        return Resolution(None, None)
    return Resolution(link, link.state_at(timezone.now()))


def link_resolve(token: str) -> Resolution:
    """The link a URL's token names (None for a token that names none)."""
    if not token or len(token) > TOKEN_MAX:
        return Resolution(None, None)
    return _resolution(ShareLink.objects.select_related("study").filter(token_hash=token_hash(token)).first())


def link_check(link_id: int) -> Resolution:
    """The link ``link_id`` as it is now: asked again on every request made through a link, so a
    revoked or expired link stops working at once."""
    return _resolution(ShareLink.objects.select_related("study").filter(pk=link_id).first())


def link_use(*, link: ShareLink, request, series=None) -> None:
    """A link page was opened (its study page, or the viewer of one of its series): count it and
    write the ``link_use`` event, naming the series when there is one."""
    ShareLink.objects.filter(pk=link.pk).update(use_count=F("use_count") + 1, last_used_at=timezone.now())
    record(AuditEvent.Action.LINK_USE, request=request, obj=series or link.study, detail={"link_id": link.pk})
