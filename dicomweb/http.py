"""HTTP helpers of the DICOMweb views: DICOM JSON answers, Accept checks, multipart answers."""

from __future__ import annotations

import json

from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import NotAcceptable

from dicomweb.multipart import multipart_stream, new_boundary, parse_accept

DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"


def json_response(body, status_code: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), content_type=DICOM_JSON, status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def require_json(request) -> None:
    for media in parse_accept(request.headers.get("Accept")):
        if media.type in ("application/dicom+json", "application/json", "*/*", "application/*"):
            return
    raise NotAcceptable("This resource is available as application/dicom+json only.")


def multipart_response(parts, part_type: str, extra: str = "") -> StreamingHttpResponse:
    boundary = new_boundary()
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}{extra}'
    response = StreamingHttpResponse(multipart_stream(parts, boundary), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response
