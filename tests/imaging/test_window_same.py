"""The window from the data (``auto_window``) is the one ``np.percentile`` gives, to the last bit:
its histogram path changes the speed, never the picture. Checked on the shared CT, MR and PET,
on a generated image, and on edge cases (constant, tiny, signed 8-bit, float)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest

from studies.imaging.render import Window, auto_window, percentiles, to_display
from tests.conftest import shared_path
from tests.dicomgen import write_image

SHARED_ZIPS = {
    "ct": ("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip"),
    "mr": ("mr-brain-4series-fnndsc", "adi_brain_MR_4series.zip"),
    "pet": ("pt-wholebody-qinheadneck-fnndsc", "QIN-HEADNECK-01-0024_PET_299slices_SEG.zip"),
}


def percentile_window(values: np.ndarray) -> Window:
    """auto_window as it was written before, with np.percentile (the reference)."""
    sample = values.reshape(-1)
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 1_000_000]
    sample = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return Window(lo, 1.0)
    return Window((lo + hi) / 2.0, hi - lo)


def shared_images(kind: str, count: int = 12) -> list[np.ndarray]:
    """Modality values (as the decoder gives them) of ``count`` images spread over the archive."""
    from pydicom.pixels import apply_modality_lut

    with zipfile.ZipFile(shared_path(*SHARED_ZIPS[kind])) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        images = []
        for name in names[:: max(1, len(names) // (3 * count))]:
            try:
                ds = pydicom.dcmread(io.BytesIO(zf.read(name)))
                arr = ds.pixel_array
            except Exception:
                continue  # SEG, SR and other non-images in the archive
            if ds.get("SamplesPerPixel", 1) != 1 or arr.ndim != 2:
                continue
            values = apply_modality_lut(arr, ds)
            images.append(values.astype(np.int16) if np.all(values == np.round(values)) else values)
            if len(images) == count:
                break
    assert images, f"no greyscale image found in the shared {kind} archive"
    return images


@pytest.mark.parametrize("kind", sorted(SHARED_ZIPS))
def test_window_equals_the_percentile_window_on_shared_images(kind):
    for values in shared_images(kind):
        assert auto_window(values) == percentile_window(values)
        assert np.array_equal(to_display(values, auto_window(values)), to_display(values, percentile_window(values)))


def test_window_equals_the_percentile_window_on_generated_images(tmp_path):
    from studies.imaging.headers import read_header
    from studies.imaging.pixels import decode

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 26**2) * 800
    path = write_image(tmp_path / "a.dcm", (disc + rng.normal(0, 40, (64, 64))).clip(0, 4095).astype(np.uint16))
    values = decode(read_header(path))[0]
    assert values.dtype == np.int16
    assert auto_window(values) == percentile_window(values)


@pytest.mark.parametrize(
    "values",
    [
        np.full((5, 7), -1000, dtype=np.int16),
        np.array([[3]], dtype=np.int16),
        np.array([-128, 0, 5, 127, -7], dtype=np.int8),
        np.arange(0, 256, dtype=np.uint8).reshape(16, 16),
        np.random.default_rng(1).integers(-32768, 32767, (250, 251)).astype(np.int16),
        np.random.default_rng(2).normal(0, 3, (40, 40)).astype(np.float32),
    ],
)
def test_percentiles_are_numpys_to_the_last_bit(values):
    for qs in ((0.5, 99.5), (0, 100), (1, 25, 50, 75, 99, 99.9)):
        assert percentiles(values, qs) == [float(v) for v in np.percentile(values, qs)]
    assert auto_window(values) == percentile_window(values)
