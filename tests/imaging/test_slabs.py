"""Slab images (MIP, MinIP, average over a thickness in mm) from the imaging core alone: their
values against the volume's own voxels, at the volume's ends, across an oblique grid, and the
requests refused with a reason."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from studies.imaging.planes import Plane, Resampler, plan_planes, slab_offsets
from studies.imaging.slabs import Slab, SlabError, check_slab, parse_slab
from studies.imaging.volume import FrameRef, Volume

REDUCE = {"mip": np.max, "minip": np.min, "avg": np.mean}


def volume_of(shape, slice_mm=1.0, row_dir=(1.0, 0.0, 0.0), col_dir=(0.0, 1.0, 0.0), pixel_mm=1.0) -> Volume:
    slices, rows, cols = shape
    row_dir, col_dir = np.asarray(row_dir, dtype=float), np.asarray(col_dir, dtype=float)
    return Volume(
        frames=[FrameRef(k, 0) for k in range(slices)],
        rows=rows,
        columns=cols,
        row_dir=row_dir,
        col_dir=col_dir,
        spacing_row_mm=pixel_mm,
        spacing_col_mm=pixel_mm,
        origin=np.zeros(3),
        stack_dir=np.cross(row_dir, col_dir),
        offsets_mm=np.arange(slices) * slice_mm,
    )


@pytest.fixture(scope="module")
def axial_volume():
    """20 axial slices of 16 x 12 random whole numbers, 1 mm apart, isotropic: every plane image is
    voxels as they are, so a slab is a plain reduction over neighbouring voxel planes."""
    data = np.random.default_rng(7).integers(-1000, 3000, size=(20, 16, 12)).astype(np.int16)
    volume = volume_of(data.shape)
    return volume, data, Resampler(volume, data), plan_planes(volume)


@pytest.mark.parametrize("mode", ["mip", "minip", "avg"])
def test_an_axial_slab_is_the_reduction_of_the_slices_it_covers(axial_volume, mode):
    volume, data, resampler, planes = axial_volume
    axial = planes["axial"]  # index 0 is the most superior slice: k = 19 - index
    for index, thickness, slices in ((10, 5.0, range(7, 12)), (10, 4.0, range(7, 12)), (3, 9.0, range(12, 21))):
        got = resampler.slab(axial, index, thickness, mode)
        want = REDUCE[mode](data[slices.start : min(slices.stop, 20)].astype(np.float64), axis=0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, err_msg=f"{mode} {index} {thickness}")


@pytest.mark.parametrize("mode", ["mip", "minip", "avg"])
def test_a_coronal_slab_reduces_along_the_rows_and_is_clipped_at_the_ends(axial_volume, mode):
    volume, data, resampler, planes = axial_volume
    coronal = planes["coronal"]  # index = row (anterior first); image rows run superior -> inferior
    for index in (0, 1, 8, 15):  # 7 mm: rows index-3 .. index+3, cut at the volume's ends
        got = resampler.slab(coronal, index, 7.0, mode)
        rows = data[:, max(0, index - 3) : index + 4, :].astype(np.float64)
        want = REDUCE[mode](rows, axis=1)[::-1]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, err_msg=f"{mode} at {index}")


def test_a_thin_slab_is_sampled_finer_than_the_plane_and_stays_centred():
    assert list(slab_offsets(1.0, 10.0)) == [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5]
    assert list(slab_offsets(2.5, 4.0)) == [-2.0, 0.0, 2.0]  # thinner than two steps: centre and faces
    assert list(slab_offsets(1.0, 0.5)) == [-0.25, 0.0, 0.25]


def test_a_thin_slab_interpolates_between_slices(axial_volume):
    volume, data, resampler, planes = axial_volume
    got = resampler.slab(planes["axial"], 10, 1.0, "avg")  # slice 9 and half-way to 8 and 10
    want = (0.5 * (data[8] + data[9]) + data[9] + 0.5 * (data[9] + data[10])) / 3
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_an_oblique_slab_is_the_reduction_of_the_images_it_crosses():
    """Across a voxel grid no plane follows, each sample is an interpolated image: the slab is their
    maximum (minimum, mean) where the volume is, and the fill where no sample is."""
    rotation = Rotation.from_euler("zx", [25, 15], degrees=True).as_matrix()
    volume = volume_of((14, 18, 18), slice_mm=1.5, row_dir=rotation[:, 0], col_dir=rotation[:, 1])
    data = np.random.default_rng(3).normal(100, 40, size=volume.shape).astype(np.float32)
    resampler = Resampler(volume, data)
    axial = plan_planes(volume)["axial"]
    index = axial.count // 2
    samples = [resampler._geometry(axial, index + k) for k in (-2, -1, 0, 1, 2)]
    images = np.stack([resampler._general(axial, base, steps, cval=np.nan) for base, steps in samples])
    for mode, reduce in (("mip", np.nanmax), ("minip", np.nanmin), ("avg", np.nanmean)):
        got = resampler.slab(axial, index, 5 * axial.step_mm, mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: outside every sample
            want = reduce(images, axis=0)
        want = np.where(np.isnan(want), resampler.fill, want)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, err_msg=mode)


def test_a_mip_keeps_whole_numbers_in_their_own_type(axial_volume):
    """The common case (an axis-aligned MIP) reads a run of slices as a view and keeps int16, so the
    window is the one-gather table lookup like any image."""
    volume, data, resampler, planes = axial_volume
    assert resampler.slab(planes["axial"], 10, 10.0, "mip").dtype == np.int16


# --- what may be asked for ----------------------------------------------------------------------


def test_slab_parameters_are_parsed_or_refused_with_a_reason():
    assert parse_slab(None, None) is None
    assert parse_slab("mip", "10") == Slab("mip", 10.0)
    assert parse_slab("avg", "2.504") == Slab("avg", 2.5)
    for mode, slab, words in (
        ("mip", None, "Give slab"),
        (None, "10", "Give mode"),
        ("max", "10", "Unknown mode"),
        ("mip", "ten", "number of millimetres"),
        ("mip", "0", "positive"),
        ("mip", "-3", "positive"),
        ("mip", "nan", "positive"),
        ("mip", "inf", "positive"),
    ):
        with pytest.raises(SlabError, match=words):
            parse_slab(mode, slab)


def test_a_slab_needs_a_volume_plane_no_thicker_than_the_volume():
    plane = Plane("axial", 20, 12, 16, 1.0, 1.0, (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, -1)).to_dict()
    check_slab(Slab("mip", 20.0), "axial", plane)
    with pytest.raises(SlabError, match="thicker than the volume"):
        check_slab(Slab("mip", 20.5), "axial", plane)
    with pytest.raises(SlabError, match="volume plane"):
        check_slab(Slab("mip", 5.0), "stack", {"count": 3, "width": 8, "height": 8})


def test_a_slab_of_the_acquired_plane_reduces_the_frames_as_stored():
    rotation = Rotation.from_euler("x", 20, degrees=True).as_matrix()
    volume = volume_of((8, 10, 12), slice_mm=2.0, row_dir=rotation[:, 0], col_dir=rotation[:, 1])
    data = np.random.default_rng(11).integers(0, 1000, size=volume.shape).astype(np.int16)
    resampler = Resampler(volume, data)
    acquired = plan_planes(volume)["acquired"]
    np.testing.assert_array_equal(resampler.image(acquired, 4), data[4])
    np.testing.assert_array_equal(resampler.slab(acquired, 4, 6.0, "mip"), data[3:6].max(axis=0))
    np.testing.assert_array_equal(resampler.slab(acquired, 0, 6.0, "minip"), data[0:2].min(axis=0))  # clipped
