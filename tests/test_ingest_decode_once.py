"""A stack is decoded once: its images come from the ingest's own decode (no render chunks reading
every file again), they are the images a render from the stored files gives, and its first image
is stored before the rest of the series is decoded. A stack of small uncompressed images is
rendered by render chunks instead (on the other workers), which read no header: the manifest
keeps what they need."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from studies import storage
from studies.imaging.render import encode_png
from studies.imaging.series import StackImages
from studies.imaging.volume import FrameRef
from studies.models import Series, Upload
from studies.services import image_source, rendering, series_build
from tests.conftest import ingest_zip, make_zip, stored_bytes
from tests.dicomgen import write_image

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


BIG = (400, 360)  # above studies.imaging.parallel.RENDER_THREADED_PIXELS: rendered by the ingest
SMALL = (40, 48)


def stack_zip(tmp_path, count: int = 7, size: tuple[int, int] = BIG):
    """``count`` MR images of ``size`` without geometry (a stack), no window in the files, one of
    them with a VOI window of its own."""
    rng = np.random.default_rng(5)
    study, series = generate_uid(), generate_uid()
    files = {}
    for k in range(count):
        pixels = (rng.normal(400 + 50 * k, 60, size)).clip(0, 4095).astype(np.uint16)
        extra = {"window": (500, 300)} if k == 3 else {}
        path = write_image(
            tmp_path / f"{k}.dcm",
            pixels,
            modality="MR",
            instance_number=k + 1,
            study_uid=study,
            series_uid=series,
            **extra,
        )
        files[f"S/{k}.dcm"] = path
    return make_zip(tmp_path / "stack.zip", files)


def test_big_stack_images_come_from_the_ingest_decode_without_render_chunks(user, tmp_path, monkeypatch):
    chunks = []
    real = rendering.render_chunk
    monkeypatch.setattr(rendering, "render_chunk", lambda *args: chunks.append(args) or real(*args))
    upload = ingest_zip(user, stack_zip(tmp_path))
    assert upload.status == Upload.Status.DONE, upload.error
    series = Series.objects.get(study__owner=user)
    assert series.render_status == Series.Render.DONE and series.images_done == series.images_total == 7
    assert chunks == []
    # the same bytes as an image rendered afresh from the stored originals (their own windows)
    image_source.clear()
    source = image_source.source(series.pk, series.render_version)
    for index in range(7):
        stored = stored_bytes(storage.image_name(series.pk, series.render_version, "stack", index))
        assert stored == encode_png(source.display("stack", index)), index
    assert storage.exists(storage.thumbnail_name(series.pk, series.render_version))
    assert storage.exists(storage.complete_name(series.pk, series.render_version))


def test_small_stack_images_are_rendered_by_chunks_that_read_no_header(user, tmp_path, monkeypatch):
    chunks, headers_read = [], []
    real_chunk, real_read = rendering.render_chunk, image_source.read_header
    monkeypatch.setattr(rendering, "render_chunk", lambda *args: chunks.append(args) or real_chunk(*args))
    monkeypatch.setattr(image_source, "read_header", lambda *args: headers_read.append(args) or real_read(*args))
    monkeypatch.setattr(series_build, "_render_stack", lambda plan: pytest.fail("rendered in the ingest"))
    upload = ingest_zip(user, stack_zip(tmp_path, size=SMALL))
    assert upload.status == Upload.Status.DONE, upload.error
    series = Series.objects.get(study__owner=user)
    assert series.render_status == Series.Render.DONE and series.images_done == series.images_total == 7
    assert chunks == [(series.pk, series.render_version, "stack", 0, 7)]  # small images: one chunk
    assert headers_read == []
    # the same bytes as images rendered from headers read afresh from the stored files (each file's
    # own window: one of them has a VOI window, the others none)
    stored_headers = series_build.stored_headers(series)
    by_uid = {header.sop_instance_uid: header for header in stored_headers}
    layout_uids = dict(series.instances.values_list("pk", "sop_instance_uid"))
    ordered = [by_uid[layout_uids[pk]] for pk, _frame in series.layout["frames"]]
    fresh = StackImages(ordered, [FrameRef(k, 0) for k in range(7)])
    for index in range(7):
        stored = stored_bytes(storage.image_name(series.pk, series.render_version, "stack", index))
        assert stored == encode_png(fresh.display(index)), index


def test_stack_first_image_is_stored_before_the_series_is_decoded(user, tmp_path, monkeypatch):
    seen = []
    real = series_build._render_stack

    def render_stack(plan):
        seen.append(storage.exists(storage.image_name(plan.series.pk, plan.version, "stack", 0)))
        return real(plan)

    monkeypatch.setattr(series_build, "_render_stack", render_stack)
    upload = ingest_zip(user, stack_zip(tmp_path))
    assert upload.status == Upload.Status.DONE, upload.error
    assert seen == [True]


def test_a_stack_file_that_does_not_decode_is_dropped_and_the_rest_rendered(user, tmp_path):
    path = stack_zip(tmp_path, count=4)
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    members["S/2.dcm"] = members["S/2.dcm"][:-500]  # pixel data cut short
    broken = make_zip(tmp_path / "broken.zip", members)
    upload = ingest_zip(user, broken)
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.files_dicom == 3
    series = Series.objects.get(study__owner=user)
    assert series.render_status == Series.Render.DONE and series.images_done == series.images_total == 3


def test_small_stacks_are_queued_for_rendering_before_the_next_series_is_stored(user, tmp_path, monkeypatch):
    """The other workers render a small stack while the ingest goes on to the next series; a big
    stack (rendered by the ingest itself) still gets its rows and first image before any decode."""
    import zipfile

    members = {}
    for name, count, size in (("big", 8, BIG), ("small7", 7, SMALL), ("small5", 5, SMALL)):
        folder = tmp_path / name
        folder.mkdir()
        with zipfile.ZipFile(stack_zip(folder, count=count, size=size)) as zf:
            members.update({f"{name}/{member}": zf.read(member) for member in zf.namelist()})
    events = []
    real_store, real_queue, real_render = series_build.store_series, rendering.queue_series, series_build._render_stack

    def store(upload, headers, skips):
        events.append(("stored", len(headers)))
        return real_store(upload, headers, skips)

    def queue(series_id, version):
        events.append(("queued", Series.objects.get(pk=series_id).num_instances))
        return real_queue(series_id, version)

    def render_stack(plan):
        events.append(("rendered by the ingest", len(plan.headers)))
        return real_render(plan)

    monkeypatch.setattr(series_build, "store_series", store)
    monkeypatch.setattr(rendering, "queue_series", queue)
    monkeypatch.setattr(series_build, "_render_stack", render_stack)
    upload = ingest_zip(user, make_zip(tmp_path / "three.zip", members))
    assert upload.status == Upload.Status.DONE, upload.error
    assert events == [
        ("stored", 8),
        ("stored", 7),
        ("queued", 7),
        ("stored", 5),
        ("queued", 5),
        ("rendered by the ingest", 8),
    ]
    assert set(Series.objects.filter(study__owner=user).values_list("render_status", flat=True)) == {"done"}
