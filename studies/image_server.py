"""The one path by which image bytes reach clients: signed, expiring URLs (``studies.signing``),
checked with the key alone. Visibility was decided, and audited, when the URL was handed out
(``studies.services.image_access``); here nothing touches the database.

    GET /images/<series>/<version>/<plane>/<expires>/<signature>/<index>.png[?wc=&ww=][&mode=&slab=]

- At the default window, a stored image: from a local storage folder, the file (or behind nginx
  an X-Accel-Redirect, and nginx sends it); from a bucket, a redirect to a presigned URL of the
  object, valid as long as the signed URL.
- At another window, a slab (``mode=mip|minip|avg&slab=<mm>``, a volume plane's only), or an
  image no worker has stored yet: rendered here from the version's source (``image_source``),
  cached on this host. A slab the plane cannot give: 400. 503 + Retry-After while the series is not
  decoded yet, or while the storage cannot be reached.
- Tampered, foreign or expired: 403, before anything else is looked at.

It runs in front of Django (``SignedImages``, WSGI) so that an image costs no more than a file
server's answer; the same function answers through Django's URLconf (tests, runserver).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse

from dicomviewer.metrics import FAILURES, observe_request
from studies import signing, storage
from studies.imaging.render import Window
from studies.imaging.slabs import Slab, SlabError, parse_slab
from studies.services import image_source
from studies.services.image_access import signing_key

log = logging.getLogger(__name__)
IMAGE_CSP = "default-src 'none'"  # an image is no document: it may load nothing, run nothing
RETRY_AFTER_S = 1
_complete: dict[tuple[int, int], bool] = {}  # versions known to have every image stored (S3)
_complete_lock = threading.Lock()


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: object = None  # an open file to send instead of ``body``
    length: int | None = None


def answer(path: str, query: str, if_none_match: str | None, now: float | None = None) -> Answer:
    """The answer to a signed image URL (path and raw query string)."""
    now = time.time() if now is None else now
    try:
        ref = signing.verify(signing_key(), path, now)
    except signing.BadSignature as exc:
        return _error(403, f"This image link is not valid ({exc}); reload the page for a new one.")
    params = parse_qs(query, keep_blank_values=True) if query else {}
    try:
        window = _window(params)
        slab = parse_slab(*(params[name][0] if name in params else None for name in ("mode", "slab")))
    except ValueError as exc:
        return _error(400, str(exc))
    if ref.plane == "thumbnail" and (window is not None or slab is not None or ref.index != 0):
        return _error(404, "A thumbnail has one image (0) at the default window.")
    max_age = max(0, int(ref.expires - now))
    etag = f'"{ref.series_id}-{ref.version}-{ref.plane}-{ref.index}-{_window_key(window)}{_slab_key(slab)}"'
    cache = [("Cache-Control", f"private, max-age={max_age}, immutable"), ("ETag", etag)]
    if if_none_match == etag:
        return Answer(304, cache)
    try:
        if window is None and slab is None:
            stored = _stored(ref, max_age, cache)
            if stored is not None:
                return stored
        on_request = window is not None or slab is not None
        png = image_source.render_png(
            ref.series_id, ref.version, ref.plane, ref.index, window, fetch=on_request, slab=slab
        )
    except image_source.NotReady:
        return _not_ready("The images of this series are still being prepared; try again shortly.")
    except FileNotFoundError:  # a cached copy trimmed away under a kept source: build it again next time
        image_source.forget(ref.series_id)
        return _not_ready("The images of this series are still being prepared; try again shortly.")
    except IndexError:
        return _error(404, f"Image {ref.index} does not exist in the {ref.plane} plane.")
    except SlabError as exc:
        return _error(400, str(exc))
    except storage.StorageUnavailable as exc:
        log.warning("image %s: %s", path, exc)
        FAILURES.labels("storage").inc()
        return _not_ready("The image storage cannot be reached right now; try again shortly.")
    return Answer(200, [("Content-Type", "image/png"), *cache], body=png)


def _stored(ref: signing.ImageRef, max_age: int, cache: list) -> Answer | None:
    """The stored default-window image, or None when it is not stored (yet)."""
    if ref.plane == "thumbnail":
        name = storage.thumbnail_name(ref.series_id, ref.version)
    else:
        name = storage.image_name(ref.series_id, ref.version, ref.plane, ref.index)
    path = storage.default().local_filename(name)
    if path is not None:
        accel = _settings().accel
        headers = [("Content-Type", "image/png"), *cache]
        if accel:  # nginx sends the file: only whether it is there yet is ours to know
            if not _is_stored(ref, name, path):
                if ref.plane == "thumbnail":
                    raise image_source.NotReady()
                return None
            return Answer(200, [*headers, ("X-Accel-Redirect", accel + name)], length=0)  # names need no quoting
        try:
            stream = open(path, "rb")
        except FileNotFoundError:
            if ref.plane == "thumbnail":
                raise image_source.NotReady() from None
            return None
        return Answer(200, headers, file=stream, length=os.fstat(stream.fileno()).st_size)
    if not _is_stored(ref, name):
        if ref.plane == "thumbnail":
            raise image_source.NotReady()
        return None
    location = storage.default().presigned_url(name, max_age)
    return Answer(302, [("Location", location), *cache[:1]])


def _is_stored(ref: signing.ImageRef, name: str, path: str | None = None) -> bool:
    """Whether the storage holds the image: every image does once its version is complete (kept
    per process: a version's images never change)."""
    key = (ref.series_id, ref.version)
    if _complete.get(key):
        return True
    if storage.exists(storage.complete_name(ref.series_id, ref.version)):
        with _complete_lock:
            if len(_complete) > 10_000:
                _complete.clear()
            _complete[key] = True
        return True
    return os.path.exists(path) if path else storage.exists(name)


def _window(params: dict) -> Window | None:
    if "wc" not in params and "ww" not in params:
        return None  # other parameters (a page's retry counter) change nothing
    try:
        (wc,), (ww,) = params["wc"], params["ww"]
        center, width = float(wc), float(ww)
    except (KeyError, ValueError):
        raise ValueError("Give both wc and ww (window centre and width) as numbers.") from None
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValueError("ww must be a positive number and wc a finite one.")
    return Window(round(center, 2), round(width, 2))


def _window_key(window: Window | None) -> str:
    return f"{window.center}/{window.width}" if window else "default"


def _slab_key(slab: Slab | None) -> str:
    return f"-{slab.key}" if slab else ""


def _error(status: int, detail: str) -> Answer:
    body = json.dumps({"detail": detail}).encode()
    return Answer(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body=body)


def _not_ready(detail: str) -> Answer:
    answer = _error(503, detail)
    answer.headers.append(("Retry-After", str(RETRY_AFTER_S)))
    return answer


@dataclass(frozen=True)
class _Settings:
    """What every image answer reads from the settings, read once (and again when one changes)."""

    accel: str
    headers: list[tuple[str, str]]
    secure_headers: list[tuple[str, str]]
    ssl_header: str | None  # the environ key of SECURE_PROXY_SSL_HEADER


_cached: list[_Settings] = []


def _settings() -> _Settings:
    if not _cached:
        headers = [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", settings.SECURE_REFERRER_POLICY or "same-origin"),
            ("Content-Security-Policy", IMAGE_CSP),
        ]
        secure = list(headers)
        if settings.SECURE_HSTS_SECONDS:
            secure.append(("Strict-Transport-Security", f"max-age={settings.SECURE_HSTS_SECONDS}"))
        accel = settings.MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" if settings.MEDIA_ACCEL_REDIRECT else ""
        ssl_header = settings.SECURE_PROXY_SSL_HEADER[0] if settings.SECURE_PROXY_SSL_HEADER else None
        _cached.append(_Settings(accel, headers, secure, ssl_header))
    return _cached[0]


@receiver(setting_changed)
def _forget_settings(**kwargs):
    _cached.clear()
    _facts.clear()


def security_headers(secure: bool) -> list[tuple[str, str]]:
    """What Django's security middleware and ours add to every answer (HSTS on HTTPS only)."""
    conf = _settings()
    return conf.secure_headers if secure else conf.headers


_facts: dict[tuple, tuple[bool, bool]] = {}
FACT_KEYS = ("HTTP_HOST", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "SERVER_NAME", "SERVER_PORT")


def _client_facts(environ) -> tuple[bool, bool]:
    """(host allowed, HTTPS) by Django's own rules (ALLOWED_HOSTS, forwarded headers,
    SECURE_PROXY_SSL_HEADER), remembered per distinct set of the headers they depend on."""
    conf = _settings()
    key = (*(environ.get(name) for name in FACT_KEYS), environ.get("wsgi.url_scheme"), environ.get(conf.ssl_header))
    facts = _facts.get(key)
    if facts is None:
        request = WSGIRequest.__new__(WSGIRequest)  # an image request has nothing else worth parsing
        request.environ = request.META = environ
        try:
            request.get_host()
            allowed = True
        except DisallowedHost:
            allowed = False
        facts = (allowed, request.is_secure())
        if len(_facts) > 1000:
            _facts.clear()
        _facts[key] = facts
    return facts


STATUS_TEXT = {200: "OK", 302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden"}
STATUS_TEXT.update({404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"})


class SignedImages:
    """WSGI middleware in front of Django (dicomviewer/wsgi.py): GET and HEAD of /images/..."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(signing.PREFIX):
            return self.app(environ, start_response)
        started = time.perf_counter()
        host_allowed, secure = _client_facts(environ)
        if not host_allowed:
            result = _error(400, "This host name is not served here.")
        else:
            method = environ.get("REQUEST_METHOD")
            if method in ("GET", "HEAD"):
                result = answer(path, environ.get("QUERY_STRING", ""), environ.get("HTTP_IF_NONE_MATCH"))
            else:
                result = _error(405, "Images are read with GET.")
                result.headers.append(("Allow", "GET, HEAD"))
        headers = result.headers + security_headers(secure)
        length = result.length if result.length is not None else len(result.body)
        headers.append(("Content-Length", str(length)))
        start_response(f"{result.status} {STATUS_TEXT.get(result.status, '')}", headers)
        observe_request("images", environ.get("REQUEST_METHOD", ""), result.status, time.perf_counter() - started)
        if environ.get("REQUEST_METHOD") == "HEAD":
            if result.file is not None:
                result.file.close()
            return []
        if result.file is not None:
            wrapper = environ.get("wsgi.file_wrapper")
            return wrapper(result.file) if wrapper else iter(lambda: result.file.read(65536), b"")
        return [result.body]


def signed_image(request, rest: str = ""):
    """The same answer through Django (its URLconf; the WSGI middleware answers first in production)."""
    result = answer(request.path, request.META.get("QUERY_STRING", ""), request.headers.get("If-None-Match"))
    if result.file is not None:
        from django.http import FileResponse

        response = FileResponse(result.file, status=result.status)
    else:
        response = HttpResponse(result.body, status=result.status)
    for name, value in result.headers:
        response[name] = value
    return response
