"""From modality values to display pixels and PNG: DICOM's linear window, VOI LUT, MONOCHROME1, PNG.

Expected display values are worked out by hand from the standard's linear function (PS3.3
C.11.2.1.2.1), with ymin = 0 and ymax = 255:

    x <= c - 0.5 - (w - 1) / 2  ->  0
    x >  c - 0.5 + (w - 1) / 2  ->  255
    else                        ->  ((x - (c - 0.5)) / (w - 1) + 0.5) * 255, rounded
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_voi_lut as pydicom_apply_voi_lut
from pydicom.sequence import Sequence

from studies.imaging.headers import read_header
from studies.imaging.pixels import decode
from studies.imaging.render import (
    VoiLut,
    Window,
    apply_voi_lut,
    auto_window,
    encode_png,
    thumbnail,
    to_display,
    window_table,
    window_values,
)
from studies.imaging.series import StackImages, VolumeImages, default_window, read_voi_lut
from studies.imaging.volume import FrameRef, Volume
from tests.dicomgen import write_image

SHARED_DICOM = Path(os.environ.get("SHARED_DICOM", "/work/shared/dicom"))


def shared_dicom(*parts: str) -> Path:
    """A file under the shared real-DICOM folder, or skip the test when that data is absent."""
    path = SHARED_DICOM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real DICOM test data not available: {path}")
    return path


def display(values, center, width, invert=False) -> list[int]:
    return to_display(np.asarray(values, dtype=np.float64), Window(center, width), invert).tolist()


# --- the linear window ----------------------------------------------------------------------------


def test_soft_tissue_window_matches_hand_computed_dicom_values():
    # c=40, w=400: black at or below -160, white above 239.
    values = [-1000, -160, -159, 39, 40, 100, 238, 239, 240, 3000]
    # -159: (-198.5/399 + 0.5) * 255 = 0.64; 39: 127.18; 40: 127.82; 100: 166.17; 238: 254.36; 239: 255
    assert display(values, 40, 400) == [0, 0, 1, 127, 128, 166, 254, 255, 255, 255]


def test_lung_window_with_negative_hounsfield_values():
    # c=-600, w=1500: black at or below -1350, white above 149.
    values = [-2048, -1350, -1000, -601, -600, 0, 149, 150]
    # -1000: (-399.5/1499 + 0.5) * 255 = 59.54; -601: 127.41; -600: 127.59; 0: 229.65
    assert display(values, -600, 1500) == [0, 0, 60, 127, 128, 230, 255, 255]


def test_width_one_is_a_threshold_at_center_minus_half():
    # w=1: x <= c - 0.5 is black, anything above is white.
    assert display([-5, 98, 99, 99.5, 99.51, 100, 101], 100, 1) == [0, 0, 0, 0, 255, 255, 255]
    assert window_values(np.array([99.0, 100.0]), Window(100, 1)).tolist() == [0.0, 255.0]


def test_width_below_one_is_treated_as_one():
    assert display([99, 100], 100, 0.2) == display([99, 100], 100, 1) == [0, 255]


def test_window_output_is_uint8():
    out = to_display(np.array([[1.5, -3.0]], dtype=np.float32), Window(0, 10))
    assert out.dtype == np.uint8 and out.shape == (1, 2)


ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)


@pytest.mark.parametrize(
    "window", [Window(40, 400), Window(-600, 1500), Window(100, 1), Window(0.5, 2), Window(32760, 30), Window(-3, 7.5)]
)
@pytest.mark.parametrize("invert", [False, True])
def test_int16_table_path_equals_float_path_for_every_value(window, invert):
    by_table = window_table(window, invert)[ALL_INT16.view(np.uint16)]
    by_float = to_display(ALL_INT16.astype(np.float64), window, invert)
    np.testing.assert_array_equal(by_table, by_float)
    # to_display takes the table path by itself for large int16 images; same answer.
    np.testing.assert_array_equal(to_display(ALL_INT16, window, invert), by_float)


# --- MONOCHROME1 --------------------------------------------------------------------------------------


def test_monochrome1_is_inverted_after_windowing():
    # c=550, w=1024 (the CR test images' window). 550 windows to 127.62 -> 128, inverted 127.
    # Inverting the values first (1023 - x, then windowing) would show 550 as 108, and 0 would not be white.
    assert display([0, 38, 550, 1061, 1200], 550, 1024, invert=True) == [255, 255, 127, 0, 0]
    assert display([0, 38, 550, 1061, 1200], 550, 1024, invert=False) == [0, 0, 128, 255, 255]


def test_monochrome1_file_displays_low_values_white(tmp_path):
    pixels = np.array([[0, 1000], [500, 250]], dtype=np.uint16)
    path = write_image(tmp_path / "cr.dcm", pixels, modality="CR", photometric="MONOCHROME1", window=(500, 1001))
    header = read_header(path)
    image = StackImages([header], [FrameRef(0, 0)]).display(0)
    assert image[0, 0] == 255  # lowest value: white
    assert image[0, 1] == 0  # highest: black
    assert image[1, 0] == 255 - 128  # the centre: mid-grey, inverted


def test_monochrome1_volume_images_are_inverted_in_both_dtype_paths():
    volume = Volume([FrameRef(k, 0) for k in range(3)], 4, 4, *_axial_geometry(3))
    data = np.arange(48, dtype=np.int16).reshape(3, 4, 4) * 20
    window = Window(400, 800)
    for values in (data, data.astype(np.float32)):
        normal = VolumeImages(volume, values, window, invert=False).display("axial", 1)
        inverted = VolumeImages(volume, values, window, invert=True).display("axial", 1)
        np.testing.assert_array_equal(inverted, 255 - normal)
        assert int(normal.max()) - int(normal.min()) > 50  # a real ramp, not a constant


def _axial_geometry(count):
    return (
        np.array([1.0, 0.0, 0.0]),
        np.array([0.0, 1.0, 0.0]),
        1.0,
        1.0,
        np.zeros(3),
        np.array([0.0, 0.0, 1.0]),
        np.arange(count, dtype=float),
    )


# --- default window ---------------------------------------------------------------------------


def test_default_window_comes_from_the_file(tmp_path):
    path = write_image(tmp_path / "ct.dcm", np.zeros((4, 4), np.int16), rescale=(1, -1024), window=(40, 400))
    header = read_header(path)
    assert default_window([header], [FrameRef(0, 0)], None) == Window(40, 400)
    assert StackImages([header], [FrameRef(0, 0)]).default_window() == Window(40, 400)


def test_default_window_without_one_in_the_file_comes_from_the_data(tmp_path):
    values = np.arange(0, 1001, dtype=np.int16).reshape(7, 143)
    path = write_image(tmp_path / "mr.dcm", values, modality="MR")
    header = read_header(path)
    window = default_window([header], [FrameRef(0, 0)], values)
    # The 0.5 to 99.5 percentile range of 0..1000: 5 to 995.
    assert window.center == pytest.approx(500)
    assert window.width == pytest.approx(990)
    assert StackImages([header], [FrameRef(0, 0)]).default_window() == window


def test_auto_window_of_a_constant_image_is_usable():
    window = auto_window(np.full((4, 4), 7, dtype=np.int16))
    assert window.center == 7 and window.width >= 1
    assert to_display(np.full((2, 2), 7, dtype=np.int16), window).dtype == np.uint8


# --- VOI LUT ---------------------------------------------------------------------------------------


def test_voi_lut_clamps_below_first_mapped_and_above_the_last_entry():
    lut = VoiLut(first_mapped=10, table=np.array([0.0, 100.0, 200.0, 255.0]), bits=8)
    # 10 -> entry 0, 11 -> entry 1 ... 13 -> entry 3; below 10 the first entry, above 13 the last.
    assert apply_voi_lut(np.array([-50, 9, 10, 11, 12, 13, 14, 500]), lut).tolist() == [
        0,
        0,
        0,
        100,
        200,
        255,
        255,
        255,
    ]


def test_voi_lut_output_is_scaled_from_its_bit_depth_to_8_bits():
    lut = VoiLut(first_mapped=0, table=np.array([0.0, 1024.0, 4095.0]), bits=12)
    assert apply_voi_lut(np.array([0, 1, 2]), lut).tolist() == [0, 64, 255]  # 1024 * 255 / 4095 = 63.77


def test_voi_lut_of_a_real_file_is_applied_like_pydicom():
    path = shared_dicom("lut-modality-voi-pydicomdata", "vlut_04.dcm")
    header = read_header(path)
    assert header.has_voi_lut and header.window == (None, None)
    image = StackImages([header], [FrameRef(0, 0)]).display(0)
    ds = pydicom.dcmread(path)
    reference = pydicom_apply_voi_lut(ds.pixel_array, ds)  # 16-bit LUT output
    expected = np.rint(reference.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    # This LUT maps 8 bits to 16 linearly; the automatic window would stretch the picture instead.
    values = decode(header)[0]
    assert not np.array_equal(image, to_display(values, auto_window(values)))
    lut = read_voi_lut(header)
    assert (lut.first_mapped, lut.bits, len(lut.table)) == (0, 16, 256)


def test_voi_lut_sequence_in_a_file_is_used_when_it_has_no_window(tmp_path):
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 10, 8])  # 4 entries, first mapped value 10, 8-bit output
    item.add_new("LUTData", "US", [200, 50, 0, 255])  # deliberately not monotonic
    pixels = np.array([[5, 10, 11], [12, 13, 900]], dtype=np.int16)
    path = write_image(tmp_path / "voi.dcm", pixels, modality="MR", VOILUTSequence=Sequence([item]))
    header = read_header(path)
    assert header.has_voi_lut
    image = StackImages([header], [FrameRef(0, 0)]).display(0)
    assert image.tolist() == [[200, 200, 50], [0, 255, 255]]


# --- sizes ------------------------------------------------------------------------------------------


def test_stack_image_with_rectangular_pixels_is_shown_with_square_pixels(tmp_path):
    path = write_image(tmp_path / "us.dcm", np.zeros((50, 80), np.int16), spacing=(0.5, 0.25), window=(0, 10))
    stack = StackImages([read_header(path)], [FrameRef(0, 0)])
    # Rows are 0.5 mm apart, columns 0.25 mm: 50 rows span 25 mm = 100 columns' worth of 0.25 mm.
    assert stack.display(0).shape == (100, 80)
    plane = stack.plane()
    assert (plane.width, plane.height) == (80, 100)


def test_thumbnail_keeps_the_aspect_ratio():
    assert thumbnail(np.zeros((352, 512), np.uint8)).shape == (110, 160)
    assert thumbnail(np.zeros((50, 40, 3), np.uint8)).shape == (50, 40, 3)  # never enlarged


# --- PNG ------------------------------------------------------------------------------------------------


def test_png_round_trip_keeps_grey_pixels():
    image = np.random.default_rng(1).integers(0, 256, size=(37, 53), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(encode_png(image), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (37, 53)
    np.testing.assert_array_equal(decoded, image)


def test_png_round_trip_keeps_rgb_pixels_and_channel_order():
    image = np.random.default_rng(2).integers(0, 256, size=(21, 34, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)  # pure red must stay red
    png = encode_png(image)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)  # OpenCV answers BGR
    np.testing.assert_array_equal(decoded[..., ::-1], image)
    assert decoded[0, 0].tolist() == [0, 0, 255]


def test_png_of_a_decoded_ct_slice_round_trips(tmp_path):
    path = pydicom.data.get_testdata_file("CT_small.dcm")
    header = read_header(Path(path))
    image = to_display(decode(header)[0], Window(40, 400))
    decoded = cv2.imdecode(np.frombuffer(encode_png(image), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, image)
