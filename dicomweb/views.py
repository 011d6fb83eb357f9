"""DICOMweb views (PS3.18): QIDO-RS, WADO-RS, STOW-RS. Thin: resources are found through
``dicomweb.resources`` (``studies.selectors``), answers are built by the modules beside this one.

Authentication and errors are the REST API's: Token, Bearer or session; JSON error bodies.
"""

from __future__ import annotations

import json
import math

import pydicom
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from rest_framework import status
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError, UnsupportedMediaType
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import record, record_images_view
from dicomweb import dicomjson, pixels, qido, stow
from dicomweb.audit import record_frames_download
from dicomweb.multipart import MediaRange, Part, multipart_stream, new_boundary, parse_accept, parse_media_type
from dicomweb.resources import instance_for, instance_path, instances_of, series_for, service_root, study_for
from studies import selectors, storage
from studies.api.views import AnyAcceptNegotiation
from studies.imaging.render import Window
from studies.models import Instance

DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"


class DicomWebView(APIView):
    """Base: no Accept check by DRF (each view negotiates its own types); not in the OpenAPI schema."""

    content_negotiation_class = AnyAcceptNegotiation
    schema = None


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


# --- QIDO-RS -------------------------------------------------------------------------------------


def qido_answer(request, queryset, query: qido.Query, values, default: set[str], level: str) -> HttpResponse:
    rows, truncated = qido.page(queryset, query)
    root = service_root(request)
    body = [qido.answer(values(row, root), default, query) for row in rows]
    record(
        AuditEvent.Action.STUDY_SEARCH,
        request=request,
        detail={"filters": query.filter_names(), "level": level, "results": len(body), "dicomweb": True},
    )
    headers = {}
    if truncated:
        headers["Warning"] = f'299 dicomweb "The result was limited to {qido.MAX_RESULTS} matches; use limit/offset."'
    return json_response(body, headers=headers)


def parse(request) -> qido.Query:
    require_json(request)
    try:
        return qido.parse_query(request.query_params)
    except qido.QueryError as exc:
        raise ParseError(str(exc)) from None


def matching(queryset, query: qido.Query, levels):
    try:
        return qido.apply(queryset, query, levels)
    except qido.QueryError as exc:
        raise ParseError(str(exc)) from None


def search_studies(request) -> HttpResponse:
    query = parse(request)
    queryset = selectors.studies_visible_to(request.user).select_related("patient").order_by("-study_date", "-id")
    queryset = matching(queryset, query, [(qido.STUDY_KEYS, "")])
    return qido_answer(request, queryset, query, qido.study_values, qido.STUDY_DEFAULT, "study")


def search_series(request, study_uid: str | None) -> HttpResponse:
    query = parse(request)
    queryset = selectors.series_visible_to(request.user).select_related("study__patient")
    if study_uid is not None:
        queryset = queryset.filter(study=study_for(request.user, study_uid))
    queryset = matching(queryset, query, [(qido.SERIES_KEYS, ""), (qido.STUDY_KEYS, "study__")])
    queryset = queryset.order_by("study_id", "series_number", "id")
    return qido_answer(request, queryset, query, qido.series_values, qido.SERIES_DEFAULT, "series")


def search_instances(request, study_uid: str | None, series_uid: str | None) -> HttpResponse:
    query = parse(request)
    queryset = selectors.instances_visible_to(request.user).select_related("series__study__patient")
    if series_uid is not None:
        queryset = queryset.filter(series=series_for(request.user, study_uid, series_uid))
    elif study_uid is not None:
        queryset = queryset.filter(series__study=study_for(request.user, study_uid))
    levels = [(qido.INSTANCE_KEYS, ""), (qido.SERIES_KEYS, "series__"), (qido.STUDY_KEYS, "series__study__")]
    queryset = matching(queryset, query, levels).order_by("series__study_id", "series_id", "instance_number", "id")
    return qido_answer(request, queryset, query, qido.instance_values, qido.INSTANCE_DEFAULT, "instance")


# --- STOW-RS -------------------------------------------------------------------------------------


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


# --- WADO-RS: instances, metadata, bulk data ----------------------------------------------------


def retrieve_instances(request, instances: list[Instance], obj, single: bool = False):
    requested = None
    plain_single = False
    for media in parse_accept(request.headers.get("Accept")):
        if media.type == "multipart/related" and media.params.get("type", "application/dicom") in (
            "application/dicom",
            "*/*",
        ):
            requested = media.params.get("transfer-syntax")
            break
        if media.type in ("*/*", "multipart/*"):
            break
        if media.type == "application/dicom" and single:
            plain_single = True
            break
    else:
        raise NotAcceptable('Instances are available as multipart/related; type="application/dicom".')
    if requested not in (None, "*"):
        other = [i.transfer_syntax_uid for i in instances if i.transfer_syntax_uid != requested]
        if other:
            raise NotAcceptable(
                f"Instances are sent in the transfer syntax they were stored in ({other[0]}), "
                "not converted: ask with transfer-syntax=* (or that syntax)."
            )
    if not instances:
        raise NotFound("No instances.")
    record(AuditEvent.Action.DOWNLOAD, request=request, obj=obj, detail={"files": len(instances), "dicomweb": True})
    if plain_single:
        response = FileResponse(open(storage.absolute(instances[0].file), "rb"), content_type="application/dicom")
        response["Cache-Control"] = "private, no-store"
        return response
    root = service_root(request)
    parts = (
        Part(
            content_type=f"application/dicom; transfer-syntax={i.transfer_syntax_uid}",
            path=storage.absolute(i.file),
            location=f"{root}{instance_path(i)}",
        )
        for i in instances
    )
    return multipart_response(parts, "application/dicom")


def metadata(request, instances: list[Instance], obj) -> HttpResponse:
    from django.conf import settings

    require_json(request)
    if not instances:
        raise NotFound("No instances.")
    root = service_root(request)
    body = [instance_metadata(i, root, settings.DICOMWEB_BULKDATA_THRESHOLD) for i in instances]
    record(
        AuditEvent.Action.DOWNLOAD,
        request=request,
        obj=obj,
        detail={"files": len(instances), "what": "metadata", "dicomweb": True},
    )
    return json_response(body)


def instance_metadata(instance: Instance, root: str, threshold: int) -> dict:
    ds = pydicom.dcmread(storage.absolute(instance.file), stop_before_pixels=True, force=True)
    base = f"{root}{instance_path(instance)}/bulkdata/"
    body = dicomjson.dataset_json(ds, lambda path: base + path, threshold)
    encapsulated = pixels.is_encapsulated(instance.transfer_syntax_uid)
    body["7FE00010"] = {
        "vr": "OB" if encapsulated or instance.bits_allocated <= 8 else "OW",
        "BulkDataURI": base + "7FE00010",
    }
    body.update(dicomjson.attributes([("AvailableTransferSyntaxUID", instance.transfer_syntax_uid)]))
    return dict(sorted(body.items()))


def bulkdata(request, instance: Instance, path: str):
    multipart = accepts_multipart_octet(request)
    record_frames_download(request, instance.series)
    if path.strip("/").upper() in ("7FE00010",):
        numbers = list(range(1, instance.number_of_frames + 1))
        result = pixels.frames(
            storage.absolute(instance.file), numbers, keep_compressed=True, transfer_syntax=instance.transfer_syntax_uid
        )
        if not pixels.is_encapsulated(result.transfer_syntax):
            result = pixels.Frames([b"".join(result.data)], result.transfer_syntax)
        return octet_parts(result, multipart)
    ds = pixels.read(storage.absolute(instance.file), instance.transfer_syntax_uid)
    element = dicomjson.find_element(ds, path.upper())
    if element is None or not isinstance(element.value, (bytes, bytearray)):
        raise NotFound("No bulk data at this path.")
    data = bytes(element.value)
    if instance.transfer_syntax_uid == "1.2.840.10008.1.2.2" and element.VR == "OW":
        data = bytes(bytearray(data[i ^ 1] for i in range(len(data) - len(data) % 2)))
    return octet_parts(pixels.Frames([data], pixels.NATIVE), multipart, with_syntax=False)


def accepts_multipart_octet(request) -> bool:
    for media in parse_accept(request.headers.get("Accept")):
        if media.type == "multipart/related" and media.params.get("type", OCTET) in (OCTET, "*/*"):
            return True
        if media.type in ("*/*", "multipart/*"):
            return True
        if media.type == OCTET:
            return False
    raise NotAcceptable('Bulk data is available as multipart/related; type="application/octet-stream".')


def octet_parts(result: pixels.Frames, multipart: bool, with_syntax: bool = True, media_type: str = OCTET):
    part_type = f"{media_type}; transfer-syntax={result.transfer_syntax}" if with_syntax else media_type
    if not multipart:
        response = HttpResponse(b"".join(result.data), content_type=part_type)
        response["Cache-Control"] = "private, no-store"
        return response
    return multipart_response((Part(part_type, data=data) for data in result.data), media_type)


# --- WADO-RS: frames ------------------------------------------------------------------------------


def frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ParseError("Frame numbers are a comma-separated list of whole numbers from 1.") from None
    if not numbers or any(n < 1 for n in numbers):
        raise ParseError("Frame numbers are a comma-separated list of whole numbers from 1.")
    return numbers


def frames(request, instance: Instance, numbers_text: str):
    numbers = frame_numbers(numbers_text)
    stored = instance.transfer_syntax_uid
    choice = choose_frame_syntax(parse_accept(request.headers.get("Accept")), stored)
    if choice is None:
        raise NotAcceptable(
            f"Frames are available natively (transfer-syntax={pixels.NATIVE}) or as stored ({stored}, "
            'with transfer-syntax=* or that syntax), as multipart/related; type="application/octet-stream".'
        )
    keep_compressed, media_type, multipart = choice
    try:
        result = pixels.frames(
            storage.absolute(instance.file), numbers, keep_compressed=keep_compressed, transfer_syntax=stored
        )
    except pixels.FrameNotFound as exc:
        raise NotFound(str(exc)) from None
    except Exception as exc:
        raise NotAcceptable(f"The frames could not be decoded to native pixels ({str(exc)[:160]}).") from None
    record_frames_download(request, instance.series)
    if not multipart and len(numbers) > 1:
        raise NotAcceptable("Several frames need a multipart/related answer.")
    return octet_parts(result, multipart, media_type=media_type)


def choose_frame_syntax(ranges: list[MediaRange], stored: str) -> tuple[bool, str, bool] | None:
    """(keep the stored compressed frames?, part media type, multipart?) for the best acceptable range."""
    compressed = pixels.is_encapsulated(stored)
    for media in ranges:
        if media.type in ("*/*", "multipart/*"):
            return False, OCTET, True
        multipart = media.type == "multipart/related"
        part_type = media.params.get("type", OCTET).lower() if multipart else media.type
        syntax = media.params.get("transfer-syntax")
        if part_type in (OCTET, "*/*"):
            if syntax in (None, pixels.NATIVE):
                return False, OCTET, multipart
            if syntax == "*" or syntax == stored:
                return compressed, OCTET, multipart
        elif compressed and part_type == pixels.COMPRESSED_MEDIA_TYPES.get(stored):
            if syntax in (None, "*", stored):
                return True, part_type, multipart
    return None


# --- WADO-RS: rendered and thumbnails ------------------------------------------------------------


def rendered(request, instance: Instance, frame: int | None, thumbnail: bool):
    media_type = rendered_media_type(request)
    window = parse_window(request.query_params.get("window"))
    size = pixels.THUMBNAIL_PX if thumbnail else None
    viewport = request.query_params.get("viewport")
    if viewport:
        size = parse_viewport(viewport)
    quality = parse_quality(request.query_params.get("quality"))
    if frame is None:
        frame = (instance.number_of_frames + 1) // 2 if thumbnail else 1
    try:
        image = pixels.render(storage.absolute(instance.file), frame, window, size)
    except pixels.FrameNotFound as exc:
        raise NotFound(str(exc)) from None
    except pixels.RenderError as exc:
        return HttpResponse(
            json.dumps({"detail": f"This instance cannot be rendered: {exc}"}),
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            content_type="application/json",
        )
    record_images_view(request, instance.series)
    response = HttpResponse(pixels.encode(image, media_type, quality), content_type=media_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def rendered_media_type(request) -> str:
    for media in parse_accept(request.headers.get("Accept")):
        if media.type in ("image/jpeg", "image/png"):
            return media.type
        if media.type in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptable("Rendered images are available as image/jpeg or image/png.")


def parse_window(text: str | None) -> Window | None:
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        center, width = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise ParseError("window is center,width[,function] with numbers.") from None
    function = parts[2].lower() if len(parts) > 2 else "linear"
    if function not in ("linear", "linear_exact"):
        raise ParseError(f"window function '{function}' is not supported (linear, linear_exact).")
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ParseError("window width must be > 0 and center finite.")
    return Window(center, width)


def parse_viewport(text: str) -> int:
    try:
        sizes = [int(float(v)) for v in text.split(",")[:2]]
    except ValueError:
        raise ParseError("viewport is width,height in pixels.") from None
    if not sizes or min(sizes) < 1 or max(sizes) > 8192:
        raise ParseError("viewport is width,height in pixels (1-8192).")
    return min(sizes)


def parse_quality(text: str | None) -> int:
    if not text:
        return 90
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise ParseError("quality is a whole number from 1 to 100.")
    return int(text)


def representative(instances: list[Instance]) -> Instance:
    if not instances:
        raise NotFound("No instances.")
    return instances[len(instances) // 2]


# --- the views -----------------------------------------------------------------------------------


class StudiesView(DicomWebView):
    def get(self, request):
        return search_studies(request)

    def post(self, request):
        return store_instances(request, None)


class StudyView(DicomWebView):
    def get(self, request, study):
        found = study_for(request.user, study)
        return retrieve_instances(request, list(instances_of(request.user, study)), found)

    def post(self, request, study):
        return store_instances(request, study)


class SeriesSearchView(DicomWebView):
    def get(self, request, study=None):
        return search_series(request, study)


class SeriesView(DicomWebView):
    def get(self, request, study, series):
        found = series_for(request.user, study, series)
        return retrieve_instances(request, list(instances_of(request.user, study, series)), found)


class InstancesSearchView(DicomWebView):
    def get(self, request, study=None, series=None):
        return search_instances(request, study, series)


class InstanceView(DicomWebView):
    def get(self, request, study, series, instance):
        found = instance_for(request.user, study, series, instance)
        return retrieve_instances(request, [found], found, single=True)


class MetadataView(DicomWebView):
    def get(self, request, study, series=None, instance=None):
        if instance is not None:
            found = instance_for(request.user, study, series, instance)
            return metadata(request, [found], found)
        obj = series_for(request.user, study, series) if series else study_for(request.user, study)
        return metadata(request, list(instances_of(request.user, study, series)), obj)


class BulkdataView(DicomWebView):
    def get(self, request, study, series, instance, path):
        return bulkdata(request, instance_for(request.user, study, series, instance), path)


class FramesView(DicomWebView):
    def get(self, request, study, series, instance, frames_list):
        return frames(request, instance_for(request.user, study, series, instance), frames_list)


class RenderedView(DicomWebView):
    thumbnail = False

    def get(self, request, study, series=None, instance=None, frames_list=None):
        if instance is not None:
            found = instance_for(request.user, study, series, instance)
            frame = frame_numbers(frames_list)[0] if frames_list else None
            return rendered(request, found, frame, self.thumbnail)
        if series is None:
            study_obj = study_for(request.user, study)
            first = selectors.series_visible_to(request.user).filter(study=study_obj).order_by("series_number", "id")
            first = first.first()
            if first is None:
                raise NotFound("This study has no series.")
            series = first.series_instance_uid
        return rendered(request, representative(list(instances_of(request.user, study, series))), None, self.thumbnail)


class ThumbnailView(RenderedView):
    thumbnail = True
