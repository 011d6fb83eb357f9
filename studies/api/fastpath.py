"""A short path for the hottest request: an API client fetching an already rendered plane
image at the default window (``GET /api/series/<id>/planes/<plane>/<index>.png[?v=]`` with a
token). Django + DRF spend about 2 ms of CPU on such a request, mostly compiling ORM queries;
this path spends a fraction of that, in one database query, which matters when many clients
scroll through images at once.

It decides nothing on its own: ``selectors.token_image_access`` checks the token and access with
the selectors' rules (tests hold it to ``series_visible_to``'s answers), and the access is
audited like any image fetch. Anything else (a session cookie, a window, an image not rendered
yet, an unknown or forbidden id, a bad or legacy token) goes to Django unchanged, which answers
it fully.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections, connection

from audit.services import images_view_recorded_recently, record_images_view
from dicomviewer.security import CSP
from studies import selectors, storage
from studies.models import Series
from tokens.services import hash_key, token_mark_used

log = logging.getLogger(__name__)
PATTERN = re.compile(r"^/api/series/([0-9]{1,18})/planes/(axial|coronal|sagittal|stack)/([0-9]{1,9})\.png$")
AUTH = re.compile(r"^(?:Token|Bearer) ([A-Za-z0-9_\-]{1,200})$", re.IGNORECASE)
SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", CSP),
]


def image_etag(series_id: int, render_version: int, plane: str, index: int, window=None) -> str:
    key = f"{window.center}/{window.width}" if window else "default"
    return f'"{series_id}-{render_version}-{plane}-{index}-{key}"'


def cache_control(version: str | None, render_version: int) -> str:
    """Browsers may keep images; shared caches never. Versioned URLs (?v=) may be kept a day."""
    return "private, max-age=86400" if version == str(render_version) else "private, no-cache"


class FastImages:
    """WSGI middleware in front of Django (see dicomviewer/wsgi.py)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET":
            match = PATTERN.match(environ.get("PATH_INFO", ""))
            if match:
                try:
                    answer = self.serve(environ, *match.groups())
                except Exception:  # the full stack will answer (and report) it properly
                    log.exception("image fast path failed; answering through Django")
                    answer = None
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    return body
        return self.app(environ, start_response)

    def serve(self, environ, series_id: str, plane: str, index: str):
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if set(query) - {"v"} or len(query.get("v", [])) > 1:
            return None
        version = query.get("v", [None])[0]
        if version is not None and not (version.isdigit() and len(version) < 10):
            return None
        auth = AUTH.match(environ.get("HTTP_AUTHORIZATION", ""))
        if auth is None:
            return None
        # what Django does at the start of every request, minus the health check query: a broken
        # connection raises here and Django, answering instead, checks and reconnects
        close_old_connections()
        connection.health_check_done = True
        access = selectors.token_image_access(hash_key(auth.group(1)), int(series_id))
        if access is None:  # a legacy key, a refusal, an unknown id: Django answers it fully
            return None
        if not 0 <= int(index) < (access.planes.get(plane) or {}).get("count", 0):
            return None
        path = storage.image_path(access.series_id, access.render_version, plane, int(index))
        if not path.is_file():
            return None  # not rendered yet: Django renders it on demand
        token_mark_used(access.token_id)
        if not images_view_recorded_recently(access.user_id, access.series_id):
            request = WSGIRequest(environ)
            request.user = get_user_model().objects.get(pk=access.user_id)
            record_images_view(request, Series.objects.defer("layout").get(pk=access.series_id))
        etag = image_etag(access.series_id, access.render_version, plane, int(index))
        headers = [("ETag", etag), ("Cache-Control", cache_control(version, access.render_version)), *SECURITY_HEADERS]
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            return "304 Not Modified", headers, []
        headers.append(("Content-Type", "image/png"))
        if settings.MEDIA_ACCEL_REDIRECT:
            relative = path.relative_to(storage.media_root()).as_posix()
            headers += [
                ("X-Accel-Redirect", settings.MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" + relative),
                ("Content-Length", "0"),
            ]
            return "200 OK", headers, []
        stream = open(path, "rb")
        headers.append(("Content-Length", str(path.stat().st_size)))
        wrapper = environ.get("wsgi.file_wrapper")
        return "200 OK", headers, wrapper(stream) if wrapper else iter(lambda: stream.read(65536), b"")
