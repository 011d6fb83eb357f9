"""Signed, expiring image URLs: checking one needs no database, only the key.

A URL names a series, its render version, a plane and an expiry time; the signature is an HMAC
(SHA-256, 128 bits kept) of those with a key derived from SECRET_KEY. Expiry times are rounded
down to a time bucket of half the lifetime, so every URL handed out within one bucket is the same
URL (browsers' caches keep hitting) and none lives longer than the lifetime.

    /images/<series>/<version>/<plane>/<expires>/<signature>/<index>.png[?wc=&ww=][&mode=&slab=]

``thumbnail`` is a plane name here too (index 0). Plain Python: no Django.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

PREFIX = "/images/"
PLANES = ("axial", "coronal", "sagittal", "acquired", "stack", "thumbnail")
PATH = re.compile(
    r"^/images/([0-9]{1,18})/([0-9]{1,9})/(axial|coronal|sagittal|acquired|stack|thumbnail)/([0-9]{1,12})/"
    r"([A-Za-z0-9_-]{22})/([0-9]{1,9})\.png$"
)


def derive_key(secret_key: str) -> bytes:
    """The image URL key: SECRET_KEY never signs anything else with it directly."""
    return hashlib.sha256(b"dicomviewer image urls\x00" + secret_key.encode()).digest()


def expiry(now: float, ttl: int) -> int:
    """The expiry handed out at ``now``: within ``ttl`` seconds, the same for a bucket of ttl/2."""
    bucket = max(1, ttl // 2)
    return int((now + ttl) // bucket * bucket)


def signature(key: bytes, series_id: int, version: int, plane: str, expires: int) -> str:
    message = f"{series_id}/{version}/{plane}/{expires}".encode()
    digest = hmac.digest(key, message, "sha256")[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def template(key: bytes, series_id: int, version: int, plane: str, expires: int) -> str:
    """The URL of every image of a plane, with ``{index}`` where the image number goes."""
    sig = signature(key, series_id, version, plane, expires)
    return f"{PREFIX}{series_id}/{version}/{plane}/{expires}/{sig}/{{index}}.png"


def url(key: bytes, series_id: int, version: int, plane: str, expires: int, index: int) -> str:
    return template(key, series_id, version, plane, expires).replace("{index}", str(index))


@dataclass(frozen=True)
class ImageRef:
    series_id: int
    version: int
    plane: str
    expires: int
    index: int


class BadSignature(Exception):
    """The URL is not one this server signed, or it expired; the message says which."""


def verify(key: bytes, path: str, now: float) -> ImageRef:
    match = PATH.match(path)
    if match is None:
        raise BadSignature("not an image URL")
    series_id, version, plane, expires, sig, index = match.groups()
    expected = signature(key, int(series_id), int(version), plane, int(expires))
    if not hmac.compare_digest(expected, sig):
        raise BadSignature("bad signature")
    if int(expires) < now:
        raise BadSignature("expired")
    return ImageRef(int(series_id), int(version), plane, int(expires), int(index))
