"""Handing out image URLs: where visibility is decided for images, and where their access is
audited. Callers pass a series they took from ``studies.selectors`` (so the user may see it);
the URLs they get are signed for that series, its render version and a plane, and expire after
IMAGE_URL_TTL seconds (``studies.signing``). Whoever holds such a URL can fetch its images
until then, without anything being looked up: a share taken back, a token revoked or a user
deactivated stops image access within IMAGE_URL_TTL.
"""

from __future__ import annotations

import time

from django.conf import settings

from audit.services import record_images_view
from studies import signing
from studies.models import Series

_keys: dict[str, bytes] = {}


def signing_key() -> bytes:
    """The image URL key, derived from SECRET_KEY (the same on every host of a deployment)."""
    secret = settings.SECRET_KEY
    key = _keys.get(secret)
    if key is None:
        key = _keys[secret] = signing.derive_key(secret)
    return key


def plane_urls(request, series: Series, now: float | None = None, link_id: int | None = None) -> dict:
    """``{"issued", "expires": unix times, "planes": {plane: template with {index}}, "thumbnail": url}``
    for a series the user may see, and the ``images_view`` audit event (one per user and series
    per AUDIT_IMAGE_WINDOW). Through a share link (``link_id``, checked by the caller) the URLs
    live SHARE_LINK_IMAGE_URL_TTL seconds and the event names the link."""
    record_images_view(request, series, link_id=link_id)
    now = time.time() if now is None else now
    ttl = settings.IMAGE_URL_TTL if link_id is None else settings.SHARE_LINK_IMAGE_URL_TTL
    expires = signing.expiry(now, ttl)
    key = signing_key()
    planes = {
        plane: signing.template(key, series.pk, series.render_version, plane, expires) for plane in series.planes or {}
    }
    thumbnail = signing.url(key, series.pk, series.render_version, "thumbnail", expires, 0)
    return {"issued": int(now), "expires": expires, "planes": planes, "thumbnail": thumbnail}


def thumbnail_url(series_id: int, version: int, now: float | None = None, ttl: int | None = None) -> str:
    """A series' thumbnail URL, for pages that show thumbnails (their own audit event names the
    series shown)."""
    ttl = settings.IMAGE_URL_TTL if ttl is None else ttl
    expires = signing.expiry(time.time() if now is None else now, ttl)
    return signing.url(signing_key(), series_id, version, "thumbnail", expires, 0)


def image_url(request, series: Series, plane: str, index: int) -> str:
    """One image's URL (the API's plane image path redirects to it), audited like ``plane_urls``."""
    record_images_view(request, series)
    expires = signing.expiry(time.time(), settings.IMAGE_URL_TTL)
    return signing.url(signing_key(), series.pk, series.render_version, plane, expires, index)
