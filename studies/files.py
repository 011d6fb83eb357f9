"""Answers that carry a stored file. Every view that serves media calls ``file_response`` after
its permission check, so media is never served as public files.

Development and ``make run``: a streamed FileResponse. Behind nginx (docker-compose), with
MEDIA_ACCEL_REDIRECT set: an empty answer with ``X-Accel-Redirect`` naming the file under
nginx's internal location, so nginx streams the bytes.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpResponse

from studies import storage


def file_response(path: Path, content_type: str, download_name: str | None = None):
    prefix = settings.MEDIA_ACCEL_REDIRECT
    if prefix:
        relative = Path(path).resolve().relative_to(storage.media_root().resolve())
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(relative.as_posix())
    else:
        response = FileResponse(open(path, "rb"), content_type=content_type)
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response
