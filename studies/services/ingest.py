"""Ingest of an uploaded ZIP: extract, read headers, store originals and rows, decode volumes.

Rendering of plane images is queued as separate tasks (``studies.services.rendering``) so that
it spreads over every worker process. Pure work (decoding) happens outside transactions; rows
are written in one short transaction per series.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from studies import storage
from studies.imaging import archive
from studies.imaging.headers import Header, read_header
from studies.imaging.planes import plan_planes
from studies.imaging.render import encode_png, thumbnail
from studies.imaging.series import StackImages, decode_volume, default_window
from studies.imaging.volume import Layout, layout_series, volume_to_dict
from studies.models import Instance, Patient, Series, Study, Upload
from studies.services import rendering

log = logging.getLogger(__name__)

# progress bands of the ingest stages; rendering fills the rest (see upload_progress)
STAGE_BANDS = {"extracting": (0, 20), "reading": (20, 35), "storing": (35, 50), "rendering": (50, 100)}
MAX_SERIES_RETRIES = 5


class IngestFailed(Exception):
    """The upload cannot be ingested; the message is for the uploader."""


@dataclass
class IngestState:
    upload: Upload
    skipped: list[dict] = field(default_factory=list)
    stored: int = 0
    last_progress_write: float = 0.0

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name, "reason": reason})

    def progress(self, stage: str, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress_write < 0.25:
            return
        self.last_progress_write = now
        low, high = STAGE_BANDS[stage]
        value = int(low + (high - low) * min(max(fraction, 0.0), 1.0))
        Upload.objects.filter(pk=self.upload.pk).update(stage=stage, progress=value)


def archive_limits() -> archive.Limits:
    return archive.Limits(
        max_members=settings.INGEST_MAX_MEMBERS,
        max_total_bytes=settings.INGEST_MAX_TOTAL_BYTES,
        max_member_bytes=settings.INGEST_MAX_MEMBER_BYTES,
        max_ratio=settings.INGEST_MAX_RATIO,
    )


def upload_ingest(upload_id: int) -> None:
    """Run the ingest of one upload. Safe to run again for the same upload (redelivery)."""
    upload = Upload.objects.select_related("owner").filter(pk=upload_id).first()
    if upload is None or upload.is_finished:
        return
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.PROCESSING,
        stage="extracting",
        progress=0,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        error="",
    )
    state = IngestState(upload)
    work = storage.work_dir(upload.pk)
    storage.remove_tree(work)
    try:
        _ingest(state, work)
    except (archive.ArchiveError, IngestFailed) as exc:
        _fail(state, str(exc))
    except SoftTimeLimitExceeded:
        _fail(state, f"The ingest took longer than the limit of {settings.INGEST_TIME_LIMIT} seconds and was stopped.")
    except Exception:
        log.exception("ingest of upload %s failed", upload.pk)
        _fail(
            state,
            "An internal error stopped the ingest. The files that were already stored are kept; "
            "try again, and tell the administrator if it happens again.",
        )
    finally:
        storage.remove_tree(work)


def _ingest(state: IngestState, work) -> None:
    upload = state.upload
    zip_path = storage.absolute(upload.file)
    result = archive.extract_zip(
        zip_path,
        work,
        archive_limits(),
        progress=lambda done, total: state.progress("extracting", done / max(total, 1)),
    )
    for item in result.skipped:
        state.skip(item.name, item.reason)
    Upload.objects.filter(pk=upload.pk).update(files_total=result.members)

    headers = _read_headers(state, result.files)
    if not headers:
        raise IngestFailed("No DICOM images were found in the archive (see the skipped files for why).")
    groups: dict[tuple[str, str], list[Header]] = defaultdict(list)
    seen: set[str] = set()
    for header in headers:
        if header.sop_instance_uid in seen:
            state.skip(header.name, "same SOPInstanceUID as another file in this upload (duplicate)")
            continue
        seen.add(header.sop_instance_uid)
        groups[(header.study_instance_uid, header.series_instance_uid)].append(header)

    # Largest series first: the one a viewer most likely opens starts rendering first.
    ordered = sorted(groups.values(), key=len, reverse=True)
    done_frames = 0
    total_frames = sum(len(g) for g in ordered)
    for group in ordered:
        _ingest_series(state, group)
        done_frames += len(group)
        state.progress("storing", done_frames / total_frames, force=True)
    _finish_stage(state)


def _read_headers(state: IngestState, files: list[archive.Extracted]) -> list[Header]:
    headers: list[Header] = []
    total = len(files)

    def read(item):
        return read_header(item.path, item.name)

    with ThreadPoolExecutor(max_workers=settings.INGEST_THREADS) as pool:
        for number, header in enumerate(pool.map(read, files), start=1):
            if isinstance(header, Header):
                headers.append(header)
            else:
                state.skip(header.name, header.reason)
            state.progress("reading", number / max(total, 1))
    return headers


def _ingest_series(state: IngestState, new_headers: list[Header]) -> None:
    """Store one series' new files and rebuild its images. Retries if another ingest wins a race."""
    for _attempt in range(MAX_SERIES_RETRIES):
        if _try_series(state, new_headers):
            return
    raise IngestFailed("The same series was being changed by other uploads at the same time; try again.")


def _try_series(state: IngestState, new_headers: list[Header]) -> bool:
    upload = state.upload
    owner = upload.owner
    first = new_headers[0]
    series = (
        Series.objects.select_related("study")
        .filter(
            study__owner=owner,
            study__study_instance_uid=first.study_instance_uid,
            series_instance_uid=first.series_instance_uid,
        )
        .first()
    )
    seen_version = series.render_version if series else None

    stored = dict(
        Instance.objects.filter(
            owner=owner, sop_instance_uid__in=[h.sop_instance_uid for h in new_headers]
        ).values_list("sop_instance_uid", "upload_id")
    )
    fresh = []
    for header in new_headers:
        if header.sop_instance_uid not in stored:
            fresh.append(header)
        elif stored[header.sop_instance_uid] == upload.pk:
            pass  # stored by an earlier attempt of this very upload (task redelivered)
        else:
            state.skip(header.name, "already stored (the same image was uploaded before)")
    if not fresh:
        if series:
            _link(upload, series)
        return True

    all_headers = (_stored_headers(series) if series else []) + fresh

    layout, data, failures = _decode(all_headers)
    while failures:
        for index, reason in failures.items():
            header = all_headers[index]
            state.skip(header.name, reason)
        all_headers = [h for i, h in enumerate(all_headers) if i not in failures]
        kept = {id(h) for h in all_headers}
        fresh = [h for h in fresh if id(h) in kept]
        if not fresh:
            return True
        layout, data, failures = _decode(all_headers)

    with transaction.atomic():
        series = _series_row(owner, first, seen_version)
        if series is None:
            return False  # someone else changed this series meanwhile: start again with theirs
        _store_instances(upload, series, fresh, layout, all_headers)
        version = series.render_version + 1
        images_total = _update_series(series, layout, all_headers, data, version)
        _update_study(series.study)
        _link(upload, series)
    state.stored += len(fresh)
    Upload.objects.filter(pk=upload.pk).update(files_dicom=F("files_dicom") + len(fresh))
    _write_derived(series, version, layout, all_headers, data)
    transaction.on_commit(lambda: rendering.queue_series(series.pk, version, images_total))
    return True


def _stored_headers(series: Series) -> list[Header]:
    """Headers of the series' stored originals (for re-laying it out with new files)."""
    headers = []
    for instance in series.instances.all():
        header = read_header(storage.absolute(instance.file), instance.sop_instance_uid)
        if isinstance(header, Header):
            header.instance_pk = instance.pk
            headers.append(header)
    return headers


def series_rebuild(series_id: int) -> None:
    """Lay out, decode and render a series again from its stored originals, as a new version."""
    series = Series.objects.filter(pk=series_id).first()
    if series is None:
        return
    seen_version = series.render_version
    headers = _stored_headers(series)
    if not headers:
        return
    layout, data, failures = _decode(headers)
    if failures:
        headers = [h for i, h in enumerate(headers) if i not in failures]
        if not headers:
            Series.objects.filter(pk=series_id).update(
                render_status=Series.Render.FAILED, render_error="no stored image could be decoded"
            )
            return
        layout, data, _ = _decode(headers)
    with transaction.atomic():
        locked = Series.objects.select_for_update().get(pk=series_id)
        if locked.render_version != seen_version:
            return  # rebuilt by someone else meanwhile
        version = seen_version + 1
        images_total = _update_series(locked, layout, headers, data, version)
    _write_derived(locked, version, layout, headers, data)
    transaction.on_commit(lambda: rendering.queue_series(series_id, version, images_total))


def _decode(headers: list[Header]):
    layout = layout_series(headers)
    if layout.volume:
        data, failures = decode_volume(headers, layout.volume, threads=settings.INGEST_THREADS)
        return layout, data, failures
    failures = {}
    stack = StackImages(headers, layout.stack)
    for index in sorted({ref.instance for ref in layout.stack}):
        try:
            stack.instance_frames(index)
        except Exception as exc:  # DecodeError, or a decoder's own error on damaged data
            failures[index] = str(exc) or "pixel data could not be decoded"
    return layout, None, failures


def _series_row(owner, header: Header, seen_version) -> Series | None:
    """Get or create patient, study and series rows; None if the series changed meanwhile."""
    patient, _ = Patient.objects.get_or_create(
        owner=owner,
        patient_id=header.patient_id[:64],
        issuer_of_patient_id=header.issuer_of_patient_id[:64],
        anonymous_key="" if header.patient_id else header.study_instance_uid,
        defaults={
            "name": header.patient_name[:324],
            "birth_date": header.patient_birth_date,
            "sex": header.patient_sex,
        },
    )
    study, _ = Study.objects.get_or_create(
        owner=owner,
        study_instance_uid=header.study_instance_uid,
        defaults={
            "patient": patient,
            "study_date": header.study_date,
            "study_time": header.study_time,
            "description": header.study_description[:256],
            "accession_number": header.accession_number[:64],
            "study_id": header.study_id[:64],
            "referring_physician_name": header.referring_physician_name[:324],
        },
    )
    series, created = Series.objects.get_or_create(
        study=study,
        series_instance_uid=header.series_instance_uid,
        defaults={
            "modality": header.modality,
            "description": header.series_description[:256],
            "series_number": header.series_number,
            "body_part_examined": header.body_part_examined[:64],
            "series_date": header.series_date,
            "series_time": header.series_time,
        },
    )
    series = Series.objects.select_for_update().select_related("study").get(pk=series.pk)
    expected = 0 if seen_version is None else seen_version
    if series.render_version != expected:
        return None
    return series


def _store_instances(upload: Upload, series: Series, fresh: list[Header], layout: Layout, all_headers) -> None:
    excluded = {ref.instance: reason for ref, reason in layout.excluded}
    index_of = {id(h): i for i, h in enumerate(all_headers)}
    rows = []
    for header in fresh:
        relpath = storage.original_relpath(series.pk, header.sop_instance_uid)
        target = storage.absolute(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(header.path, target)
        header.path = target
        frame = header.frames[0] if header.frames else None
        reason = excluded.get(index_of[id(header)], "")
        rows.append(
            Instance(
                series=series,
                owner=upload.owner,
                upload=upload,
                sop_instance_uid=header.sop_instance_uid,
                sop_class_uid=header.sop_class_uid[:64],
                instance_number=header.instance_number,
                transfer_syntax_uid=header.transfer_syntax_uid[:64],
                rows=header.rows,
                columns=header.columns,
                number_of_frames=header.number_of_frames,
                samples_per_pixel=header.samples_per_pixel,
                photometric_interpretation=header.photometric_interpretation[:32],
                bits_allocated=header.bits_allocated,
                bits_stored=header.bits_stored,
                pixel_representation=header.pixel_representation,
                image_position=list(frame.position) if frame and frame.position else None,
                image_orientation=list(frame.orientation) if frame and frame.orientation else None,
                pixel_spacing=list(frame.spacing) if frame and frame.spacing else None,
                window_center=frame.window_center if frame else None,
                window_width=frame.window_width if frame else None,
                rescale_slope=frame.slope if frame else 1.0,
                rescale_intercept=frame.intercept if frame else 0.0,
                file=relpath,
                file_size=header.file_size,
                in_volume=layout.volume is None or not reason,
                note=reason[:255],
            )
        )
    created = Instance.objects.bulk_create(rows)
    for header, row in zip(fresh, created, strict=True):
        header.instance_pk = row.pk


def _update_series(series: Series, layout: Layout, headers: list[Header], data, version: int) -> int:
    """Geometry, planes and counts from the new layout; returns the number of images to render."""
    model = headers[layout.frames[0].instance]
    frame0 = model.frames[layout.frames[0].frame]
    frames_json = [[headers[ref.instance].instance_pk, ref.frame] for ref in layout.frames]
    if layout.volume:
        window = default_window(headers, layout.volume.frames, data)
        planes = {name: plane.to_dict() for name, plane in plan_planes(layout.volume).items()}
        layout_json = {"kind": "volume", "volume": volume_to_dict(layout.volume), "frames": frames_json}
    else:
        stack = StackImages(headers, layout.stack)
        planes = {"stack": stack.plane().to_dict()}
        window = stack.default_window()
        layout_json = {"kind": "stack", "frames": frames_json}
    layout_json["notes"] = layout.notes
    # Instances now in or out of the volume (a later upload can change that for earlier ones).
    excluded = {headers[ref.instance].instance_pk: reason for ref, reason in layout.excluded}
    if excluded:
        Instance.objects.filter(pk__in=excluded).update(in_volume=False)
    Instance.objects.filter(series=series).exclude(pk__in=excluded).update(in_volume=True, note="")
    for pk, reason in excluded.items():
        Instance.objects.filter(pk=pk).update(note=reason[:255])
    images_total = sum(p["count"] for p in planes.values())
    spacing = frame0.spacing or (None, None)
    Series.objects.filter(pk=series.pk).update(
        rows=model.rows,
        columns=model.columns,
        pixel_spacing_row_mm=spacing[0],
        pixel_spacing_col_mm=spacing[1],
        slice_thickness_mm=model.slice_thickness,
        slice_spacing_mm=layout.volume.slice_spacing_mm if layout.volume else None,
        image_orientation=list(frame0.orientation) if frame0.orientation else None,
        photometric_interpretation=model.photometric_interpretation,
        num_instances=len(headers),
        num_frames=sum(h.number_of_frames for h in headers),
        window_center=window.center if window else None,
        window_width=window.width if window else None,
        is_volume=layout.volume is not None,
        planes=planes,
        layout=layout_json,
        render_status=Series.Render.RENDERING,
        render_version=version,
        images_total=images_total,
        images_done=0,
        render_error="",
    )
    return images_total


def _update_study(study: Study) -> None:
    series = list(Series.objects.filter(study=study).values_list("modality", "num_instances"))
    modalities = sorted({m for m, _ in series if m})
    Study.objects.filter(pk=study.pk).update(
        modalities="\\".join(modalities)[:128],
        num_series=len(series),
        num_instances=sum(n for _, n in series),
    )


def _link(upload: Upload, series: Series) -> None:
    upload.studies.add(series.study_id)
    upload.series.add(series.pk)


def _write_derived(series: Series, version: int, layout: Layout, headers, data) -> None:
    """The stored volume (for rendering in any process) and the thumbnail, right away."""
    series = Series.objects.get(pk=series.pk)
    if layout.volume is not None:
        path = storage.volume_path(series.pk, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.ascontiguousarray(data))
        os.replace(tmp, path)
        images = rendering.series_images(series)
        first_plane = "axial"
    else:
        images = rendering.series_images(series, headers=headers, frames=layout.stack)
        first_plane = "stack"
    index = series.planes[first_plane]["count"] // 2 if first_plane == "axial" else 0
    image = rendering.display(images, first_plane, index)
    storage.write_atomic(storage.image_path(series.pk, version, first_plane, index), encode_png(image))
    storage.write_atomic(storage.thumbnail_path(series.pk, version), encode_png(thumbnail(image)))


def _finish_stage(state: IngestState) -> None:
    upload = state.upload
    Upload.objects.filter(pk=upload.pk).update(
        skipped=state.skipped,
        files_skipped=len(state.skipped),
        stage="rendering",
        progress=STAGE_BANDS["rendering"][0],
    )
    if not upload.series.exists() and not upload.studies.exists():
        reasons = {item["reason"] for item in state.skipped}
        message = "None of the DICOM files could be stored."
        if len(reasons) == 1:
            message += f" Every file was skipped: {reasons.pop()}."
        _fail(state, message)
        return
    rendering.finish_uploads_if_rendered(upload_ids=[upload.pk])


def _fail(state: IngestState, message: str) -> None:
    changed = (
        Upload.objects.filter(pk=state.upload.pk)
        .exclude(status=Upload.Status.FAILED)
        .update(
            status=Upload.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
            stage="failed",
            skipped=state.skipped,
            files_skipped=len(state.skipped),
        )
    )
    if changed:
        state.upload.refresh_from_db()
        rendering.audit_ingest_end(state.upload, Upload.Status.FAILED, message)


def upload_progress(upload: Upload) -> int:
    """0-100: the ingest stages, then the share of this upload's images already rendered."""
    if upload.status == Upload.Status.DONE:
        return 100
    if upload.stage != "rendering":
        return upload.progress
    totals = upload.series.aggregate(total=Sum("images_total"), done=Sum("images_done"))
    low, high = STAGE_BANDS["rendering"]
    if not totals["total"]:
        return low
    return int(low + (high - low) * min(1.0, totals["done"] / totals["total"]))
