"""ROI statistics and the probe's point checks on synthetic arrays, and the volume's value at a
world point (the imaging core, no Django)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from studies.imaging.measure import MeasureError, check_point, nearest_pixel, roi_stats
from studies.imaging.planes import Resampler, plan_planes
from studies.imaging.volume import FrameRef, Volume


def test_rectangle_takes_the_pixels_whose_centres_lie_inside():
    values = np.arange(100, dtype=np.int16).reshape(10, 10)
    stats = roi_stats(values, "rectangle", 2, 3, 4.9, 5, pixel_area_mm2=0.25)
    block = values[3:6, 2:5].astype(float)
    assert (stats.n, stats.mean, stats.min, stats.max) == (9, block.mean(), block.min(), block.max())
    assert stats.sd == pytest.approx(block.std())  # over n, not n - 1
    assert stats.area_mm2 == pytest.approx(2.9 * 2 * 0.25) and stats.clipped is False
    # corners in any order
    assert roi_stats(values, "rectangle", 4.9, 5, 2, 3).mean == stats.mean


def test_ellipse_mask_and_area():
    values = np.zeros((101, 101), dtype=np.float32)
    yy, xx = np.mgrid[0:101, 0:101]
    inside = ((xx - 50) / 40.0) ** 2 + ((yy - 50) / 20.0) ** 2 <= 1
    values[inside] = 5.0
    values[~inside] = -100.0
    stats = roi_stats(values, "ellipse", 10, 30, 90, 70, pixel_area_mm2=1.0)
    assert stats.n == inside.sum() and stats.mean == 5.0 and stats.sd == 0.0
    assert stats.area_mm2 == pytest.approx(math.pi * 40 * 20)
    assert abs(stats.n - stats.area_mm2) / stats.area_mm2 < 0.02  # pixel count close to the true area


def test_a_shape_partly_off_the_image_is_clipped_with_its_area():
    values = np.ones((20, 20))
    rectangle = roi_stats(values, "rectangle", -10, -10, 9.5, 9.5, pixel_area_mm2=1.0)
    assert rectangle.clipped and rectangle.n == 100 and rectangle.area_mm2 == pytest.approx(10 * 10)
    # an ellipse centred on the corner of the image: a quarter of it lies on the image
    quarter = roi_stats(values, "ellipse", -10.5, -10.5, 9.5, 9.5, pixel_area_mm2=1.0)
    assert quarter.clipped and quarter.area_mm2 == pytest.approx(math.pi * 100 / 4, rel=1e-4)
    assert quarter.n == pytest.approx(math.pi * 100 / 4, rel=0.1)
    assert roi_stats(values, "ellipse", 0, 0, 5, 5).area_mm2 is None  # no pixel spacing, no mm²


@pytest.mark.parametrize(
    "shape, corners, words",
    [
        ("ellipse", (3, 3, 3, 8), "no area"),
        ("rectangle", (3, 3, 8, 3), "no area"),
        ("rectangle", (30, 30, 40, 40), "entirely outside"),
        ("ellipse", (-10, -10, -0.6, -0.6), "entirely outside"),
        ("ellipse", (2.1, 2.1, 2.4, 2.4), "no pixel centre"),
        ("ellipse", (0, 0, float("nan"), 3), "finite"),
        ("triangle", (0, 0, 3, 3), "shape must be"),
    ],
)
def test_shapes_without_values_are_refused_with_a_reason(shape, corners, words):
    with pytest.raises(MeasureError, match=words):
        roi_stats(np.zeros((10, 10)), shape, *corners)


def test_points_on_and_off_the_image():
    assert nearest_pixel(0, 0, 4, 3) == (0, 0)
    assert nearest_pixel(3.49, 2.5, 4, 3) == (2, 3)  # the last half pixel is still on the image
    assert nearest_pixel(-0.5, 1.49, 4, 3) == (1, 0)
    for x, y in ((4, 0), (-0.51, 0), (0, 2.51), (float("inf"), 0)):
        with pytest.raises(MeasureError):
            check_point(x, y, 4, 3)


def oblique_volume(data: np.ndarray) -> Volume:
    angle = math.radians(30)
    row_dir = np.array([math.cos(angle), math.sin(angle), 0.0])
    col_dir = np.array([-math.sin(angle), math.cos(angle), 0.0])
    return Volume(
        frames=[FrameRef(k, 0) for k in range(len(data))],
        rows=data.shape[1],
        columns=data.shape[2],
        row_dir=row_dir,
        col_dir=col_dir,
        spacing_row_mm=0.8,
        spacing_col_mm=0.6,
        origin=np.array([10.0, -5.0, 3.0]),
        stack_dir=np.array([0.0, 0.0, 1.0]),
        offsets_mm=np.array([0.0, 2.0, 4.5, 6.5]),  # one irregular gap
    )


def test_the_value_at_a_world_point_is_the_voxel_there_or_interpolated_between_them():
    data = np.random.default_rng(3).integers(-1000, 1000, size=(4, 5, 6)).astype(np.int16)
    volume = oblique_volume(data)
    resampler = Resampler(volume, data)
    for k, r, c in ((0, 0, 0), (2, 3, 4), (3, 4, 5)):
        assert resampler.value_at(volume.voxel_to_world(k, r, c)) == data[k, r, c]
    halfway = (volume.voxel_to_world(1, 2, 2) + volume.voxel_to_world(1, 2, 3)) / 2
    assert resampler.value_at(halfway) == pytest.approx((int(data[1, 2, 2]) + int(data[1, 2, 3])) / 2)
    between = volume.voxel_to_world(1.5, 2, 2)  # slices 2.0 and 4.5 mm: 1.25 mm along
    assert resampler.value_at(between) == pytest.approx(0.5 * int(data[1, 2, 2]) + 0.5 * int(data[2, 2, 2]))
    assert resampler.value_at(volume.voxel_to_world(0, 0, -0.6)) is None
    assert resampler.value_at(volume.voxel_to_world(3, 0, 0) + np.array([0, 0, 5.0])) is None


def test_the_value_at_a_point_matches_the_plane_images_at_their_pixels():
    data = np.random.default_rng(5).normal(size=(6, 7, 8)).astype(np.float32)
    volume = Volume(
        frames=[FrameRef(k, 0) for k in range(6)],
        rows=7,
        columns=8,
        row_dir=np.array([1.0, 0, 0]),
        col_dir=np.array([0, 1.0, 0]),
        spacing_row_mm=1.0,
        spacing_col_mm=1.0,
        origin=np.zeros(3),
        stack_dir=np.array([0, 0, 1.0]),
        offsets_mm=np.arange(6) * 1.0,
    )
    resampler = Resampler(volume, data)
    for name, plane in plan_planes(volume).items():
        index = plane.count // 2
        image = resampler.image(plane, index)
        for row, col in ((0, 0), (plane.height - 1, plane.width - 1), (plane.height // 2, 1)):
            assert resampler.value_at(plane.world(index, row, col)) == pytest.approx(float(image[row, col])), name


def test_an_roi_on_a_plane_across_an_oblique_volume_leaves_out_the_fill_around_it():
    data = np.full((4, 5, 6), 500, dtype=np.int16)
    volume = oblique_volume(data)
    resampler = Resampler(volume, data, fill=-3000)
    axial = plan_planes(volume)["axial"]
    image = resampler.image(axial, 1)
    covered = resampler.covered(axial, 1)
    assert covered is not None and not covered.all() and covered.any()
    assert np.all(image[~covered] == -3000) and np.all(image[covered] == 500)
    whole = roi_stats(image, "rectangle", 0, 0, axial.width - 1, axial.height - 1, covered=covered)
    assert (whole.n, whole.mean, whole.min, whole.sd) == (int(covered.sum()), 500.0, 500.0, 0.0)
    row, col = np.argwhere(~covered)[0]  # a corner of the image outside the volume
    with pytest.raises(MeasureError, match="outside the scanned volume"):
        roi_stats(image, "rectangle", col - 0.4, row - 0.4, col + 0.4, row + 0.4, covered=covered)
    # planes along the volume's own axes are covered everywhere
    straight = Volume(**{**volume.__dict__, "row_dir": np.array([1.0, 0, 0]), "col_dir": np.array([0, 1.0, 0])})
    assert all(Resampler(straight, data).covered(p, 1) is None for p in plan_planes(straight).values())
