"""Decoding pixel data to modality values (greyscale) or 8-bit RGB (colour).

Files shipped inside the pydicom package are always available; the real-world files under the
shared DICOM folder are used when present and skipped (with the reason) when not.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from studies.imaging import pixels
from studies.imaging.headers import Header, read_header
from studies.imaging.render import Window, to_display
from studies.imaging.series import decode_volume, volume_dtype
from studies.imaging.volume import layout_series
from tests.dicomgen import write_image, write_volume

SHARED_DICOM = Path(os.environ.get("SHARED_DICOM", "/work/shared/dicom"))


def shared_dicom(*parts: str) -> Path:
    """A file under the shared real-DICOM folder, or skip the test when that data is absent."""
    path = SHARED_DICOM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real DICOM test data not available: {path}")
    return path


def packaged(name: str) -> Path:
    """A test file shipped inside the pydicom package (never downloaded)."""
    path = pydicom.data.get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not shipped with this pydicom")
    return Path(path)


def header_of(path: Path) -> Header:
    header = read_header(path)
    assert isinstance(header, Header), header
    return header


def decoded(path: Path) -> np.ndarray:
    return pixels.decode(header_of(path))


# --- rescale and modality LUT ---------------------------------------------------------------------


def test_ct_rescale_intercept_gives_hounsfield_units(tmp_path):
    stored = np.array([[0, 24], [1024, 3071]], dtype=np.uint16)
    path = write_image(tmp_path / "ct.dcm", stored, rescale=(1, -1024), bits_stored=12)
    values = decoded(path)
    assert values.dtype == np.int16
    assert values[0].tolist() == [[-1024, -1000], [0, 2047]]  # stored 0 is air, -1024 HU


def test_rescale_slope_gives_real_values(tmp_path):
    stored = np.array([[0, 1, 100]], dtype=np.int16)
    path = write_image(tmp_path / "pt.dcm", stored, modality="PT", rescale=(2.5, -10))
    values = decoded(path)
    assert values.dtype == np.float32
    assert values[0].tolist() == [[-10.0, -7.5, 240.0]]


def test_rescaled_values_beyond_int16_are_kept_exactly(tmp_path):
    stored = np.array([[0, 65535]], dtype=np.uint16)
    values = decoded(write_image(tmp_path / "big.dcm", stored, rescale=(1, -1024)))
    assert values[0].tolist() == [[-1024, 64511]]


def test_packaged_ct_is_in_hounsfield_units_like_pydicom():
    path = packaged("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert float(ds.RescaleIntercept) == -1024
    values = decoded(path)
    np.testing.assert_array_equal(values[0], apply_modality_lut(ds.pixel_array, ds))
    assert values.min() < 0  # air and fat are negative, not wrapped


def test_modality_lut_is_applied_like_pydicom():
    path = shared_dicom("lut-modality-voi-pydicomdata", "mlut_18.dcm")
    header = header_of(path)
    assert header.has_modality_lut
    values = pixels.decode(header)
    ds = pydicom.dcmread(path)
    expected = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(values[0], expected)
    assert not np.array_equal(values[0], ds.pixel_array)  # the LUT changes the values


def test_volume_array_holds_the_same_values_as_each_file(tmp_path):
    rng = np.random.default_rng(5)
    stored = rng.integers(0, 4096, size=(4, 6, 7), dtype=np.uint16)
    paths = write_volume(tmp_path / "ct", stored, rescale=(1, -1024), bits_stored=12)
    headers = [header_of(p) for p in paths]
    assert volume_dtype(headers) == np.int16
    layout = layout_series(headers)
    data, failures = decode_volume(headers, layout.volume, threads=2)
    assert not failures
    np.testing.assert_array_equal(data, stored.astype(np.int32) - 1024)


def test_volume_of_16_bit_unsigned_ct_does_not_wrap(tmp_path):
    stored = np.array([[[0, 65535]]] * 3, dtype=np.uint16)
    paths = write_volume(tmp_path / "ct", stored, rescale=(1, -1024))
    headers = [header_of(p) for p in paths]
    layout = layout_series(headers)
    data, _ = decode_volume(headers, layout.volume)
    assert data[:, 0, 1].tolist() == [64511] * 3


# --- signed samples in fewer bits than allocated ---------------------------------------------------


def test_signed_12_bit_samples_keep_their_sign_and_ignore_unused_high_bits(tmp_path):
    # Raw 16-bit words; only the low 12 bits are the sample (two's complement, sign at bit 11).
    raw = np.array([[0x0FFF, 0x0800, 0x07FF, 0x0000], [0xF0FF, 0xF800, 0x0001, 0x0F00]], dtype=np.uint16)
    path = write_image(tmp_path / "s12.dcm", raw, modality="MR", bits_stored=12, pixel_representation=1)
    values = decoded(path)
    assert values[0].tolist() == [[-1, -2048, 2047, 0], [255, -2048, 1, -256]]


def test_signed_12_bit_negatives_are_dark_not_bright():
    path = shared_dicom("odd-tags", "12bitSigned_0x0F0F.dcm")
    header = header_of(path)
    values = pixels.decode(header)[0]
    ds = pydicom.dcmread(path)
    raw = np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)
    sample = raw & 0x0FFF
    expected = np.where(sample & 0x0800, sample.astype(np.int32) - 4096, sample)
    np.testing.assert_array_equal(values, expected)
    negative = expected < 0
    assert negative.sum() > 100
    # With the file's window (c=764, w=1646) a zero shows as ((0 - 763.5) / 1645 + 0.5) * 255 = 9.15 -> 9;
    # negatives are darker still (read as unsigned they would be 2048..4095: white).
    image = to_display(values, Window(*header.window))
    assert to_display(np.array([0], np.int16), Window(764, 1646)).tolist() == [9]
    assert image[negative].max() <= 9


def test_unused_high_bits_of_unsigned_12_bit_samples_are_ignored():
    values = decoded(shared_dicom("odd-tags", "12bitUnsigned_0x0F0F.dcm"))
    assert values.min() >= 0 and values.max() <= 4095


# --- one image, many encodings ---------------------------------------------------------------------


def test_nine_transfer_syntaxes_of_one_mr_slice_decode_identically():
    reference = None
    syntaxes = set()
    for number in range(1, 10):
        header = header_of(shared_dicom("mr-transfer-syntaxes-dcmqats", f"{number}.dcm"))
        syntaxes.add(header.transfer_syntax_uid)
        values = pixels.decode(header)
        assert values.shape == (1, 384, 384)
        if reference is None:
            reference = values
            assert (int(values.min()), int(values.max())) == (0, 2362)
        np.testing.assert_array_equal(values, reference, err_msg=f"{number}.dcm ({header.transfer_syntax_uid})")
    assert len(syntaxes) == 7


MR_SMALL_ENCODINGS = [
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
]


@pytest.mark.parametrize("name", MR_SMALL_ENCODINGS)
def test_packaged_mr_decodes_identically_in_every_encoding(name):
    reference = decoded(packaged("MR_small.dcm"))
    assert reference.shape == (1, 64, 64) and reference.max() > 1000
    np.testing.assert_array_equal(decoded(packaged(name)), reference)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("nema-ct1_jpll.dcm", (1, 512, 512)),
        ("nema-ct1_j2ki.dcm", (1, 512, 512)),
        ("CT1_JLSN.dcm", (1, 512, 512)),
        ("MAROTECH_CT_JP2Lossy.dcm", (1, 716, 512)),
        ("TOSHIBA_J2K_SIZ0_PixRep1.dcm", (1, 512, 512)),
        ("nema-us1_j2ki.dcm", (1, 480, 640, 3)),
        ("JPEGExtended_3s_1f_u_08_08.dcm", (1, 576, 768, 3)),
    ],
)
def test_compressed_clinical_images_decode(name, shape):
    values = decoded(shared_dicom("compressed-clinical-nema-wg04", name))
    assert values.shape == shape
    assert values.dtype == (np.uint8 if len(shape) == 4 else np.int16)
    assert values.max() > values.min()


def test_lossless_and_near_lossless_ct_agree():
    lossless = decoded(shared_dicom("compressed-clinical-nema-wg04", "nema-ct1_jpll.dcm")).astype(np.int32)
    near = decoded(shared_dicom("compressed-clinical-nema-wg04", "CT1_JLSN.dcm")).astype(np.int32)
    body = lossless > -1000  # outside the scan circle the two files differ by design
    assert np.abs(lossless - near)[body].max() <= 10


def test_12_bit_jpeg_extended_raises_a_clear_decode_error():
    header = header_of(shared_dicom("compressed-clinical-nema-wg04", "nema-mr1_jply.dcm"))
    with pytest.raises(pixels.DecodeError) as caught:
        pixels.decode(header)
    message = str(caught.value)
    assert "JPEG Extended" in message and "12-bit" in message and "cannot be decoded" in message


def test_packaged_12_bit_jpeg_extended_raises_a_clear_decode_error():
    with pytest.raises(pixels.DecodeError, match="12-bit samples cannot be decoded"):
        decoded(packaged("JPEG-lossy.dcm"))


def test_deflated_file_is_read_and_decodes():
    header = header_of(packaged("image_dfl.dcm"))
    values = pixels.decode(header)
    assert values.shape == (1, 512, 512) and values.max() > values.min()


def test_file_without_meta_information_decodes():
    header = header_of(shared_dicom("secondary-capture", "OT-PAL-8-face.dcm"))
    assert "no file meta" in header.encoding_note
    values = pixels.decode(header)
    assert values.shape == (1, 480, 640, 3) and values.dtype == np.uint8


# --- colour ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("gdcm-US-RGB-8-esopecho.dcm", (1, 120, 256, 3)),  # RGB, interleaved
        ("gdcm-US-RGB-8-epicard.dcm", (1, 480, 640, 3)),  # RGB, planar, big endian
        ("OBXXXX1A_rle_2frame.dcm", (2, 600, 800, 3)),  # palette, RLE
        ("examples_ybr_color.dcm", (30, 240, 320, 3)),  # YBR_FULL_422 JPEG cine
    ],
)
def test_colour_files_decode_to_8_bit_rgb(name, shape):
    values = decoded(shared_dicom("us-color-and-cine", name))
    assert values.shape == shape and values.dtype == np.uint8
    assert values.max() > values.min()


def test_planar_big_endian_rgb_is_interleaved_correctly():
    path = shared_dicom("us-color-and-cine", "gdcm-US-RGB-8-epicard.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PlanarConfiguration == 1
    planes = np.frombuffer(ds.PixelData, np.uint8)[: 3 * ds.Rows * ds.Columns].reshape(3, ds.Rows, ds.Columns)
    np.testing.assert_array_equal(decoded(path)[0], np.moveaxis(planes, 0, -1))


def test_packaged_big_endian_rgb_matches_its_stored_samples():
    path = packaged("ExplVR_BigEnd.dcm")
    ds = pydicom.dcmread(path)
    flat = np.frombuffer(ds.PixelData, np.uint8)[: 3 * ds.Rows * ds.Columns]
    if ds.PlanarConfiguration == 1:
        expected = np.moveaxis(flat.reshape(3, ds.Rows, ds.Columns), 0, -1)
    else:
        expected = flat.reshape(ds.Rows, ds.Columns, 3)
    np.testing.assert_array_equal(decoded(path)[0], expected)


def test_big_and_little_endian_rgb_decode_the_same():
    np.testing.assert_array_equal(
        decoded(packaged("SC_rgb_small_odd_big_endian.dcm")), decoded(packaged("SC_rgb_small_odd.dcm"))
    )


@pytest.mark.parametrize("name", ["SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit.dcm"])
def test_16_and_32_bit_rgb_are_scaled_to_8_bits(name):
    reference = decoded(packaged("SC_rgb_rle.dcm"))
    values = decoded(packaged(name))
    assert values.dtype == np.uint8
    np.testing.assert_array_equal(values, reference)


@pytest.mark.parametrize(
    "name", ["SC_rgb_rle_2frame.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_32bit_2frame.dcm"]
)
def test_multi_frame_rgb_keeps_each_frame(name):
    # The second frame of these files is the first one inverted.
    reference = decoded(packaged("SC_rgb_rle.dcm"))[0]
    values = decoded(packaged(name))
    assert values.shape == (2, 100, 100, 3) and values.dtype == np.uint8
    np.testing.assert_array_equal(values[0], reference)
    np.testing.assert_array_equal(values[1], 255 - reference)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_422_uncompressed.dcm"])
def test_ybr_images_are_converted_to_rgb(name):
    """The YBR encodings of the RGB test pattern come out as that pattern, within lossy-coding error."""
    path = packaged(name)
    assert pydicom.dcmread(path).PhotometricInterpretation.startswith("YBR")
    reference = decoded(packaged("SC_rgb_rle.dcm"))[0].astype(int)
    values = decoded(path)
    assert values.shape == (1, 100, 100, 3) and values.dtype == np.uint8
    assert np.abs(values[0].astype(int) - reference).max() <= 8
    assert values[0, 0, 0].tolist() == pytest.approx([255, 0, 0], abs=8)  # the top-left block is red


def test_palette_colour_uses_the_palette_entries():
    path = packaged("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    entries, first, bits = (int(v) for v in ds.RedPaletteColorLookupTableDescriptor)
    assert bits == 16
    index = np.clip(ds.pixel_array.astype(int) - first, 0, entries - 1)
    expected = np.stack(
        [
            np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, "<u2")[index]
            for colour in ("Red", "Green", "Blue")
        ],
        axis=-1,
    )
    expected = np.rint(expected / 257).astype(np.uint8)  # 16-bit entries to 8 bits
    values = decoded(path)
    assert values.shape == (1, *ds.pixel_array.shape, 3)
    np.testing.assert_array_equal(values[0], expected)


def test_colour_written_by_dicomgen_round_trips(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decoded(write_image(tmp_path / "rgb.dcm", rgb))[0], rgb)


def test_a_plain_native_file_short_of_its_pixels_is_told_from_its_header(tmp_path):
    """native_problem (the ingest's check of a stack the render chunks draw) says what reading the
    file would find: every frame there, or not."""
    from studies.imaging.headers import read_header

    path = write_image(tmp_path / "a.dcm", np.arange(12, dtype=np.uint16).reshape(3, 4), modality="MR")
    header = read_header(path)
    assert pixels.is_plain_native(header) and pixels.native_problem(header) is None
    header.file_size -= 2  # the last pixel missing, as from a header whose PixelData length says nothing
    path.write_bytes(path.read_bytes()[:-2])
    assert pixels.native_problem(header) == pixels.NATIVE_SHORT
    with pytest.raises(pixels.DecodeError, match="shorter"):
        pixels.decode(header)
