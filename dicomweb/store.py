"""STOW-RS answers: the request checked and stored through ``dicomweb.stow``, the standard response (PS3.18 10.5)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import status
from rest_framework.exceptions import ParseError, UnsupportedMediaType

from audit.models import AuditEvent
from audit.services import record
from dicomweb import dicomjson, stow
from dicomweb.http import json_response
from dicomweb.multipart import parse_media_type
from dicomweb.resources import instance_path, service_root
from studies.models import Instance


def store_instances(request, study_uid: str | None) -> HttpResponse:
    from django.conf import settings

    content_type = parse_media_type(request.META.get("CONTENT_TYPE", ""))
    if content_type.type != "multipart/related" or content_type.params.get("type", "").lower() != "application/dicom":
        raise UnsupportedMediaType(
            request.META.get("CONTENT_TYPE", "") or "none",
            detail='Send multipart/related; type="application/dicom" with one DICOM file per part.',
        )
    boundary = content_type.params.get("boundary")
    if not boundary:
        raise ParseError("The multipart Content-Type has no boundary parameter.")
    try:
        body = stow.body_to_file(request, settings.MAX_UPLOAD_BYTES)
    except stow.TooLarge:
        return HttpResponse(
            json.dumps({"detail": f"The request is larger than the limit of {settings.MAX_UPLOAD_BYTES:,} bytes."}),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            content_type="application/json",
        )
    except stow.BadRequest as exc:
        raise ParseError(str(exc)) from None
    try:
        items, staged = stow.read_parts(body, boundary, study_uid)
    except stow.BadRequest as exc:
        raise ParseError(str(exc)) from None
    finally:
        body.unlink(missing_ok=True)
    outcome = stow.store(owner=request.user, items=items, staged=staged)
    if outcome.upload is not None:
        record(
            AuditEvent.Action.UPLOAD_RECEIVED,
            request=request,
            obj=outcome.upload,
            detail={"size_bytes": outcome.upload.size_bytes, "parts": len(items), "dicomweb": True},
        )
    outcome = stow.wait_and_settle(outcome, request.user, stow.wait_seconds())
    return stow_response(request, outcome)


def stow_response(request, outcome: stow.Outcome) -> HttpResponse:
    root = service_root(request)
    stored = {
        row.sop_instance_uid: row
        for row in Instance.objects.filter(
            owner=request.user, sop_instance_uid__in=[item.sop_instance for item in outcome.stored]
        ).select_related("series__study")
    }
    referenced, failed, warnings, studies = [], [], [], set()
    for item in outcome.items:
        if item.failure is not None:
            failed.append(
                dicomjson.attributes(
                    [
                        ("ReferencedSOPClassUID", item.sop_class),
                        ("ReferencedSOPInstanceUID", item.sop_instance),
                        ("FailureReason", item.failure),
                    ]
                )
            )
            continue
        row = stored.get(item.sop_instance)
        url = f"{root}{instance_path(row)}" if row else ""
        if row:
            studies.add(row.series.study.study_instance_uid)
        if item.warning:
            warnings.append(f"{item.sop_instance}: {item.warning}")
        referenced.append(
            dicomjson.attributes(
                [
                    ("ReferencedSOPClassUID", item.sop_class),
                    ("ReferencedSOPInstanceUID", item.sop_instance),
                    ("RetrieveURL", url),
                ]
            )
        )
    body = {}
    if len(studies) == 1:
        body.update(dicomjson.attributes([("RetrieveURL", f"{root}studies/{studies.pop()}")]))
    body["00081198"] = {"vr": "SQ", "Value": failed} if failed else {"vr": "SQ"}
    body["00081199"] = {"vr": "SQ", "Value": referenced} if referenced else {"vr": "SQ"}
    if not referenced:
        status_code = status.HTTP_409_CONFLICT
    elif failed or warnings:
        status_code = status.HTTP_202_ACCEPTED
    else:
        status_code = status.HTTP_200_OK
    headers = {}
    if warnings:
        text = "; ".join(warnings)[:1000].replace('"', "'")
        headers["Warning"] = f'299 dicomweb "{text}"'
    return json_response(body, status_code, headers)
