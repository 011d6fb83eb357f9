"""Creating, changing and deleting measurements, and their DICOM SR export; audited here."""

from __future__ import annotations

import math

import pydicom
from django.db import transaction

from annotations import sr
from annotations.measure import ROI_KINDS, MeasureError, check_pixels, measure, outline, world_points
from annotations.models import Annotation
from audit.models import AuditEvent
from audit.services import record
from studies import storage
from studies.models import Instance, Series
from viewer.dicom_tags import source_frame

STAT_KEYS = ("mean", "sd", "min", "max")
MAX_UNIT = 32
MAX_PER_SERIES = 500  # one user's measurements on one series


def clean_values(kind: str, given) -> dict:
    """What the viewer measured on the stored values (ROI statistics from /roi, a probe's value from
    /probe): finite numbers and a short unit, nothing else."""
    if given in (None, {}):
        return {}
    if not isinstance(given, dict):
        raise MeasureError("values must be an object.")
    keys = (*STAT_KEYS, "n", "unit") if kind in ROI_KINDS else ("value", "unit") if kind == "probe" else ("unit",)
    unknown = sorted(set(given) - set(keys) - {"area_mm2"})  # the area is computed here, from the shape
    if unknown:
        raise MeasureError(f"values for a {kind} take only {', '.join(keys)} (not {', '.join(unknown)}).")
    out = {}
    for key in keys:
        value = given.get(key)
        if value is None:
            continue
        if key == "unit":
            if not isinstance(value, str) or len(value) > MAX_UNIT:
                raise MeasureError(f"unit must be text of at most {MAX_UNIT} characters.")
            out[key] = value
        elif key == "n":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise MeasureError("n must be a whole number of pixels.")
            out[key] = value
        else:
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise MeasureError(f"{key} must be a finite number.")
            out[key] = float(value)
    return out


def _geometry(series: Series, kind: str, plane: str, index: int, pixels):
    info = (series.planes or {}).get(plane)
    if info is None:
        available = ", ".join(series.planes or {}) or "none yet"
        raise MeasureError(f"This series has no '{plane}' plane (available: {available}).")
    if not 0 <= index < info["count"]:
        raise MeasureError(f"Image {index} does not exist: the {plane} plane has {info['count']} images.")
    pixels = check_pixels(kind, pixels, info["width"], info["height"])
    spacing = None
    if series.pixel_spacing_row_mm and series.pixel_spacing_col_mm:
        spacing = (series.pixel_spacing_row_mm, series.pixel_spacing_col_mm)
    return pixels, measure(kind, plane, info, index, pixels, spacing)


def annotation_create(*, request, series: Series, kind: str, plane: str, index: int, pixels, label="", values=None):
    pixels, geometry = _geometry(series, kind, plane, index, pixels)
    measured = clean_values(kind, values)
    with transaction.atomic():
        count = Annotation.objects.filter(owner=request.user, series=series).count()
        if count >= MAX_PER_SERIES:
            raise MeasureError(f"At most {MAX_PER_SERIES} measurements per series: delete some first.")
        annotation = Annotation.objects.create(
            owner=request.user,
            series=series,
            kind=kind,
            plane=plane,
            index=index,
            pixels=pixels,
            points=geometry.points,
            label=label,
            values={**measured, **geometry.values},
        )
    record(
        AuditEvent.Action.ANNOTATION_CREATE,
        request=request,
        obj=series,
        detail={"study_id": series.study_id, "annotation_id": annotation.pk, "kind": kind},
    )
    return annotation


def annotation_update(annotation: Annotation, *, label: str) -> Annotation:
    annotation.label = label
    annotation.save(update_fields=["label", "updated_at"])
    return annotation


def annotation_delete(*, request, annotation: Annotation) -> None:
    series = annotation.series
    detail = {"study_id": series.study_id, "annotation_id": annotation.pk, "kind": annotation.kind}
    annotation.delete()
    record(AuditEvent.Action.ANNOTATION_DELETE, request=request, obj=series, detail=detail)


def _header(instance: Instance) -> pydicom.Dataset:
    return pydicom.dcmread(storage.local_copy(instance.file), stop_before_pixels=True, force=True)


def report_create(*, request, series: Series, annotations) -> bytes:
    """The user's measurements on ``series`` as a DICOM SR Measurement Report (TID 1500)."""
    annotations = list(annotations)
    instances = {i.pk: i for i in Instance.objects.filter(series=series)}
    headers: dict[int, pydicom.Dataset] = {}

    def header(pk: int) -> pydicom.Dataset:
        if pk not in headers:
            headers[pk] = _header(instances[pk])
        return headers[pk]

    items = []
    for annotation in annotations:
        source = _source(series, annotation)
        info = (series.planes or {}).get(annotation.plane) or {}
        shape = outline(annotation.kind, annotation.pixels)
        items.append(
            sr.Item(
                kind=annotation.kind,
                label=annotation.label,
                values=annotation.values,
                outline_pixels=shape,
                outline_world=world_points(annotation.plane, info, annotation.index, shape) if info else None,
                plane_size=(info.get("width", 1), info.get("height", 1)),
                image=header(source.instance_pk) if source and source.instance_pk in instances else None,
                frame=source.frame if source else 0,
                acquired=bool(source and not source.reconstruction),
            )
        )
    evidence = header(next(iter(instances))) if instances else None
    if evidence is None:
        raise MeasureError("This series has no stored images to refer to.")
    dataset = sr.measurement_report(items, evidence=evidence, author=request.user.get_username())
    record(
        AuditEvent.Action.ANNOTATION_EXPORT,
        request=request,
        obj=series,
        detail={"study_id": series.study_id, "measurements": len(annotations), "format": "dicom-sr"},
    )
    return sr.to_bytes(dataset)


def _source(series: Series, annotation: Annotation):
    """The stored image a measurement was drawn on, if it was drawn on one as acquired."""
    layout, planes = series.layout or {}, series.planes or {}
    cols = [p[0] for p in annotation.pixels]
    rows = [p[1] for p in annotation.pixels]
    try:
        return source_frame(
            layout, planes, annotation.plane, annotation.index, sum(rows) / len(rows), sum(cols) / len(cols)
        )
    except (KeyError, IndexError, TypeError, ValueError):
        return None
