"""SEG series overlaid in colour on the series they segment.

Whenever a series version is decoded (``series_build.decode_and_queue``), ``after_build`` lays
SEGs onto volumes: a new SEG onto the series it references, a new version of a series under every
SEG of its study that references it. The labels (``imaging.segmentation.Labels``: a bit per
segment on the referenced volume's slices) are stored with the referenced series' version
(``storage.segmentation_labels_name``), so a rebuild of either series makes new ones and old ones
go with their version. What was done, or why not, is kept in the SEG series' ``layout``
(``"segmentation"``, and a line in its notes); a SEG that cannot be overlaid stays a stack of its
own frames.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict

import numpy as np
from django.db import transaction

from studies import storage
from studies.imaging import segmentation
from studies.imaging.planes import Plane
from studies.imaging.render import encode_png
from studies.imaging.volume import volume_from_dict
from studies.models import Instance, Series

log = logging.getLogger(__name__)
OVERLAID = "overlaid"
_LABELS: OrderedDict = OrderedDict()  # storage name -> labels array (kept per process, a few)
_LABELS_LOCK = threading.Lock()
_LABELS_MAX = 8


def after_build(series_id: int, version: int) -> None:
    """Overlays for a series version just decoded; never raises (an overlay is an extra)."""
    try:
        series = Series.objects.select_related("study").filter(pk=series_id, render_version=version).first()
        if series is None:
            return
        if _is_seg(series):
            overlay(series)
            return
        for seg in Series.objects.filter(
            study_id=series.study_id, layout__segmentation__referenced_series_uid=series.series_instance_uid
        ):
            overlay(seg)
    except Exception as exc:  # the images of the series matter more than its overlay
        # the exception's type only: its text may quote values from the files
        log.warning("series %s v%s: segmentation overlay failed (%s)", series_id, version, type(exc).__name__)


def _is_seg(series: Series) -> bool:
    return Instance.objects.filter(series=series, sop_class_uid=segmentation.SEG_SOP_CLASS).exists()


def overlay(seg_series: Series) -> None:
    """Lay a SEG series onto the current version of the series it references (or note why not)."""
    seg_version = seg_series.render_version
    instances = list(seg_series.instances.filter(sop_class_uid=segmentation.SEG_SOP_CLASS).order_by("pk")[:2])
    if not instances:
        return
    try:
        path = storage.local_copy(instances[0].file)
    except FileNotFoundError:
        return  # not extracted yet: its own build comes later
    try:
        seg = segmentation.read_segmentation(path)
    except segmentation.SegmentationError as exc:
        _record(seg_series, seg_version, {"status": "unreadable"}, f"Not overlaid on another series: {exc}.")
        return
    info = {
        "referenced_series_uid": seg.referenced_series_uids[0] if seg.referenced_series_uids else "",
        "segments": [segment.to_dict() for segment in seg.segments],
    }
    ref = (
        Series.objects.filter(study_id=seg_series.study_id, series_instance_uid__in=seg.referenced_series_uids)
        .exclude(pk=seg_series.pk)
        .first()
    )
    if ref is None:
        note = "Not overlaid: the series it segments (its ReferencedSeriesSequence) is not in this study."
        _record(seg_series, seg_version, {**info, "status": "no reference"}, note)
        return
    info["referenced_series"] = ref.pk
    name = f"series #{ref.series_number}" if ref.series_number is not None else f"series {ref.pk}"
    if (ref.layout or {}).get("kind") != "volume":
        note = f"Not overlaid on {name}: that series is shown as a stack of images, not a volume."
        _record(seg_series, seg_version, {**info, "status": "not a volume"}, note)
        return
    ref_version = ref.render_version
    try:
        manifest = storage.read_json(storage.manifest_name(ref.pk, ref_version))
    except FileNotFoundError:
        return  # not decoded yet: its own build lays this SEG on it
    volume = volume_from_dict(manifest["volume"])
    uids = dict(Instance.objects.filter(series=ref).values_list("pk", "sop_instance_uid"))
    slice_uids = [uids.get(pk) for pk, _frame in (ref.layout or {}).get("frames", [])]
    frames = (ref.layout or {}).get("frames") or [[None, 0]]
    try:
        labels = segmentation.map_to_volume(
            seg, volume, frame_of_reference_uid=_frame_of_reference(frames[0][0]), slice_uids=slice_uids
        )
    except (segmentation.Mismatch, segmentation.SegmentationError) as exc:
        note = f"Not overlaid on {name}: {exc}; shown as its own frames."
        _record(seg_series, seg_version, {**info, "status": "mismatch"}, note)
        return
    labels_name = storage.segmentation_labels_name(ref.pk, ref_version, seg_series.pk, seg_version)
    buffer = io.BytesIO()
    np.save(buffer, labels.data)
    storage.save_bytes(labels_name, buffer.getvalue())
    info.update(
        status=OVERLAID,
        referenced_version=ref_version,
        version=seg_version,
        labels=labels_name,
        first_slice=labels.first_slice,
        bits=labels.segments,
    )
    notes = " ".join(labels.notes)
    if len(instances) > 1:
        notes += " Only its first SEG file is overlaid."
    _record(seg_series, seg_version, info, f"Overlaid in colour on {name}.{' ' + notes if notes else ''}")


def _frame_of_reference(instance_pk: int | None) -> str:
    """The FrameOfReferenceUID of a stored instance (of the volume's first slice)."""
    instance = Instance.objects.filter(pk=instance_pk).first()
    if instance is None:
        return ""
    try:
        return segmentation.frame_of_reference(storage.local_copy(instance.file))
    except FileNotFoundError:
        return ""


def _record(seg_series: Series, version: int, info: dict, note: str) -> None:
    """Keep what was done in the SEG's layout, and the note among its notes (replacing the last)."""
    with transaction.atomic():
        locked = Series.objects.select_for_update().filter(pk=seg_series.pk, render_version=version).first()
        if locked is None:
            return  # rebuilt meanwhile: its own build decides
        layout = dict(locked.layout or {})
        previous = (layout.get("segmentation") or {}).get("note")
        layout["notes"] = [n for n in layout.get("notes", []) if n != previous] + [note]
        layout["segmentation"] = {**info, "note": note}
        Series.objects.filter(pk=locked.pk).update(layout=layout)


# --- read side -------------------------------------------------------------------------------------


def overlays_of(series: Series) -> list[Series]:
    """The SEG series laid onto the current version of ``series``, with their (current) info."""
    found = []
    for seg in Series.objects.filter(study_id=series.study_id, layout__segmentation__referenced_series=series.pk):
        info = (seg.layout or {}).get("segmentation") or {}
        if (
            info.get("status") == OVERLAID
            and info.get("referenced_version") == series.render_version
            and info.get("version") == seg.render_version
        ):
            found.append(seg)
    return found


def listing(series: Series, base_url: str) -> list[dict]:
    """``[{"series", "label", "segments", "overlay"}]`` for the API (``base_url``: the list's own URL)."""
    answer = []
    for seg in overlays_of(series):
        info = seg.layout["segmentation"]
        answer.append(
            {
                "series": seg.pk,
                "label": seg.description,
                "segments": info["segments"],
                "overlay": f"{base_url}{seg.pk}/overlay/v{info['referenced_version']}-{info['version']}/"
                "{plane}/{index}.png",
            }
        )
    return answer


def overlay_info(series: Series, seg_id: int, version: int, seg_version: int) -> dict | None:
    """The info of SEG ``seg_id`` laid on ``series`` at these versions, or None."""
    for seg in overlays_of(series):
        info = seg.layout["segmentation"]
        if seg.pk == seg_id and info["referenced_version"] == version and info["version"] == seg_version:
            return info
    return None


def overlay_png(series: Series, info: dict, plane: str, index: int, shown: list[int] | None) -> bytes:
    """The RGBA PNG of image ``index`` of ``plane`` of ``series`` (its volume planes), with the
    ``shown`` segment numbers (all when None). Raises FileNotFoundError if the labels are gone."""
    volume, data = _labels_on(series.pk, info)
    labels = segmentation.Labels(info["bits"], info["first_slice"], data)
    bits = labels.plane_image(volume, Plane.from_dict(plane, series.planes[plane]), index)
    by_number = {s["number"]: s for s in info["segments"]}
    segments = [segmentation.Segment(**by_number[number]) for number in info["bits"]]
    return encode_png(segmentation.overlay_rgba(bits, segments, shown))


def _labels_on(series_id: int, info: dict):
    """(referenced volume, labels array) of an overlay, kept per process (a few)."""
    name = info["labels"]
    with _LABELS_LOCK:
        found = _LABELS.get(name)
        if found is not None:
            _LABELS.move_to_end(name)
            return found
    manifest = storage.read_json(storage.manifest_name(series_id, info["referenced_version"]))
    found = (volume_from_dict(manifest["volume"]), np.load(storage.local_copy(name), mmap_mode="r"))
    with _LABELS_LOCK:
        _LABELS[name] = found
        while len(_LABELS) > _LABELS_MAX:
            _LABELS.popitem(last=False)
    return found


def seg_page_note(series: Series) -> dict | None:
    """For the viewer page of a SEG series: the series it is overlaid on, if any."""
    info = (series.layout or {}).get("segmentation") or {}
    if info.get("status") != OVERLAID:
        return None
    ref = Series.objects.filter(pk=info.get("referenced_series"), study_id=series.study_id).first()
    if ref is None:
        return None
    return {"series": ref.pk, "number": ref.series_number, "modality": ref.modality, "description": ref.description}
