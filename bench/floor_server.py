"""The serving floor: the least a WSGI app under gunicorn can do to answer the viewer's image URLs.
It maps an image URL to its file and hands the file to gunicorn (sendfile), or with FLOOR_ACCEL
set answers X-Accel-Redirect as the app does behind nginx. No signature check, no security headers,
no cache headers: bench/run.py starts it with the app's own gunicorn settings and measures both."""

from __future__ import annotations

import os
import re

MEDIA_ROOT = os.environ.get("FLOOR_MEDIA_ROOT", "media")
ACCEL = os.environ.get("FLOOR_ACCEL", "")
IMAGE = re.compile(r"^/images/([0-9]+)/([0-9]+)/([a-z]+)/[0-9]+/[^/]+/([0-9]+)\.png$")


def application(environ, start_response):
    match = IMAGE.match(environ.get("PATH_INFO", ""))
    if match is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return []
    series, version, plane, index = match.groups()
    name = f"derived/{series}/v{version}/{plane}/{index}.png"
    if ACCEL:
        start_response(
            "200 OK", [("Content-Type", "image/png"), ("X-Accel-Redirect", ACCEL + name), ("Content-Length", "0")]
        )
        return []
    stream = open(os.path.join(MEDIA_ROOT, name), "rb")
    size = os.fstat(stream.fileno()).st_size
    start_response("200 OK", [("Content-Type", "image/png"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](stream)
