"""Work proportional to input: headers whose counts do not fit their data are refused before
anything is allocated, and no upload renders more images than its bytes justify. Each hostile
file sits beside a good one, which is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless
from scipy.spatial.transform import Rotation

from studies.imaging import pixels
from studies.imaging.headers import Frame, Header, read_header
from studies.imaging.planes import plan_planes
from studies.imaging.series import StackImages
from studies.imaging.volume import layout_series
from studies.models import Instance, Series, Upload
from tests.conftest import REPO, ingest_zip, make_zip
from tests.dicomgen import make_dataset, save, write_volume

# An oblique orientation (30 degrees about z, then about x): no plane is parallel to the slices.
_R = Rotation.from_euler("zx", [30, 30], degrees=True).as_matrix()
OBLIQUE = (*_R[:, 0], *_R[:, 1])


def frames_bomb(path, frames: int, rows: int = 4, columns: int = 4):
    """A native image of ``rows`` x ``columns`` holding one frame but claiming ``frames``."""
    ds = make_dataset(np.zeros((rows, columns), np.uint8))
    ds.NumberOfFrames = frames
    return save(ds, path)


def many_frames(path, frames: int):
    """A 1 x 1 image with ``frames`` real frames (one byte each)."""
    ds = make_dataset(np.zeros((1, 1), np.uint8))
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(frames + frames % 2)
    return save(ds, path)


def oblique_needles(folder):
    """3 slices of 8 x 8 at 0.001 mm pixels, 100 mm apart, oblique: planes of ~10^5 images."""
    return write_volume(
        folder, np.full((3, 8, 8), 50, np.uint16), orientation=OBLIQUE, spacing=(0.001, 0.001), slice_step=100.0
    )


def planned_images(layout) -> int:
    if layout.volume is None:
        return len(layout.stack)
    planes = getattr(layout, "planes", None) or plan_planes(layout.volume)
    return sum(plane.count for plane in planes.values())


# --- headers: counts checked before anything per frame is built ---------------------------------


def test_a_frame_count_bomb_is_refused_at_once_in_little_memory(tmp_path):
    """4 x 4 pixels claiming 2^31 - 1 frames: refused in well under a second by a process that may
    not use more than 600 MB (it used to build a list of 2^31 frames: 13 GB and counting)."""
    path = frames_bomb(tmp_path / "bomb.dcm", 2**31 - 1)
    script = textwrap.dedent(
        f"""
        import resource, time
        from studies.imaging.headers import read_header
        resource.setrlimit(resource.RLIMIT_AS, (600 * 1024**2, 600 * 1024**2))
        started = time.monotonic()
        result = read_header({str(path)!r})
        print(round(time.monotonic() - started, 3))
        print(getattr(result, "reason", "read"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    seconds, reason = done.stdout.strip().splitlines()
    assert "2,147,483,647 frames" in reason
    assert float(seconds) < 1.0


def test_compressed_frames_need_a_fragment_each(tmp_path):
    ds = make_dataset(np.zeros((1, 1), np.uint16))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.NumberOfFrames = 200_000  # one 4-byte fragment can not hold 200,000 frames
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    found = read_header(save(ds, tmp_path / "few-fragments.dcm"))
    assert not isinstance(found, Header)
    assert "200,000 compressed frames" in found.reason and "room for at most" in found.reason


def test_files_with_more_frames_than_the_cap_are_skipped(tmp_path):
    path = many_frames(tmp_path / "cine.dcm", 50_000)
    assert isinstance(read_header(path), Header)  # the data holds them: only the cap refuses them
    found = read_header(path, max_frames=10_000)
    assert not isinstance(found, Header) and "claims 50,000 frames" in found.reason


# --- layout: planes and stacks within the limits ------------------------------------------------


def test_oblique_needles_render_a_bounded_number_of_images(tmp_path):
    headers = [read_header(p) for p in oblique_needles(tmp_path)]
    layout = layout_series(headers)
    assert planned_images(layout) <= 3  # it planned an axial plane of 10^5 images
    assert layout.volume is None and "no axial, coronal or sagittal planes" in layout.notes[0]


def test_a_plane_longer_than_the_cap_takes_larger_steps(tmp_path):
    from studies.imaging.limits import RenderLimits

    paths = write_volume(tmp_path, np.zeros((12, 6, 6), np.uint16), spacing=(1.0, 1.0), slice_step=1.0)
    layout = layout_series([read_header(p) for p in paths], RenderLimits(max_plane_images=8))
    axial = layout.planes["axial"]
    assert axial.count == 8 and axial.step_mm == pytest.approx(11 / 7)
    assert layout.planes["coronal"].count == 6  # the others were within the cap
    assert any("larger steps" in note for note in layout.notes)


def test_a_stack_of_tiny_frames_stops_at_the_pixel_budget(tmp_path):
    """5,000 frames of 1 x 1 (within the frame cap): each image costs at least a 32 x 32 one."""
    header = read_header(many_frames(tmp_path / "dots.dcm", 5_000))
    layout = layout_series([header])
    kept = len(layout.stack)
    assert 1 <= kept <= 256 * header.file_size // 1024 + 1
    assert len(layout.excluded) == 5_000 - kept and "INGEST_MAX_PIXELS_PER_BYTE" in layout.excluded[0][1]


def test_stretched_pixels_are_shown_at_most_4096_long(tmp_path):
    header = read_header(save(make_dataset(np.zeros((8, 8), np.uint16), spacing=(100, 0.001)), tmp_path / "s.dcm"))
    plane = StackImages([header], layout_series([header]).stack).plane()
    assert plane.height == 4096 and plane.width == 8  # it was 8 x 800,000


def synthetic_headers(slices, size, pixel_mm, slice_mm, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0)) -> list[Header]:
    """Headers of a 16-bit volume (no pixel files: the layout needs only headers)."""
    normal = np.cross(orientation[:3], orientation[3:])
    frame_size = size * size * 2 + 1500  # pixels and a typical header
    return [
        Header(
            path=f"{k}.dcm",
            name=f"{k}.dcm",
            sop_instance_uid=f"1.2.{k}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            study_instance_uid="1.2.3",
            series_instance_uid="1.2.3.4",
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            rows=size,
            columns=size,
            bits_allocated=16,
            bits_stored=12,
            file_size=frame_size,
            frames=[Frame(tuple(float(v) for v in k * slice_mm * normal), tuple(orientation), (pixel_mm, pixel_mm))],
        )
        for k in range(slices)
    ]


@pytest.mark.parametrize(
    ("slices", "size", "pixel_mm", "slice_mm", "orientation"),
    [
        (1000, 512, 0.7, 0.625, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)),  # a 1000-slice CT
        (3000, 512, 0.8, 0.5, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)),  # whole body at 0.5 mm
        (30, 512, 0.4, 10.0, OBLIQUE),  # thick oblique MR slices: planes 25x finer than the slices
    ],
)
def test_the_default_caps_leave_real_volumes_whole(slices, size, pixel_mm, slice_mm, orientation):
    headers = synthetic_headers(slices, size, pixel_mm, slice_mm, orientation)
    layout = layout_series(headers)
    assert layout.volume is not None and layout.excluded == [], layout.notes
    assert layout.planes == plan_planes(layout.volume)  # the planes of no cap at all
    assert not any("INGEST_" in note for note in layout.notes)


# --- ingest: the hostile file is skipped or capped, the good one kept ----------------------------


@pytest.fixture
def good(tmp_path):
    return save(make_dataset(np.full((32, 32), 100, np.uint16), modality="MR"), tmp_path / "good.dcm")


def skipped(upload) -> dict:
    return {item["name"]: item["reason"] for item in upload.skipped}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_an_upload_with_frame_bombs_keeps_its_good_image(user, tmp_path, good):
    files = {
        "good.dcm": good,
        "bomb.dcm": frames_bomb(tmp_path / "bomb.dcm", 2**31 - 1),
        "cine.dcm": many_frames(tmp_path / "cine.dcm", 50_000),
    }
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", files))
    assert upload.status == Upload.Status.DONE, upload.error
    reasons = skipped(upload)
    assert "2,147,483,647 frames" in reasons["bomb.dcm"]
    assert "claims 50,000 frames" in reasons["cine.dcm"] and "INGEST_MAX_FRAMES" in reasons["cine.dcm"]
    assert upload.files_dicom == 1 and Instance.objects.get().file_size == good.stat().st_size
    assert Series.objects.get().images_total == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_oblique_needles_beside_a_good_image_render_a_few_images(user, tmp_path, good):
    files = {"good.dcm": good, **{f"needle{k}.dcm": p for k, p in enumerate(oblique_needles(tmp_path / "n"))}}
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", files))
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.files_dicom == 4 and upload.skipped == []
    needles = Series.objects.get(num_instances=3)
    assert not needles.is_volume and needles.images_total == 3 and needles.render_status == Series.Render.DONE
    assert "no axial, coronal or sagittal planes" in needles.layout["notes"][0]
    assert Series.objects.exclude(pk=needles.pk).get().images_done == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_frames_over_the_budget_are_left_out_with_their_reason(user, tmp_path, good, settings):
    settings.INGEST_MAX_SERIES_IMAGES = 5
    paths = write_volume(tmp_path / "v", np.zeros((8, 8, 8), np.uint16), slice_step=2.0, modality="MR")
    files = {"good.dcm": good, **{p.name: p for p in paths}}
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", files))
    assert upload.status == Upload.Status.DONE, upload.error
    series = Series.objects.get(num_instances=8)
    assert series.images_total == 5 and series.planes == {"stack": series.planes["stack"]}
    notes = list(Instance.objects.filter(series=series, in_volume=False).values_list("note", flat=True))
    assert len(notes) == 3 and all("INGEST_MAX_SERIES_IMAGES" in note for note in notes)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_running_out_of_memory_while_decoding_skips_that_file(user, tmp_path, good, monkeypatch):
    paths = write_volume(tmp_path / "v", np.full((4, 16, 16), 9, np.uint16), slice_step=2.0, modality="MR")
    greedy = paths[1].name
    read_native = pixels._read_native

    def out_of_memory(header):
        if header.name == greedy:
            raise MemoryError()
        return read_native(header)

    monkeypatch.setattr(pixels, "_read_native", out_of_memory)
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", {"good.dcm": good, **{p.name: p for p in paths}}))
    assert upload.status == Upload.Status.DONE, upload.error
    assert "not enough memory to decode" in skipped(upload)[greedy]
    assert upload.files_dicom == 4 and Series.objects.get(num_instances=3).is_volume


def test_the_worker_memory_cap_turns_a_huge_allocation_into_a_memory_error():
    script = textwrap.dedent(
        """
        import numpy as np
        from dicomviewer.celery import limit_memory
        limit_memory(300)
        try:
            np.ones(400 * 1024**2, np.uint8)
            print("allocated")
        except MemoryError:
            print("MemoryError")
        np.ones(50 * 1024**2, np.uint8)  # what fits still does
        """
    )
    env = {"DJANGO_SETTINGS_MODULE": "dicomviewer.settings", "SECRET_KEY": "x" * 60, "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.stdout.strip() == "MemoryError", done.stderr


# --- poison render chunks -------------------------------------------------------------------


@pytest.fixture
def rendered_series(user, tmp_path, good):
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", {"good.dcm": good}))
    assert upload.status == Upload.Status.DONE, upload.error
    series = Series.objects.get()
    Series.objects.filter(pk=series.pk).update(render_status=Series.Render.RENDERING, images_done=0)
    return series


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_a_chunk_that_killed_its_worker_twice_fails_its_series(rendered_series, settings):
    from studies.models import RenderedChunk
    from studies.services import rendering

    series = rendered_series
    RenderedChunk.objects.create(
        series=series, version=series.render_version, plane="stack", start=0, done=False, attempts=2
    )
    rendering.render_chunk(series.pk, series.render_version, "stack", 0, 1)  # the third delivery
    series.refresh_from_db()
    assert series.render_status == Series.Render.FAILED and series.images_done == 0
    assert "stopped the worker 2 times" in series.render_error


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_a_chunk_that_ends_without_dying_is_not_counted_as_a_death(rendered_series, monkeypatch):
    from studies import storage
    from studies.models import RenderedChunk
    from studies.services import rendering

    series = rendered_series

    def outage(*args):
        raise storage.StorageUnavailable("down")

    monkeypatch.setattr(rendering, "_render_and_store", outage)
    for _retry in range(3):  # the task retries a storage outage: none of these is a death
        with pytest.raises(storage.StorageUnavailable):
            rendering.render_chunk(series.pk, series.render_version, "stack", 0, 1)
    assert RenderedChunk.objects.get().attempts == 0
    monkeypatch.undo()
    rendering.render_chunk(series.pk, series.render_version, "stack", 0, 1)
    series.refresh_from_db()
    assert series.render_status == Series.Render.DONE and series.images_done == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_a_rebuild_that_killed_its_worker_twice_fails_its_series(rendered_series):
    from studies.services import series_build

    series = rendered_series
    series_build.series_rebuild(series.pk)  # a rebuild that ends, however it ends, is not a death
    series.refresh_from_db()
    assert series.render_status == Series.Render.DONE and series.rebuild_attempts == 0
    Series.objects.filter(pk=series.pk).update(rebuild_attempts=2)  # two deliveries died
    series_build.series_rebuild(series.pk)  # the third
    series.refresh_from_db()
    assert series.render_status == Series.Render.FAILED
    assert "stopped the worker 2 times" in series.render_error and series.rebuild_attempts == 0


@pytest.fixture
def rendered_volume(user, tmp_path):
    """A volume left rendering: its planes are rendered in chunks by any worker (a stack's images
    come from the ingest's own decode, so only volumes have chunks a worker can die in)."""
    paths = write_volume(tmp_path / "ct", np.full((4, 16, 16), 40, np.int16), modality="CT")
    upload = ingest_zip(user, make_zip(tmp_path / "v.zip", {p.name: p.read_bytes() for p in paths}))
    assert upload.status == Upload.Status.DONE, upload.error
    series = Series.objects.get()
    assert series.is_volume
    Series.objects.filter(pk=series.pk).update(render_status=Series.Render.RENDERING, images_done=0)
    return series


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_a_chunk_that_kills_the_worker_is_not_rebuilt_at_every_start(rendered_volume, monkeypatch):
    """The filesystem broker loses a killed worker's messages: the next worker rebuilds series left
    rendering. A chunk that was under way counts as a death; after two the series fails."""
    from studies.models import RenderedChunk
    from studies.services import cleanup, rendering, series_build

    series = rendered_volume
    monkeypatch.setattr(cleanup, "enqueue", lambda *args: None)
    monkeypatch.setattr(rendering, "queue_series", lambda *args: None)  # its chunk kills the worker
    for death in (1, 2):
        Series.objects.filter(pk=series.pk).update(render_status=Series.Render.RENDERING)
        version = Series.objects.get(pk=series.pk).render_version
        RenderedChunk.objects.create(series=series, version=version, plane="axial", start=0, done=False, attempts=1)
        cleanup.recover_interrupted_work()  # a worker starts after the death
        assert Series.objects.get(pk=series.pk).rebuild_attempts == death
        series_build.series_rebuild(series.pk)  # what it queued
        RenderedChunk.objects.all().delete()
    series.refresh_from_db()
    assert series.render_status == Series.Render.FAILED and "stopped the worker 2 times" in series.render_error


def test_render_chunks_hold_more_small_images_but_never_unbounded():
    from studies.services.rendering import CHUNK_IMAGES, CHUNK_MAX_IMAGES, plan_chunks

    def sizes(count, side):
        return sorted(
            {stop - start for _, start, stop in plan_chunks({"stack": {"count": count, "width": side, "height": side}})}
        )

    assert sizes(320, 512) == [CHUNK_IMAGES]  # 10 chunks of 32
    assert sizes(4096, 64) == [CHUNK_MAX_IMAGES]  # 8 M pixels would be 2048 images of 64 x 64
    assert sizes(5000, 1) == [5000 - 2 * CHUNK_MAX_IMAGES, CHUNK_MAX_IMAGES]
