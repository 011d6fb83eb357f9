"""Answers that carry a stored file (originals). Every view that serves one calls
``file_response`` after its permission check, so media is never served as public files.

- A local storage folder: a streamed FileResponse, or behind nginx (MEDIA_ACCEL_REDIRECT set) an
  empty answer with ``X-Accel-Redirect`` naming the file under nginx's internal location, so
  nginx streams the bytes.
- A bucket: the object streamed through (clients never need to reach the bucket for downloads).
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse

from studies import storage

CHUNK_BYTES = 256 * 1024


def file_response(name: str, content_type: str, download_name: str | None = None):
    path = storage.local_path(name)
    if path is not None and settings.MEDIA_ACCEL_REDIRECT:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" + quote(name)
    elif path is not None:
        try:
            response = FileResponse(open(path, "rb"), content_type=content_type)
        except FileNotFoundError:
            raise Http404 from None
    else:
        try:
            stream = storage.open_stream(name)
        except FileNotFoundError:
            raise Http404 from None
        response = StreamingHttpResponse(_chunks(stream), content_type=content_type)
        response["Content-Length"] = str(storage.size(name))
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response


def _chunks(stream):
    with stream:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
