"""Plane images of stored series: queued in chunks for the workers, or rendered on request.

A series' images belong to its ``render_version``; when its instances change the version goes
up, new images are written beside the old ones and the old version is removed once the new
one is complete. Chunks of a stale version do nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from django.db.models import F
from django.utils import timezone

from studies import storage
from studies.imaging.headers import Header, read_header
from studies.imaging.planes import STACK
from studies.imaging.render import Window, encode_png
from studies.imaging.series import StackImages, VolumeImages
from studies.imaging.volume import FrameRef, volume_from_dict
from studies.models import Instance, Series, Upload

log = logging.getLogger(__name__)

CHUNK_IMAGES = 32
_SOURCES: OrderedDict = OrderedDict()  # (series id, version) -> VolumeImages | StackImages
_SOURCES_LOCK = threading.Lock()
_SOURCES_MAX = 8


class NotReady(Exception):
    """The series' pixels are not decoded yet; ask again shortly."""


def series_images(series: Series, headers: list[Header] | None = None, frames: list[FrameRef] | None = None):
    """The image source of a series at its current version (cached per process)."""
    key = (series.pk, series.render_version)
    with _SOURCES_LOCK:
        source = _SOURCES.get(key)
        if source is not None:
            _SOURCES.move_to_end(key)
            return source
    source = _build_source(series, headers, frames)
    with _SOURCES_LOCK:
        _SOURCES[key] = source
        while len(_SOURCES) > _SOURCES_MAX:
            _SOURCES.popitem(last=False)
    return source


def _build_source(series: Series, headers, frames):
    layout = series.layout or {}
    if layout.get("kind") == "volume":
        path = storage.volume_path(series.pk, series.render_version)
        if not path.exists():
            raise NotReady()
        data = np.load(path, mmap_mode="r")
        volume = volume_from_dict(layout["volume"])
        window = Window(series.window_center, series.window_width) if series.window else Window(0, 1)
        return VolumeImages(volume, data, window, series.photometric_interpretation == "MONOCHROME1")
    if layout.get("kind") != "stack":
        raise NotReady()
    if headers is None:
        headers, frames = _stack_headers(series, layout["frames"])
    return StackImages(headers, frames)


class LazyHeaders:
    """Headers of stored files, read the first time each is needed (a stack of thousands of
    images must not read thousands of headers to render one)."""

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self._read: dict[int, Header] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Header:
        header = self._read.get(index)
        if header is None:
            header = read_header(self.paths[index])
            if not isinstance(header, Header):
                raise NotReady()
            self._read[index] = header
        return header


def _stack_headers(series: Series, frames_json: list) -> tuple[LazyHeaders, list[FrameRef]]:
    pks = list(dict.fromkeys(pk for pk, _ in frames_json))
    files = dict(Instance.objects.filter(series=series, pk__in=pks).values_list("pk", "file"))
    index_of = {pk: number for number, pk in enumerate(pks)}
    headers = LazyHeaders([storage.absolute(files[pk]) for pk in pks])
    return headers, [FrameRef(index_of[pk], frame) for pk, frame in frames_json]


def display(images, plane: str, index: int, window: Window | None = None) -> np.ndarray:
    if isinstance(images, VolumeImages):
        return images.display(plane, index, window)
    return images.display(index, window)


def image_file(series: Series, plane: str, index: int, window: Window | None = None) -> Path:
    """Path of a PNG, rendering it now if no worker has yet. Raises NotReady, KeyError, IndexError."""
    info = series.planes.get(plane)
    if info is None:
        raise KeyError(plane)
    if not 0 <= index < info["count"]:
        raise IndexError(index)
    key = (window.center, window.width) if window else None
    path = storage.image_path(series.pk, series.render_version, plane, index, key)
    if path.exists():
        return path
    images = series_images(series)
    png = encode_png(display(images, plane, index, window))
    storage.write_atomic(path, png)
    return path


# --- the queue ----------------------------------------------------------------------------


def plan_chunks(planes: dict) -> list[tuple[str, int, int]]:
    """Chunks of every plane, the middle of each plane first (where a viewer opens)."""
    per_plane = {}
    for name, info in planes.items():
        count = info["count"]
        middle = count // 2
        starts = list(range(0, count, CHUNK_IMAGES))
        starts.sort(key=lambda start: abs(start + CHUNK_IMAGES // 2 - middle))
        per_plane[name] = [(name, start, min(start + CHUNK_IMAGES, count)) for start in starts]
    order = [name for name in ("axial", STACK, "coronal", "sagittal") if name in per_plane]
    order += [name for name in per_plane if name not in order]
    chunks = []
    while any(per_plane[name] for name in order):
        for name in order:
            if per_plane[name]:
                chunks.append(per_plane[name].pop(0))
    return chunks


def queue_series(series_id: int, version: int, images_total: int) -> None:
    from studies.tasks import series_render_chunk

    series = Series.objects.filter(pk=series_id, render_version=version).first()
    if series is None:
        return
    for plane, start, stop in plan_chunks(series.planes):
        series_render_chunk.delay(series_id, version, plane, start, stop)


def render_chunk(series_id: int, version: int, plane: str, start: int, stop: int) -> None:
    series = Series.objects.filter(pk=series_id).first()
    if series is None or series.render_version != version:
        return  # deleted, or superseded by a newer version
    try:
        images = series_images(series)
        for index in range(start, stop):
            path = storage.image_path(series_id, version, plane, index)
            storage.write_atomic(path, encode_png(display(images, plane, index)))
    except Exception as exc:
        log.exception("rendering series %s %s %s-%s failed", series_id, plane, start, stop)
        Series.objects.filter(pk=series_id, render_version=version).update(
            render_status=Series.Render.FAILED, render_error=f"rendering failed: {str(exc)[:200]}"
        )
        finish_uploads_if_rendered(series_id=series_id)
        return
    updated = Series.objects.filter(pk=series_id, render_version=version).update(
        images_done=F("images_done") + (stop - start)
    )
    if updated:
        _finish_series_if_done(series_id, version)


def _finish_series_if_done(series_id: int, version: int) -> None:
    finished = Series.objects.filter(
        pk=series_id,
        render_version=version,
        render_status=Series.Render.RENDERING,
        images_done__gte=F("images_total"),
    ).update(render_status=Series.Render.DONE)
    if finished:
        storage.remove_old_versions(series_id, version)
        finish_uploads_if_rendered(series_id=series_id)


def finish_uploads_if_rendered(*, upload_ids: list[int] | None = None, series_id: int | None = None) -> None:
    """Mark uploads done (or failed) once every series they touched is rendered."""
    uploads = Upload.objects.filter(status=Upload.Status.PROCESSING, stage="rendering")
    if upload_ids is not None:
        uploads = uploads.filter(pk__in=upload_ids)
    if series_id is not None:
        uploads = uploads.filter(series=series_id)
    for upload in uploads:
        states = list(upload.series.values_list("render_status", "series_number", "render_error"))
        if any(state in (Series.Render.PENDING, Series.Render.RENDERING) for state, _, _ in states):
            continue
        failed = [
            f"series {number if number is not None else '?'}: {error}"
            for state, number, error in states
            if state == Series.Render.FAILED
        ]
        status = Upload.Status.FAILED if failed else Upload.Status.DONE
        error = (
            ("The files were stored, but some images could not be rendered (" + "; ".join(failed) + ").")
            if failed
            else ""
        )
        changed = Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
            status=status,
            progress=100,
            stage=status,
            error=error,
            finished_at=timezone.now(),
            file="" if status == Upload.Status.DONE else upload.file,
        )
        if changed:
            if status == Upload.Status.DONE:
                storage.remove_tree(storage.upload_dir(upload.pk))
            audit_ingest_end(upload, status, error)


def audit_ingest_end(upload: Upload, status: str, error: str) -> None:
    from audit.models import AuditEvent
    from audit.services import record

    failed = status == Upload.Status.FAILED
    record(
        AuditEvent.Action.INGEST_FAILED if failed else AuditEvent.Action.INGEST_FINISHED,
        user=upload.owner,
        obj=upload,
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        detail={
            "files_dicom": upload.files_dicom,
            "files_skipped": upload.files_skipped,
            "studies": list(upload.studies.values_list("pk", flat=True)),
        },
    )
