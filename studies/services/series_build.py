"""Building a series from headers and files: rows, first image, decoded volume, render queue.

An ingest handles each series in three steps so that the first image comes as early as it can:

1. ``store_series``: from headers alone, lay the series out (volume or stack, planes and their
   sizes), move the new originals into place and write every row in one short transaction.
   The upload now lists the study and the series lists its planes.
2. ``write_first_image``: the image a viewer opens first (middle axial, or the first frame),
   decoded from the one or two files it needs, and the thumbnail.
3. ``decode_and_queue``: decode the whole series once, store the volume for on-demand
   rendering, and queue rendering of every plane image across the workers (a stack's images
   are rendered from that decode instead: each file is read and decoded once).

A series' derived files belong to its ``render_version``; concurrent ingests into one series are
detected by that version and retried.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from studies import scratch, storage
from studies.imaging import header_json, parallel, pixels
from studies.imaging.headers import Header, read_header
from studies.imaging.limits import RenderLimits
from studies.imaging.planes import STACK
from studies.imaging.presets import histogram_presets
from studies.imaging.render import Window, auto_window, encode_png, thumbnail
from studies.imaging.series import (
    StackImages,
    decode_volume,
    first_volume_image,
    is_inverted,
    slices_for_image,
    volume_dtype,
)
from studies.imaging.suv import series_values
from studies.imaging.volume import Layout, layout_series, volume_to_dict
from studies.models import Instance, Patient, Series, Study, Upload
from studies.services import image_source, locks, rendering, segmentations

MAX_RETRIES = 5
log = logging.getLogger(__name__)


class SeriesBusy(Exception):
    """Other ingests kept changing the same series."""


@dataclass
class SeriesPlan:
    series: Series
    version: int
    layout: Layout
    headers: list[Header]  # every instance of the series, old and new, in layout index order
    fresh: list[Header] = field(default_factory=list)  # stored by this ingest
    window: Window | None = None
    first_image_done: bool = False


def render_limits() -> RenderLimits:
    """What one series may cost to render (settings INGEST_MAX_FRAMES and the others below)."""
    return RenderLimits(
        max_frames=settings.INGEST_MAX_FRAMES,
        max_plane_images=settings.INGEST_MAX_PLANE_IMAGES,
        max_series_images=settings.INGEST_MAX_SERIES_IMAGES,
        max_pixels_per_byte=settings.INGEST_MAX_PIXELS_PER_BYTE,
    )


# --- step 1: rows ---------------------------------------------------------------------------


def store_series(upload: Upload, new_headers: list[Header], skips: list[dict]) -> SeriesPlan | None:
    """Store the new files of one series and its rows; None when nothing new was stored."""
    for _attempt in range(MAX_RETRIES):
        local_skips: list[dict] = []
        plan = _try_store(upload, new_headers, local_skips)
        if plan is not False:
            skips.extend(local_skips)
            return plan
    raise SeriesBusy("The same series was being changed by other uploads at the same time; try again.")


def _try_store(upload: Upload, new_headers: list[Header], skips: list[dict]):
    owner = upload.owner
    first = new_headers[0]
    series = _find_series(owner, first)
    seen_version = series.render_version if series else 0
    stored = dict(
        Instance.objects.filter(
            owner=owner, sop_instance_uid__in=[h.sop_instance_uid for h in new_headers]
        ).values_list("sop_instance_uid", "upload_id")
    )
    fresh = []
    for header in new_headers:
        if header.sop_instance_uid not in stored:
            fresh.append(header)
        elif stored[header.sop_instance_uid] != upload.pk:  # else: an earlier attempt of this upload
            skips.append({"name": header.name, "reason": "already stored (the same image was uploaded before)"})
    if not fresh:
        # Look again: another upload may have stored this series since we first looked.
        series = _find_series(owner, first)
        if series:
            link(upload, series)
        return None

    headers = (stored_headers(series) if series else []) + fresh
    layout = layout_series(headers, render_limits())
    with transaction.atomic():
        series = _series_row(owner, first)
        if series.render_version != seen_version:
            return False  # another ingest changed this series meanwhile: start again with its files
        _store_instances(upload, series, fresh)
        version = seen_version + 1
        window = header_window(headers, layout)
        update_series(series, layout, headers, version, window)
        update_study(series.study)
        link(upload, series)
    Upload.objects.filter(pk=upload.pk).update(files_dicom=F("files_dicom") + len(fresh))
    return SeriesPlan(series, version, layout, headers, fresh, window)


def _find_series(owner, header: Header) -> Series | None:
    return Series.objects.filter(
        study__owner=owner,
        study__study_instance_uid=header.study_instance_uid,
        series_instance_uid=header.series_instance_uid,
    ).first()


def stored_headers(series: Series) -> list[Header]:
    """Headers of the series' stored originals (fetched to this host when stored elsewhere)."""
    headers = []
    for instance in series.instances.all():
        try:
            path = storage.local_copy(instance.file)
        except FileNotFoundError:
            continue
        header = read_header(path, instance.sop_instance_uid)
        if isinstance(header, Header):
            header.instance_pk = instance.pk
            header.stored_name = instance.file
            headers.append(header)
    return headers


def _series_row(owner, header: Header) -> Series:
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
    series, _ = Series.objects.get_or_create(
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
    return Series.objects.select_for_update().select_related("study").get(pk=series.pk)


def _store_instances(upload: Upload, series: Series, fresh: list[Header]) -> None:
    """Rows for the new files. Each header's ``stored_name`` is its original's name in the storage,
    and its ``path`` where this ingest puts the file for reading: that file itself in a local
    storage folder, else the ingest's work folder (it is copied to the storage from there)."""
    rows = []
    # the folder of the series' originals: in the storage folder, or the ingest's work folder
    folder = storage.local_path(storage.series_originals_prefix(series.pk)) or (
        scratch.work_dir(upload.pk) / storage.series_originals_prefix(series.pk)
    )
    for header in fresh:
        relpath = storage.original_name(series.pk, header.sop_instance_uid)
        header.stored_name = relpath
        header.path = folder / relpath.rsplit("/", 1)[1]
        frame = header.frames[0] if header.frames else None
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
            )
        )
    Instance.objects.insert_new(rows)
    for header, row in zip(fresh, rows, strict=True):
        header.instance_pk = row.pk


def header_window(headers: list[Header], layout: Layout) -> Window | None:
    """The DICOM window of the middle image, if its file has one (colour images have none)."""
    if not layout.frames or headers[layout.frames[0].instance].is_color:
        return None
    middle = layout.frames[len(layout.frames) // 2]
    frame = headers[middle.instance].frames[middle.frame]
    if frame.window_center is not None and frame.window_width:
        return Window(frame.window_center, frame.window_width)
    return None


def update_series(series: Series, layout: Layout, headers: list[Header], version: int, window: Window | None) -> None:
    """Geometry, planes, counts and a new render version, from the layout (headers only)."""
    model = headers[layout.frames[0].instance]
    frame0 = model.frames[layout.frames[0].frame]
    frames_json = [[headers[ref.instance].instance_pk, ref.frame] for ref in layout.frames]
    if layout.volume:
        planes = {name: plane.to_dict() for name, plane in layout.planes.items()}
        layout_json = {"kind": "volume", "volume": volume_to_dict(layout.volume), "frames": frames_json}
    else:
        planes = {"stack": StackImages(headers, layout.stack).plane().to_dict()}
        layout_json = {"kind": "stack", "frames": frames_json}
    layout_json["notes"] = layout.notes
    pet = [headers[ref.instance].pet for ref in layout.frames if headers[ref.instance].pet is not None]
    layout_json["values"] = series_values(model.modality, pet)
    _mark_excluded(series, {headers[ref.instance].instance_pk: reason for ref, reason in layout.excluded})
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
        frame_of_reference_uid=model.frame_of_reference_uid,
        planes=planes,
        layout=layout_json,
        render_status=Series.Render.RENDERING,
        render_version=version,
        images_total=sum(p["count"] for p in planes.values()),
        images_done=0,
        render_error="",
    )


def _mark_excluded(series: Series, excluded: dict[int, str]) -> None:
    """Instances in or out of the volume (a later upload can change that for earlier ones)."""
    # only the rows that change: new rows are in already, and rewriting them all costs PostgreSQL a
    # new version of each (100 per series of the small-image upload)
    Instance.objects.filter(series=series).exclude(pk__in=excluded).exclude(in_volume=True, note="").update(
        in_volume=True, note=""
    )
    for pk, reason in excluded.items():
        Instance.objects.filter(pk=pk).update(in_volume=False, note=reason[:255])


def update_study(study: Study) -> None:
    series = list(Series.objects.filter(study=study).values_list("modality", "num_instances"))
    modalities = sorted({m for m, _ in series if m})
    Study.objects.filter(pk=study.pk).update(
        modalities="\\".join(modalities)[:128],
        num_series=len(series),
        num_instances=sum(n for _, n in series),
    )


def link(upload: Upload, series: Series) -> None:
    upload.studies.add(series.study_id)
    upload.series.add(series.pk)


def _set_window(plan: SeriesPlan, window: Window | None) -> None:
    plan.window = window
    Series.objects.filter(pk=plan.series.pk, render_version=plan.version).update(
        window_center=window.center if window else None, window_width=window.width if window else None
    )


# --- step 2: the first image ----------------------------------------------------------------


def write_first_image(plan: SeriesPlan, fetch=None) -> None:
    """Render the image a viewer opens first, from only the files it needs (if that is possible).

    ``fetch(headers)`` is called first to make sure those files are in place."""
    layout, headers = plan.layout, plan.headers
    try:
        if layout.volume:
            axial = layout.planes["axial"]
            needed = slices_for_image(layout.volume, axial)
            if needed is None:
                return  # the image crosses the slices: it comes with the whole volume
            if fetch:
                fetch([headers[layout.volume.frames[k].instance] for k in needed])
            invert = is_inverted(headers[layout.volume.frames[0].instance])
            image, window = first_volume_image(headers, layout.volume, axial, plan.window, invert)
            _write_image(plan, "axial", axial.count // 2, image)
        else:
            if fetch:  # the first frame, and the middle one that the default window comes from
                fetch([headers[layout.stack[0].instance], headers[layout.stack[len(layout.stack) // 2].instance]])
            stack = StackImages(headers, layout.stack)
            window = plan.window or stack.default_window()
            image = stack.display(0, plan.window)
            _write_image(plan, "stack", 0, image)
    except Exception:  # a file that cannot be decoded is reported by decode_and_queue
        return
    if plan.window is None and window is not None:
        _set_window(plan, window)
    plan.first_image_done = True


def _write_image(plan: SeriesPlan, plane: str, index: int, image: np.ndarray) -> None:
    series_id = plan.series.pk
    storage.save_bytes(storage.image_name(series_id, plan.version, plane, index), encode_png(image))
    storage.save_bytes(storage.thumbnail_name(series_id, plan.version), encode_png(thumbnail(image)))


# --- step 3: decode, store the volume, queue rendering --------------------------------------


def decode_and_queue(plan: SeriesPlan, skips: list[dict], upload: Upload | None = None) -> None:
    """Decode the series once; on success store what renders its images (the volume and
    source.json) and queue their rendering (a stack's images are stored from that decode).
    Files that fail to decode are dropped (if this ingest brought them) and the series is built
    again without them."""
    layout, headers = plan.layout, plan.headers
    series_id, version = plan.series.pk, plan.version
    volume_file = _volume_file(series_id, version)
    tmp = volume_file.with_suffix(".tmp.npy")
    chunked = False
    if layout.volume is not None:
        data, failures = _decode(headers, layout, tmp)
    elif chunked := renders_in_chunks(plan):
        failures, problem = _check_stack(plan), None
    else:
        failures, problem = _render_stack(plan)
        if problem:
            rendering.render_failed(series_id, version, problem)
            return
    if failures:
        tmp.unlink(missing_ok=True)
        drop_failures(plan, failures, skips, upload)
        return
    if layout.volume is not None:
        if plan.window is None:
            _set_window(plan, auto_window(data))
        presets = histogram_presets(plan.series.modality, data)
        data.flush()
        del data
        os.replace(tmp, volume_file)
        if not storage.is_local():
            storage.save_file(storage.volume_name(series_id, version), volume_file)
            scratch.note_added(volume_file)
    else:
        presets = _stack_presets(plan)
    series = Series.objects.get(pk=series_id)
    if series.render_version != version:
        return  # rebuilt by someone else meanwhile
    if presets:
        series.layout = {**(series.layout or {}), "presets": presets}
        Series.objects.filter(pk=series_id, render_version=version).update(layout=series.layout)
    _save_manifest(plan, series, layout, headers)
    segmentations.after_build(series_id, version)  # SEG overlays: this SEG, or SEGs of this series
    if not plan.first_image_done:
        source = image_source.source(series_id, version, headers=headers, frames=layout.stack or None)
        plane = "axial" if layout.volume else "stack"
        index = series.planes[plane]["count"] // 2 if layout.volume else 0
        _write_image(plan, plane, index, source.display(plane, index))
    if layout.volume is not None or chunked:
        transaction.on_commit(lambda: rendering.queue_series(series_id, version))
    else:  # its images were stored from the decode above
        transaction.on_commit(lambda: rendering.mark_rendered(series_id, version))


def _stack_presets(plan: SeriesPlan, frames: int = 5) -> list[dict]:
    """Window presets of a greyscale stack, from its middle frames (a stack's frames may differ in
    every way, so a few around the middle speak for it); none for colour."""
    stack, headers = plan.layout.stack, plan.headers
    middle = stack[max(0, len(stack) // 2 - frames // 2) :][:frames]
    if not middle or any(headers[ref.instance].is_color for ref in middle):
        return []
    images = StackImages(headers, stack)
    try:
        values = [np.asarray(images.instance_frames(ref.instance)[ref.frame], dtype=np.float32) for ref in middle]
    except Exception:  # a frame that does not decode has been reported; no presets then
        return []
    return histogram_presets(plan.series.modality, np.concatenate([v.reshape(-1) for v in values]))


def _volume_file(series_id: int, version: int) -> Path:
    """Where the decoded volume is written: in place in a local storage folder, else into this
    host's scratch cache (and from there to the storage), where this worker's chunks find it."""
    name = storage.volume_name(series_id, version)
    path = storage.local_path(name) or scratch.cache_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _save_manifest(plan: SeriesPlan, series: Series, layout: Layout, headers: list[Header]) -> None:
    """source.json: what the workers and the web need to render any image of this version."""
    frames = known = None
    if layout.volume is None:
        frames = [[headers[ref.instance].stored_name, ref.frame] for ref in layout.stack]
        used = {ref.instance for ref in layout.stack}
        known = {headers[i].stored_name: header_json.to_json(headers[i]) for i in sorted(used)}
    storage.save_json(
        storage.manifest_name(series.pk, plan.version),
        image_source.manifest(
            kind="volume" if layout.volume is not None else "stack",
            planes=series.planes,
            window=plan.window,
            invert=is_inverted(headers[layout.frames[0].instance]),
            volume=(series.layout or {}).get("volume"),
            frames=frames,
            values=(series.layout or {}).get("values"),
            headers=known,
        ),
    )


def _decode(headers: list[Header], layout: Layout, volume_file: Path):
    """Decode every file of a volume once, straight into its (memory-mapped) .npy file."""
    dtype = volume_dtype([headers[ref.instance] for ref in layout.volume.frames])
    out = np.lib.format.open_memmap(volume_file, mode="w+", dtype=dtype, shape=layout.volume.shape)
    return decode_volume(headers, layout.volume, threads=settings.INGEST_THREADS, out=out)


def renders_in_chunks(plan: SeriesPlan) -> bool:
    """A stack of small uncompressed greyscale images is rendered by render chunks, on the other
    workers while this ingest goes on (a PNG and its file are most of such an image's cost, its
    pixels one read): the ingest checks each file from its header alone, and the chunks read no
    header (the manifest keeps what they need). Big, compressed or colour images are rendered
    here, from the decode that checks them."""
    headers = plan.headers
    refs = plan.layout.stack
    return bool(refs) and all(
        pixels.is_plain_native(headers[ref.instance])
        and headers[ref.instance].rows * headers[ref.instance].columns < parallel.RENDER_THREADED_PIXELS
        for ref in refs
    )


def _check_stack(plan: SeriesPlan) -> dict[int, str]:
    """{header index: why it cannot be read} for the files of a stack that ``renders_in_chunks``:
    plain native files, whose header says whether their pixels are all there (each file was
    extracted whole, at the size its header was read with), so none is opened again here."""
    instances = dict.fromkeys(ref.instance for ref in plan.layout.stack)
    problems = {instance: pixels.native_problem(plan.headers[instance]) for instance in instances}
    return {instance: problem for instance, problem in problems.items() if problem}


def _render_stack(plan: SeriesPlan) -> tuple[dict[int, str], str | None]:
    """Decode every file of a stack once and store its images from that decode (a render chunk
    would read each file's header and decode it again). Answers ({header index: why it does not
    decode}, why the series cannot be rendered or None). Files decode and render on
    INGEST_THREADS threads when the images are big (the decoders, numpy and the deflate release
    the GIL; on small images one thread is faster)."""
    headers, stack, series_id, version = plan.headers, plan.layout.stack, plan.series.pk, plan.version
    images = StackImages(headers, stack)
    indexes: dict[int, list[int]] = {}
    for index, ref in enumerate(stack):
        indexes.setdefault(ref.instance, []).append(index)

    def work(instance: int) -> tuple[str | None, str | None]:
        try:
            frames = pixels.decode(headers[instance])
        except Exception as exc:  # DecodeError, or a decoder's own error on damaged data
            return str(exc) or "pixel data could not be decoded", None
        for index in indexes[instance]:
            try:
                png = encode_png(images.render(stack[index], frames[stack[index].frame]))
            except Exception as exc:
                log.exception("rendering series %s stack image %s failed", series_id, index)
                return None, f"rendering failed: {str(exc)[:200]}"
            storage.save_bytes(storage.image_name(series_id, version, STACK, index), png)
        return None, None

    failures: dict[int, str] = {}
    # Not forked processes: forked, the 3000 64x64 images of bench/ingest.py's `small` rendered in
    # 9.6 s against 7.1 s on threads (measured while this change was made); threads only on big
    # images (studies.imaging.parallel).
    model = headers[stack[0].instance] if stack else None
    pixels_per_frame = model.rows * model.columns if model else 0
    threads = parallel.threads_for(pixels_per_frame, parallel.RENDER_THREADED_PIXELS, settings.INGEST_THREADS)
    outcomes = list(parallel.map_on(threads, work, indexes))
    for instance, (failure, problem) in zip(indexes, outcomes, strict=True):
        if problem:
            return failures, problem
        if failure:
            failures[instance] = failure
    return failures, None


def drop_failures(plan: SeriesPlan, failures: dict[int, str], skips: list[dict], upload: Upload | None) -> None:
    """Forget the files that failed to decode (deleting those this ingest brought) and build the
    series again from the rest, as a new version."""
    fresh_ids = {id(h) for h in plan.fresh}
    dropped = []
    for index, reason in failures.items():
        header = plan.headers[index]
        skips.append({"name": header.name, "reason": reason})
        if id(header) in fresh_ids:
            dropped.append(header)
            Path(header.path).unlink(missing_ok=True)
    if not storage.is_local():
        storage.delete_many([h.stored_name for h in dropped])
    Instance.objects.filter(pk__in=[h.instance_pk for h in dropped]).delete()
    if upload is not None and dropped:
        Upload.objects.filter(pk=upload.pk).update(files_dicom=F("files_dicom") - len(dropped))
    headers = [h for i, h in enumerate(plan.headers) if i not in failures]
    if not headers:
        if not Instance.objects.filter(series=plan.series).exists():
            _delete_empty(plan.series)
        else:
            Series.objects.filter(pk=plan.series.pk).update(
                render_status=Series.Render.FAILED, render_error="no stored image could be decoded"
            )
        return
    dropped_ids = {id(h) for h in dropped}
    fresh = [h for h in plan.fresh if id(h) not in dropped_ids]
    _build_again(plan.series.pk, plan.version, headers, fresh, skips, upload)


def _build_again(series_id, seen_version, headers, fresh, skips, upload) -> None:
    layout = layout_series(headers, render_limits())
    with transaction.atomic():
        locked = Series.objects.select_for_update().select_related("study").get(pk=series_id)
        if locked.render_version != seen_version:
            return  # rebuilt by someone else meanwhile
        window = header_window(headers, layout)
        update_series(locked, layout, headers, seen_version + 1, window)
        update_study(locked.study)
    plan = SeriesPlan(locked, seen_version + 1, layout, headers, fresh, window)
    write_first_image(plan)
    decode_and_queue(plan, skips, upload)


def undo_upload(upload: Upload) -> None:
    """Remove what an interrupted attempt of this upload stored, so that running it again
    stores each instance exactly once. Series that keep other uploads' instances are rebuilt."""
    touched = set(Instance.objects.filter(upload=upload).values_list("series_id", flat=True))
    files = list(Instance.objects.filter(upload=upload).values_list("file", flat=True))
    Instance.objects.filter(upload=upload).delete()
    Upload.objects.filter(pk=upload.pk).update(files_dicom=0)
    try:
        storage.delete_many(files)
    except storage.StorageUnavailable as exc:  # the rows are gone; cleanup_uploads removes the files later
        log.warning("upload %s: %d stored files left for cleanup (%s)", upload.pk, len(files), exc)
    for series in Series.objects.filter(pk__in=touched).select_related("study__patient"):
        try:
            if series.instances.exists():
                series_rebuild(series.pk)
            else:
                _delete_empty(series)
        except storage.StorageUnavailable as exc:
            Series.objects.filter(pk=series.pk).update(
                render_status=Series.Render.FAILED, render_error=f"the file storage could not be used ({exc})"
            )


def _delete_empty(series: Series) -> None:
    study, series_id = series.study, series.pk
    series.delete()
    if not study.series.exists():
        patient = study.patient
        study.delete()
        if not patient.studies.exists():
            patient.delete()
    else:
        update_study(study)
    try:
        storage.remove_series_files(series_id)
    except storage.StorageUnavailable as exc:  # no row refers to them: cleanup_uploads removes them later
        log.warning("series %s: files left for cleanup (%s)", series_id, exc)


def series_rebuild(series_id: int) -> None:
    """Lay out, decode and render a series again from its stored originals, as a new version.
    Stored files that no longer decode are left out of the images (and noted), never deleted.
    A rebuild whose earlier runs killed their worker too often fails the series instead."""
    series = Series.objects.filter(pk=series_id).first()
    if series is None:
        return
    if series.rebuild_attempts >= settings.TASK_MAX_WORKER_DEATHS:
        Series.objects.filter(pk=series_id).update(
            render_status=Series.Render.FAILED,
            render_error=f"rendering again stopped the worker {series.rebuild_attempts} times (killed, or out of "
            "memory) and was given up",
            rebuild_attempts=0,  # a later re-run by hand may try again
        )
        rendering.finish_uploads_if_rendered(series_id=series_id)
        return
    with locks.counted_while_running(Series.objects.filter(pk=series_id), "rebuild_attempts"):
        _rebuild(series)


def _rebuild(series: Series) -> None:
    series_id = series.pk
    headers = stored_headers(series)
    if not headers:
        Series.objects.filter(pk=series_id).update(
            render_status=Series.Render.FAILED, render_error="no stored image could be read"
        )
        return
    _build_again(series_id, series.render_version, headers, [], [], None)
