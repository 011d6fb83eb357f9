"""Series layout and plane geometry, checked on a phantom acquired in many orientations.

The phantom lives in patient space (LPS mm: +x the patient's left, +y posterior, +z superior) and
holds three Gaussian blobs at known points. Each acquisition samples it on its own grid of slices
and writes real DICOM files; the whole chain (headers -> layout -> planes -> resampler) must then
show every blob where the display conventions say, whatever the acquisition orientation:

- axial, seen from the feet: patient's right on the image's left, anterior at the top, index 0 most superior;
- coronal, seen from the front: right on the left, superior at the top, index 0 most anterior;
- sagittal, seen from the patient's left: anterior on the left, superior at the top, index 0 right-most.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from studies.imaging.headers import Header, read_header
from studies.imaging.planes import Plane, Resampler, plan_planes
from studies.imaging.series import decode_volume
from studies.imaging.volume import FrameRef, Volume, layout_series, volume_from_dict, volume_to_dict
from tests.dicomgen import AXIAL, CORONAL, SAGITTAL, normal_of, voxel_centres, write_image, write_volume

# --- the phantom -----------------------------------------------------------------------------

BOX_LO = np.array([-45.0, -35.0, -52.5])  # the region every acquisition covers
BOX_HI = np.array([45.0, 35.0, 52.5])
SIGMA_MM = 4.0
MARKERS = {  # name: (centre in LPS mm, peak value)
    "A": (np.array([-25.0, -15.0, 30.0]), 1000),  # right, anterior, superior
    "B": (np.array([25.0, 10.0, -30.0]), 2000),  # left, posterior, inferior
    "C": (np.array([-5.0, 22.0, 0.0]), 3000),  # a little right of the middle, most posterior, mid-height
}
# Right to left: A (x=-25), C (-5), B (25). Anterior to posterior: A (y=-15), B (10), C (22).
# Superior to inferior: A (z=30), C (0), B (-30). Hence the expected order of the blobs along each
# image axis (smallest column / row / index first):
EXPECTED_ORDER = {
    "axial": {"col": "ACB", "row": "ABC", "index": "ACB"},  # right->left, anterior->posterior, superior->inferior
    "coronal": {"col": "ACB", "row": "ACB", "index": "ABC"},  # right->left, superior->inferior, anterior->posterior
    "sagittal": {"col": "ABC", "row": "ACB", "index": "ACB"},  # anterior->posterior, sup->inf, right->left
}
POSITION_TOLERANCE_MM = 0.5


def phantom(points: np.ndarray) -> np.ndarray:
    """Phantom values (int16) at world points (..., 3)."""
    out = np.zeros(points.shape[:-1])
    for centre, peak in MARKERS.values():
        out += peak * np.exp(-np.sum((points - centre) ** 2, axis=-1) / (2 * SIGMA_MM**2))
    return np.rint(out).astype(np.int16)


def rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def rotated(orientation, matrix) -> tuple[float, ...]:
    row = matrix @ np.asarray(orientation[:3], dtype=float)
    col = matrix @ np.asarray(orientation[3:], dtype=float)
    return tuple(row) + tuple(col)


@dataclass
class Acquisition:
    orientation: tuple[float, ...]
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns
    slice_mm: float
    descending: bool = False  # slices written from the far end of the normal backwards
    tilt_degrees: float = 0.0  # gantry tilt: each slice also moves along +y (a sheared stack)


ACQUISITIONS = {
    "axial": Acquisition(AXIAL, (1.75, 1.25), 2.5),
    "axial-prone-descending": Acquisition((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), (1.25, 2.5), 2.5, descending=True),
    "coronal": Acquisition(CORONAL, (1.75, 1.25), 2.5),
    "sagittal": Acquisition(SAGITTAL, (1.75, 1.25), 2.5),
    "oblique-axial-20deg-about-x": Acquisition(rotated(AXIAL, rotation("x", 20)), (1.75, 1.25), 2.5),
    "double-oblique-coronal": Acquisition(
        rotated(CORONAL, rotation("z", 15) @ rotation("x", -20)), (1.25, 1.75), 2.5, descending=True
    ),
    "oblique-sagittal-20deg-about-y": Acquisition(rotated(SAGITTAL, rotation("y", 20)), (1.75, 1.25), 2.5),
    "axial-gantry-tilt-15deg": Acquisition(AXIAL, (1.75, 1.25), 2.5, tilt_degrees=15.0),
}
AXIS_ALIGNED = ("axial", "axial-prone-descending", "coronal", "sagittal")


def covering_grid(acq: Acquisition) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and slice positions of the smallest grid of ``acq`` that covers the phantom box."""
    row_dir = np.asarray(acq.orientation[:3])
    col_dir = np.asarray(acq.orientation[3:])
    normal = normal_of(acq.orientation)
    corners = np.array(
        [[x, y, z] for x in (BOX_LO[0], BOX_HI[0]) for y in (BOX_LO[1], BOX_HI[1]) for z in (BOX_LO[2], BOX_HI[2])]
    )
    shear = np.array([0.0, acq.slice_mm * math.tan(math.radians(acq.tilt_degrees)), 0.0])

    def span(direction, step):
        values = corners @ direction
        lo, hi = float(values.min()), float(values.max())
        return lo, math.ceil((hi - lo) / step - 1e-6) + 1

    u0, cols = span(row_dir, acq.spacing[1])
    v0, rows = span(col_dir, acq.spacing[0])
    n0, count = span(normal, acq.slice_mm)
    if acq.tilt_degrees:  # every slice must still cover the box: widen along y by the total shear
        extra = shear[1] * (count - 1)
        v0 -= extra
        rows += math.ceil(extra / acq.spacing[0])
    origin = u0 * row_dir + v0 * col_dir + n0 * normal
    step = acq.slice_mm * normal + shear
    positions = origin + np.arange(count)[:, None] * step
    if acq.descending:
        positions = positions[::-1]
    return (count, rows, cols), positions


@dataclass
class Result:
    headers: list[Header]
    volume: Volume
    planes: dict[str, Plane]
    images: dict[str, np.ndarray]  # plane name -> (count, height, width) modality values
    notes: list[str]


def run_chain(paths: list[Path]) -> Result:
    headers = [read_header(p) for p in paths]
    assert all(isinstance(h, Header) for h in headers), headers
    layout = layout_series(headers)
    assert layout.volume is not None, layout.notes
    data, failures = decode_volume(headers, layout.volume, threads=1)
    assert not failures
    planes = plan_planes(layout.volume)
    resampler = Resampler(layout.volume, data)
    images = {name: np.stack([resampler.image(p, i) for i in range(p.count)]) for name, p in planes.items()}
    return Result(headers, layout.volume, planes, images, layout.notes)


def acquire(folder: Path, acq: Acquisition, **kwargs) -> list[Path]:
    shape, positions = covering_grid(acq)
    voxels = phantom(voxel_centres(shape, positions, acq.orientation, acq.spacing))
    return write_volume(folder, voxels, orientation=acq.orientation, spacing=acq.spacing, positions=positions, **kwargs)


@pytest.fixture(scope="module")
def chains(tmp_path_factory) -> dict[str, Result]:
    folder = tmp_path_factory.mktemp("acquisitions")
    return {name: run_chain(acquire(folder / name, acq)) for name, acq in ACQUISITIONS.items()}


def find_markers(stack: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted centre (index, row, col) of each blob in a plane's image stack."""
    labels, count = ndimage.label(stack > 50)
    found = {}
    for label in range(1, count + 1):
        peak = float(stack[labels == label].max())
        name = min(MARKERS, key=lambda n: abs(MARKERS[n][1] - peak))
        assert name not in found, f"blob {name} appears twice"
        found[name] = np.array(ndimage.center_of_mass(stack, labels, label))
    assert sorted(found) == sorted(MARKERS), f"found {sorted(found)}"
    return found


# --- where the markers appear ------------------------------------------------------------------


@pytest.mark.parametrize("plane_name", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("acq_name", list(ACQUISITIONS))
def test_markers_follow_the_display_convention_in_every_plane(chains, acq_name, plane_name):
    result = chains[acq_name]
    found = find_markers(result.images[plane_name])
    for axis_name, axis in (("index", 0), ("row", 1), ("col", 2)):
        order = "".join(sorted(found, key=lambda n: found[n][axis]))
        assert order == EXPECTED_ORDER[plane_name][axis_name], (
            f"{plane_name} plane of the {acq_name} acquisition: markers along {axis_name} are {order}"
        )


@pytest.mark.parametrize("plane_name", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("acq_name", list(ACQUISITIONS))
def test_plane_world_maps_marker_pixels_back_to_their_patient_position(chains, acq_name, plane_name):
    result = chains[acq_name]
    plane = result.planes[plane_name]
    for name, (index, row, col) in find_markers(result.images[plane_name]).items():
        world = plane.world(index, row, col)
        centre = MARKERS[name][0]
        assert np.linalg.norm(world - centre) < POSITION_TOLERANCE_MM, (
            f"{acq_name}/{plane_name}: marker {name} shown at {np.round(world, 2)}, it is at {centre}"
        )


@pytest.mark.parametrize("acq_name", list(ACQUISITIONS))
def test_image_distances_are_true_millimetres_in_both_directions(chains, acq_name):
    """Square pixels: the same number of mm per pixel across and down, so the aspect is the anatomy's."""
    result = chains[acq_name]
    a, b = MARKERS["A"][0], MARKERS["B"][0]
    true = {  # plane: (mm from A to B along the image's x axis, along its y axis)
        "axial": (b[0] - a[0], b[1] - a[1]),
        "coronal": (b[0] - a[0], a[2] - b[2]),
        "sagittal": (b[1] - a[1], a[2] - b[2]),
    }
    for name, plane in result.planes.items():
        if name not in true:
            continue  # an oblique acquisition's own frames: tests/imaging/test_display.py
        found = find_markers(result.images[name])
        d_row, d_col = (found["B"] - found["A"])[1:]
        assert d_col * plane.pixel_mm == pytest.approx(true[name][0], abs=0.5), name
        assert d_row * plane.pixel_mm == pytest.approx(true[name][1], abs=0.5), name


def spacing_along(acq: Acquisition, world_axis: int) -> float:
    """The acquisition's sampling step along a world axis (axis-aligned acquisitions only)."""
    if abs(acq.orientation[world_axis]) > 0.99:  # the row direction: the step between columns
        return acq.spacing[1]
    if abs(acq.orientation[3 + world_axis]) > 0.99:  # the column direction: the step between rows
        return acq.spacing[0]
    return acq.slice_mm


@pytest.mark.parametrize("acq_name", AXIS_ALIGNED)
def test_plane_extent_in_mm_equals_the_scanned_region(chains, acq_name):
    acq, planes = ACQUISITIONS[acq_name], chains[acq_name].planes
    size = BOX_HI - BOX_LO  # x 90, y 70, z 105 mm
    for name, (wx, wy, wt) in {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}.items():
        plane = planes[name]
        # Along each axis the acquisition's own spacing is kept; in-plane the finer one, for square pixels.
        assert plane.pixel_mm == pytest.approx(min(spacing_along(acq, wx), spacing_along(acq, wy))), name
        assert plane.step_mm == pytest.approx(spacing_along(acq, wt)), name
        # The extent is a whole number of pixels: within half a pixel of the region's.
        assert (plane.width - 1) * plane.pixel_mm == pytest.approx(size[wx], abs=plane.pixel_mm / 2), name
        assert (plane.height - 1) * plane.pixel_mm == pytest.approx(size[wy], abs=plane.pixel_mm / 2), name
        assert (plane.count - 1) * plane.step_mm == pytest.approx(size[wt], abs=plane.step_mm / 2), name


@pytest.mark.parametrize("acq_name", AXIS_ALIGNED)
def test_every_plane_starts_at_the_right_anterior_superior_corner(chains, acq_name):
    planes = chains[acq_name].planes
    right_anterior_superior = np.array([BOX_LO[0], BOX_LO[1], BOX_HI[2]])
    left_posterior_inferior = np.array([BOX_HI[0], BOX_HI[1], BOX_LO[2]])
    for plane in planes.values():
        assert plane.world(0, 0, 0) == pytest.approx(right_anterior_superior)
        # The far corner, to within the half pixel that a whole number of pixels can miss it by.
        last = plane.world(plane.count - 1, plane.height - 1, plane.width - 1)
        assert last == pytest.approx(left_posterior_inferior, abs=max(plane.pixel_mm, plane.step_mm) / 2)


def test_plane_world_steps_follow_the_convention(chains):
    planes = chains["axial"].planes
    left, posterior, inferior = np.eye(3)[0], np.eye(3)[1], -np.eye(3)[2]
    expected = {  # plane: (next column, next row, next index) as a direction in the patient
        "axial": (left, posterior, inferior),
        "coronal": (left, inferior, posterior),
        "sagittal": (posterior, inferior, left),
    }
    for name, (col_dir, row_dir, index_dir) in expected.items():
        plane = planes[name]
        origin = plane.world(0, 0, 0)
        assert plane.world(0, 0, 1) - origin == pytest.approx(plane.pixel_mm * col_dir)
        assert plane.world(0, 1, 0) - origin == pytest.approx(plane.pixel_mm * row_dir)
        assert plane.world(1, 0, 0) - origin == pytest.approx(plane.step_mm * index_dir)


def test_gantry_tilt_is_reported(chains):
    assert any("gantry tilt" in note for note in chains["axial-gantry-tilt-15deg"].notes)
    assert not any("gantry tilt" in note for note in chains["axial"].notes)


# --- planes in the acquisition's own orientation are the stored slices --------------------------


@pytest.mark.parametrize(
    ("orientation", "plane_name", "flip"),
    [
        (AXIAL, "axial", (slice(None), slice(None))),
        ((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), "axial", (slice(None, None, -1), slice(None, None, -1))),
        (CORONAL, "coronal", (slice(None), slice(None))),
        (SAGITTAL, "sagittal", (slice(None), slice(None))),
    ],
    ids=["axial", "axial-prone", "coronal", "sagittal"],
)
def test_native_plane_reproduces_stored_slices_exactly(tmp_path, orientation, plane_name, flip):
    rng = np.random.default_rng(7)
    voxels = rng.integers(-1000, 3000, size=(6, 20, 24), dtype=np.int16)
    paths = write_volume(tmp_path, voxels, orientation=orientation, spacing=(0.8, 0.8), slice_step=2.0)
    result = run_chain(paths)
    images = result.images[plane_name]
    assert images.shape == (6, 20, 24)
    # Index 0 is the most superior / anterior / right-most slice: the one furthest along -step_dir.
    step_dir = np.asarray(result.planes[plane_name].step_dir)
    positions = np.array([h.frames[0].position for h in result.headers])
    order = np.argsort(positions @ step_dir)
    for index, k in enumerate(order):
        np.testing.assert_array_equal(images[index], voxels[k][flip])


# --- slice order -------------------------------------------------------------------------------


def test_slices_are_ordered_by_position_not_instance_number_or_file_name(tmp_path):
    count = 9
    rng = random.Random(3)
    instance_numbers = list(range(1, count + 1))
    rng.shuffle(instance_numbers)
    names = [f"{n:03d}.dcm" for n in range(count)]
    rng.shuffle(names)
    # Each slice is filled with its own height (z), so the images say which slice they are.
    z = np.arange(count) * 3.0 - 12.0
    voxels = np.broadcast_to(z[:, None, None].astype(np.int16), (count, 8, 10)).copy()
    order = list(range(count))
    rng.shuffle(order)  # written in a random spatial order too
    folder = tmp_path / "series"
    write_volume(
        folder,
        voxels[order],
        positions=[(0.0, 0.0, z[k]) for k in order],
        instance_numbers=instance_numbers,
        names=names,
    )
    paths = sorted(folder.iterdir())  # file-name order: unrelated to position
    result = run_chain(paths)
    along_normal = [result.headers[ref.instance].frames[0].position[2] for ref in result.volume.frames]
    assert along_normal == sorted(along_normal)
    axial = result.images["axial"]
    assert [int(axial[i, 0, 0]) for i in range(count)] == sorted(z.astype(int), reverse=True)  # superior first
    # Coronal rows are 1 mm apart (square pixels), superior at the top: row r shows height 12 - r.
    coronal = result.images["coronal"][0]
    np.testing.assert_allclose(coronal[:, 0], z[-1] - np.arange(len(coronal)), atol=1e-3)


# --- frames that do not belong -------------------------------------------------------------------


def axial_stack(folder: Path, count: int = 8, size=(16, 16), value=100, **kwargs) -> list[Path]:
    voxels = np.full((count, *size), value, dtype=np.int16)
    return write_volume(folder, voxels, orientation=AXIAL, spacing=(1.0, 1.0), slice_step=2.0, **kwargs)


def test_localizer_in_the_series_is_excluded_with_a_reason(tmp_path):
    paths = axial_stack(tmp_path, count=8, series_uid="1.2.3.4", study_uid="1.2.3")
    localizer = write_image(
        tmp_path / "scout.dcm",
        np.full((16, 16), 4000, dtype=np.int16),
        orientation=CORONAL,
        position=(0.0, 3.0, 20.0),
        spacing=(1.0, 1.0),
        instance_number=1,
        series_uid="1.2.3.4",
        study_uid="1.2.3",
    )
    headers = [read_header(p) for p in [*paths[:4], localizer, *paths[4:]]]
    layout = layout_series(headers)
    assert layout.volume is not None
    assert len(layout.volume.frames) == 8
    assert FrameRef(4, 0) not in layout.volume.frames
    assert len(layout.excluded) == 1
    ref, reason = layout.excluded[0]
    assert ref == FrameRef(4, 0)
    assert "orientation" in reason
    assert any("not part of the volume" in note for note in layout.notes)
    data, _ = decode_volume(headers, layout.volume, threads=1)
    assert data.max() == 100  # the localizer's pixels are nowhere in the volume


def test_image_of_another_size_in_the_series_is_excluded_with_a_reason(tmp_path):
    paths = axial_stack(tmp_path, count=6)
    odd = write_image(
        tmp_path / "small.dcm",
        np.zeros((8, 8), dtype=np.int16),
        orientation=AXIAL,
        position=(0.0, 0.0, 5.0),
        spacing=(1.0, 1.0),
    )
    headers = [read_header(p) for p in [odd, *paths]]
    layout = layout_series(headers)
    assert layout.volume is not None and len(layout.volume.frames) == 6
    assert [(ref, "size" in reason) for ref, reason in layout.excluded] == [(FrameRef(0, 0), True)]


def test_three_plane_localizer_series_is_a_stack(tmp_path):
    image = np.zeros((16, 16), dtype=np.int16)
    paths = [
        write_image(tmp_path / f"{name}.dcm", image, orientation=o, position=(0.0, 0.0, 0.0), spacing=(1.0, 1.0))
        for name, o in (("ax", AXIAL), ("cor", CORONAL), ("sag", SAGITTAL))
    ]
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert len(layout.stack) == 3


def test_two_parallel_slices_and_a_localizer_are_a_stack(tmp_path):
    paths = axial_stack(tmp_path, count=2)
    paths.append(
        write_image(
            tmp_path / "loc.dcm",
            np.zeros((16, 16), np.int16),
            orientation=SAGITTAL,
            position=(0.0, 0.0, 0.0),
            spacing=(1.0, 1.0),
        )
    )
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert len(layout.stack) == 3


# --- spacing problems ----------------------------------------------------------------------------


def test_missing_slice_is_still_a_volume_interpolated_at_the_true_positions(tmp_path):
    count, step = 10, 2.0
    z = np.arange(count) * step
    # Values rise linearly with height (10 per mm) and with the column, so interpolation is exact.
    voxels = (10 * z[:, None, None] + np.arange(12)[None, None, :] + np.zeros((count, 12, 12))).astype(np.int16)
    keep = [k for k in range(count) if k != 6]
    paths = write_volume(tmp_path, voxels[keep], positions=[(0.0, 0.0, z[k]) for k in keep], spacing=(1.0, 1.0))
    result = run_chain(paths)
    assert any("irregular slice spacing" in note for note in result.notes)
    axial = result.planes["axial"]
    assert axial.count == count  # the missing position has an image, the others keep their place in mm
    assert axial.step_mm == pytest.approx(step)
    for index in range(count):
        height = axial.world(index, 0, 0)[2]
        assert height == pytest.approx(z[count - 1 - index])
        np.testing.assert_allclose(result.images["axial"][index, 0, :], 10 * height + np.arange(12), atol=1e-3)
    coronal = result.planes["coronal"]
    assert (coronal.height - 1) * coronal.pixel_mm == pytest.approx(z[-1] - z[0])
    # Down a coronal image (1 mm rows, superior at the top) the values fall steadily, gap included.
    heights = np.array([coronal.world(0, row, 0)[2] for row in range(coronal.height)])
    np.testing.assert_allclose(heights, z[-1] - np.arange(coronal.height) * coronal.pixel_mm)
    np.testing.assert_allclose(result.images["coronal"][0, :, 3], 10 * heights + 3, atol=1e-3)


def test_a_gap_of_many_slices_is_a_stack_with_a_reason(tmp_path):
    z = [0.0, 2.0, 4.0, 6.0, 20.0]
    paths = write_volume(tmp_path, np.zeros((5, 8, 8), np.int16), positions=[(0, 0, v) for v in z])
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert any("irregular" in note for note in layout.notes)


def test_fewer_than_three_slices_are_a_stack(tmp_path):
    paths = axial_stack(tmp_path, count=2)
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert layout.stack == [FrameRef(0, 0), FrameRef(1, 0)]


def test_duplicate_positions_are_a_stack_in_acquisition_order(tmp_path):
    # Two echoes at each of three positions: not one volume.
    positions = [(0.0, 0.0, z) for z in (0.0, 0.0, 2.0, 2.0, 4.0, 4.0)]
    paths = write_volume(
        tmp_path, np.zeros((6, 8, 8), np.int16), positions=positions, instance_numbers=[6, 5, 4, 3, 2, 1]
    )
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert any("more than once" in note for note in layout.notes)
    assert [ref.instance for ref in layout.stack] == [5, 4, 3, 2, 1, 0]  # InstanceNumber 1..6


def test_colour_series_is_a_stack(tmp_path):
    paths = [
        write_image(
            tmp_path / f"{k}.dcm",
            np.full((8, 8, 3), 40 * k, dtype=np.uint8),
            orientation=AXIAL,
            position=(0.0, 0.0, 2.0 * k),
            spacing=(1.0, 1.0),
            instance_number=k + 1,
        )
        for k in range(5)
    ]
    layout = layout_series([read_header(p) for p in paths])
    assert layout.volume is None
    assert len(layout.stack) == 5
    assert any("colour" in note for note in layout.notes)


# --- geometry independent of files ----------------------------------------------------------------


def synthetic_volume(slices: int, rows: int, cols: int, row_mm: float, col_mm: float, slice_mm: float) -> Volume:
    return Volume(
        frames=[FrameRef(k, 0) for k in range(slices)],
        rows=rows,
        columns=cols,
        row_dir=np.array([1.0, 0.0, 0.0]),
        col_dir=np.array([0.0, 1.0, 0.0]),
        spacing_row_mm=row_mm,
        spacing_col_mm=col_mm,
        origin=np.array([-200.0, -200.0, -680.0]),
        stack_dir=np.array([0.0, 0.0, 1.0]),
        offsets_mm=np.arange(slices) * slice_mm,
    )


def test_ct_of_275_thin_slices_gives_coronal_and_sagittal_images_of_true_aspect():
    planes = plan_planes(synthetic_volume(275, 512, 512, 0.78125, 0.78125, 1.0))
    assert (planes["axial"].width, planes["axial"].height, planes["axial"].count) == (512, 512, 275)
    assert (planes["coronal"].width, planes["coronal"].height, planes["coronal"].count) == (512, 352, 512)
    assert (planes["sagittal"].width, planes["sagittal"].height, planes["sagittal"].count) == (512, 352, 512)


def test_plane_and_volume_survive_their_json_round_trip(chains):
    """Ingest stores the geometry as JSON and the renderer rebuilds it: the images must not change."""
    result = chains["oblique-axial-20deg-about-x"]
    volume = volume_from_dict(volume_to_dict(result.volume), result.volume.frames)
    data, _ = decode_volume(result.headers, volume, threads=1)
    resampler = Resampler(volume, data)
    for name, plane in result.planes.items():
        again = Plane.from_dict(name, plane.to_dict())
        assert (again.count, again.width, again.height) == (plane.count, plane.width, plane.height)
        assert again.world(3, 4, 5) == pytest.approx(plane.world(3, 4, 5), abs=1e-3)
        middle = plane.count // 2
        np.testing.assert_allclose(resampler.image(again, middle), result.images[name][middle], atol=0.5)


# --- an oblique acquisition's own frames -----------------------------------------------------------

OBLIQUE_ACQUISITIONS = ("oblique-axial-20deg-about-x", "double-oblique-coronal", "oblique-sagittal-20deg-about-y")


@pytest.mark.parametrize("acq_name", list(ACQUISITIONS))
def test_only_an_oblique_acquisition_has_an_acquired_plane(chains, acq_name):
    """Axis-aligned volumes are shown unresampled by their own plane already, and a gantry tilt
    only shears the slices: neither gets a fourth plane."""
    assert ("acquired" in chains[acq_name].planes) == (acq_name in OBLIQUE_ACQUISITIONS)


@pytest.mark.parametrize("acq_name", OBLIQUE_ACQUISITIONS)
def test_the_acquired_plane_shows_the_frames_as_stored_where_they_are(chains, acq_name):
    """Its images are the decoded frames in stack order (columns at their own spacing, rows
    stretched to square pixels), and its geometry maps each blob back to its patient position."""
    result = chains[acq_name]
    plane, images = result.planes["acquired"], result.images["acquired"]
    data, _ = decode_volume(result.headers, result.volume, threads=1)
    assert (plane.count, plane.pixel_mm) == (len(result.volume.frames), 1.25)
    assert plane.x_dir == pytest.approx(tuple(result.volume.row_dir))
    assert plane.y_dir == pytest.approx(tuple(result.volume.col_dir))
    assert abs(float(np.dot(plane.step_dir, result.volume.stack_dir))) == pytest.approx(1.0)
    if result.volume.spacing_col_mm == plane.pixel_mm:  # columns as acquired: every other row is a stored row
        rows = np.arange(plane.height) * plane.pixel_mm / result.volume.spacing_row_mm
        exact = np.abs(rows - np.round(rows)) < 1e-6
        np.testing.assert_array_equal(images[:, exact, :], data[:, np.round(rows[exact]).astype(int), :])
    else:
        cols = np.arange(plane.width) * plane.pixel_mm / result.volume.spacing_col_mm
        exact = np.abs(cols - np.round(cols)) < 1e-6
        np.testing.assert_array_equal(images[:, :, exact], data[:, :, np.round(cols[exact]).astype(int)])
    for name, (index, row, col) in find_markers(images).items():
        world = plane.world(index, row, col)
        assert np.linalg.norm(world - MARKERS[name][0]) < POSITION_TOLERANCE_MM, (name, world)
