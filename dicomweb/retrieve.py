"""WADO-RS answers: instances, metadata, bulk data, frames, rendered images (PS3.18 10.4)."""

from __future__ import annotations

import json
import math
from functools import partial

import pydicom
from django.http import HttpResponse
from rest_framework import status
from rest_framework.exceptions import NotAcceptable, NotFound, ParseError

from audit.models import AuditEvent
from audit.services import record, record_images_view
from dicomweb import dicomjson, pixels
from dicomweb.audit import record_frames_download
from dicomweb.http import OCTET, json_response, multipart_response, require_json
from dicomweb.multipart import MediaRange, Part, parse_accept
from dicomweb.resources import instance_path, service_root
from studies import storage
from studies.files import file_response
from studies.imaging.render import Window
from studies.models import Instance


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
        response = file_response(instances[0].file, "application/dicom")
        response["Cache-Control"] = "private, no-store"
        return response
    root = service_root(request)
    parts = (
        Part(
            content_type=f"application/dicom; transfer-syntax={i.transfer_syntax_uid}",
            source=partial(storage.open_stream, i.file),
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
    ds = pydicom.dcmread(storage.local_copy(instance.file), stop_before_pixels=True, force=True)
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
            storage.local_copy(instance.file),
            numbers,
            keep_compressed=True,
            transfer_syntax=instance.transfer_syntax_uid,
        )
        if not pixels.is_encapsulated(result.transfer_syntax):
            result = pixels.Frames([b"".join(result.data)], result.transfer_syntax)
        return octet_parts(result, multipart)
    ds = pixels.read(storage.local_copy(instance.file), instance.transfer_syntax_uid)
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


def frame_numbers(text: str, count: int | None = None) -> list[int]:
    """The frame numbers of a frame list: each once (a repeat would multiply the answer, not add to
    it), and never more of them than the instance's ``count`` of frames."""
    try:
        numbers = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise ParseError("Frame numbers are a comma-separated list of whole numbers from 1.") from None
    if not numbers or any(n < 1 for n in numbers):
        raise ParseError("Frame numbers are a comma-separated list of whole numbers from 1.")
    seen: set[int] = set()
    for number in numbers:
        if number in seen:
            raise ParseError(f"Frame {number} is asked for more than once: list each frame once.")
        seen.add(number)
    if count is not None and len(numbers) > count:
        raise ParseError(f"The list asks for {len(numbers)} frames; the instance has {count} frame(s).")
    return numbers


def frames(request, instance: Instance, numbers_text: str):
    numbers = frame_numbers(numbers_text, instance.number_of_frames)
    stored = instance.transfer_syntax_uid
    choice = choose_frame_syntax(parse_accept(request.headers.get("Accept")), stored)
    if choice is None:
        raise NotAcceptable(
            f"Frames are available natively (transfer-syntax={pixels.NATIVE}) or as stored ({stored}, "
            'with transfer-syntax=* or that syntax), as multipart/related; type="application/octet-stream".'
        )
    keep_compressed, media_type, multipart = choice
    if not multipart and len(numbers) > 1:
        raise NotAcceptable("Several frames need a multipart/related answer.")
    try:
        result = pixels.frames(
            storage.local_copy(instance.file), numbers, keep_compressed=keep_compressed, transfer_syntax=stored
        )
    except pixels.FrameNotFound as exc:
        raise NotFound(str(exc)) from None
    except Exception as exc:
        raise NotAcceptable(f"The frames could not be decoded to native pixels ({str(exc)[:160]}).") from None
    record_frames_download(request, instance.series)
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
        image = pixels.render(storage.local_copy(instance.file), frame, window, size)
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
