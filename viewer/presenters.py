"""What the pages show, shaped for templates and the viewer's JavaScript."""

from __future__ import annotations

import hashlib

from django.urls import reverse

from studies.api.serializers import SeriesSerializer
from studies.imaging.planes import ACQUIRED, STACK
from studies.imaging.presets import layout_presets
from studies.models import Series, Upload
from studies.services import segmentations
from studies.services.ingest import upload_progress

COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"}
SERIES_ID_SLOT = 987654321  # reversed into a URL, then replaced by "{id}" for the script

# The one table of upload stage labels: the upload page's table uses it here, and its script gets
# it rendered into the page (json_script), so there is no second copy in JavaScript. Every stage
# the ingest can write (``Upload.stage``: "queued", the keys of ingest.STAGE_BANDS and the final
# Upload.Status values) has a label; tests/test_pages_defects.py enumerates them.
STAGES = {
    "queued": "Waiting for a worker",
    "processing": "Processing",
    "extracting": "Unpacking the archive",
    "storing": "Storing images",
    "decoding": "Decoding images",
    "rendering": "Preparing images",
    "done": "Done",
    "failed": "Failed",
}
UNKNOWN_STAGE = STAGES["processing"]
# PatientSex (0010,0040): M, F or O (PS3.3 C.7.1.1)
SEX = {"M": "Male", "F": "Female", "O": "Other"}


def stage_label(stage: str) -> str:
    return STAGES.get(stage, UNKNOWN_STAGE)


def sex_label(value: str) -> str:
    """PatientSex as a word ("O" is "Other"); a non-standard value is shown as stored."""
    value = (value or "").strip()
    return SEX.get(value.upper(), value)


def person_name(value: str) -> str:
    """DICOM PN ``Family^Given^Middle^Prefix^Suffix`` as ``Family, Given Middle``."""
    first = (value or "").split("=")[0]
    parts = [part.strip() for part in first.split("^")]
    family, given = parts[0], " ".join(part for part in parts[1:3] if part)
    return f"{family}, {given}" if family and given else (family or given)


def native_plane(series: Series) -> str:
    """The plane closest to the acquisition: the one a volume is first shown in (an oblique
    volume's own ``acquired`` plane is a choice beside them, not where it opens)."""
    planes = {name: info for name, info in (series.planes or {}).items() if name != ACQUIRED}
    if STACK in planes or not planes:
        return STACK
    if not _stack_dir(series):
        return "axial" if "axial" in planes else next(iter(planes))
    return max(planes, key=lambda name: _alignment(series, name))


def native_is_exact(series: Series) -> bool:
    """Is the native plane the acquired slices themselves (not resampled from an oblique volume)?"""
    plane = native_plane(series)
    return plane == STACK or _alignment(series, plane) > 0.999


def _stack_dir(series: Series):
    return ((series.layout or {}).get("volume") or {}).get("stack_dir")


def _alignment(series: Series, plane: str) -> float:
    stack_dir = _stack_dir(series) or (0, 0, 0)
    step = series.planes[plane].get("step_dir") or (0, 0, 0)
    return abs(sum(a * b for a, b in zip(step, stack_dir, strict=True)))


def series_config(series: Series, image_urls: dict | None, link=None) -> dict:
    """Everything the viewer script needs, embedded in the page (no extra request): with the signed
    URLs of the series' images (``image_access.plane_urls``, which audits handing them out).
    Through a share link (``link``): the link's own endpoints, read-only (no measurements, no
    segmentation list), and for a de-identified link no patient facts and no tag browser."""
    study, patient = series.study, series.study.patient
    hide = link is not None and link.deidentified
    facts = SeriesSerializer(series).data
    if hide:  # UIDs can carry dates and site numbers: none leaves through a de-identified link
        facts["series_instance_uid"] = ""
        # the viewer only compares Frames of Reference (linked scrolling): a stand-in per link does
        uid = facts.get("frame_of_reference_uid") or ""
        facts["frame_of_reference_uid"] = hashlib.sha256(f"{link.pk}:{uid}".encode()).hexdigest()[:32] if uid else ""
    return {
        "series": facts,
        "images": image_urls,
        "nativePlane": native_plane(series),
        "nativeExact": native_is_exact(series),
        "orientation": series.image_orientation,
        "isColor": series.photometric_interpretation in COLOUR,
        "inverted": series.photometric_interpretation == "MONOCHROME1",
        "presets": layout_presets(series.modality, series.layout),
        "readOnly": link is not None,
        "urls": viewer_urls(series, link),
        "segmentationOf": segmentation_of(series, link),
        "overlay": {
            "patientName": "" if hide else person_name(patient.name),
            "patientId": "" if hide else patient.patient_id,
            "studyDate": study.study_date.isoformat() if study.study_date else "",
            "seriesLabel": " ".join(
                part
                for part in (f"#{series.series_number}" if series.series_number is not None else "", series.description)
                if part
            ),
            "modality": series.modality,
        },
    }


def viewer_urls(series: Series, link=None) -> dict:
    """The endpoints the viewer script uses for a series: the signed-in ones, or a share link's."""
    if link is None:
        return {
            "api": reverse("api:series-detail", args=[series.pk]),
            "status": reverse("viewer:series-status", args=[series.pk]),
            "tags": reverse("viewer:image-tags", args=[series.pk]),
            "segmentations": reverse("api:series-segmentations", args=[series.pk]) if series.is_volume else None,
            # any series' config (layouts show other series of the study): {id} is its id
            "seriesConfig": reverse("viewer:series-config", args=[SERIES_ID_SLOT]).replace(str(SERIES_ID_SLOT), "{id}"),
        }
    config = reverse("viewer:link-series-config", args=[link.pk, SERIES_ID_SLOT]).replace(str(SERIES_ID_SLOT), "{id}")
    return {
        "api": None,
        "status": reverse("viewer:link-series-status", args=[link.pk, series.pk]),
        "tags": None if link.deidentified else reverse("viewer:link-image-tags", args=[link.pk, series.pk]),
        "segmentations": None,
        "seriesConfig": config,
    }


def series_href(series_id: int, link=None) -> str:
    """The viewer page of a series: the signed-in one, or a share link's."""
    if link is None:
        return reverse("viewer:series", args=[series_id])
    return reverse("viewer:link-series", args=[link.pk, series_id])


def segmentation_of(series: Series, link=None) -> dict | None:
    """On a SEG series' page: the series it is overlaid on ({"series", "number", "modality", "description", "url"})."""
    target = segmentations.seg_page_note(series)
    if target is None:
        return None
    return {**target, "url": series_href(target["series"], link)}


def series_status_json(series: Series) -> dict:
    return {
        "id": series.pk,
        "render_status": series.render_status,
        "render_version": series.render_version,
        "images_done": series.images_done,
        "images_total": series.images_total,
        "has_planes": bool(series.planes),
        "render_error": series.render_error,
    }


def upload_rows(uploads) -> list[dict]:
    rows = []
    for upload in uploads:
        rows.append(
            {
                "upload": upload,
                "progress": upload_progress(upload) if not upload.is_finished else 100,
                "stage": stage_label(upload.stage),
                "finished": upload.is_finished,
                "failed": upload.status == Upload.Status.FAILED,
                "studies": list(upload.studies.all()),
            }
        )
    return rows
