"""From modality values to display pixels and PNG bytes.

The order is DICOM's: modality values (rescale already applied) -> VOI (window or VOI LUT)
-> MONOCHROME1 inversion. Windowing follows the standard's linear function (PS3.3 C.11.2.1.2).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

try:  # Intel ISA-L's deflate: about 5x faster than zlib level 1 at a similar size
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - a platform without the isal wheel
    _deflate = zlib

THUMBNAIL_PX = 160
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_FILTER_UP = 2

# int16 value v (viewed as uint16) indexes this table directly: one gather per pixel.
_INT16_VALUES = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.float64)


@dataclass(frozen=True)
class Window:
    center: float
    width: float

    def clamp(self) -> Window:
        return Window(float(self.center), max(float(self.width), 1.0))


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT Sequence item: values from ``first_mapped`` on index ``table``."""

    first_mapped: int
    table: np.ndarray
    bits: int


def window_values(values: np.ndarray, window: Window) -> np.ndarray:
    """DICOM linear window to 0..255 (float64), for any array of modality values."""
    c, w = window.center, max(window.width, 1.0)
    if w <= 1:
        return np.where(values > c - 0.5, 255.0, 0.0)
    out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(out, 0.0, 255.0)


def window_table(window: Window, invert: bool = False) -> np.ndarray:
    """A 65536-entry uint8 table for int16 input viewed as uint16."""
    table = np.rint(window_values(_INT16_VALUES, window)).astype(np.uint8)
    return 255 - table if invert else table


def to_display(
    values: np.ndarray,
    window: Window | None = None,
    invert: bool = False,
    voi_lut: VoiLut | None = None,
    table: np.ndarray | None = None,
) -> np.ndarray:
    """Greyscale modality values -> uint8 display values.

    ``table`` (from ``window_table``) is a faster path for int16 input with a fixed window.
    ``voi_lut`` is used when no window is given.
    """
    if values.dtype == np.int16 and (table is not None or (window is not None and values.size > 65536)):
        if table is None:
            table = window_table(window.clamp(), invert)
        return table[values.view(np.uint16)]
    if window is None and voi_lut is not None:
        out = apply_voi_lut(values, voi_lut)
    else:
        out = np.rint(window_values(values.astype(np.float64, copy=False), (window or auto_window(values)).clamp()))
        out = out.astype(np.uint8)
    return 255 - out if invert else out


def apply_voi_lut(values: np.ndarray, lut: VoiLut) -> np.ndarray:
    index = np.clip(np.rint(values).astype(np.int64) - lut.first_mapped, 0, len(lut.table) - 1)
    top = float((1 << lut.bits) - 1) if lut.bits else float(lut.table.max() or 1)
    scaled = lut.table.astype(np.float64) * (255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)[index]


def auto_window(values: np.ndarray) -> Window:
    """A window from the data when the file has none: the 0.5-99.5 percentile range."""
    sample = values.reshape(-1)
    if sample.size > 2_000_000:
        sample = sample[:: sample.size // 1_000_000]
    sample = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample
    if sample.size == 0:
        return Window(0.0, 1.0)
    lo, hi = percentiles(sample, (0.5, 99.5))
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return Window(lo, 1.0)
    return Window((lo + hi) / 2.0, hi - lo)


HISTOGRAM_MAX_PIXELS = 256 * 256


def percentiles(sample: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(sample, qs)`` (its default, linear method), the same numbers: for small
    images of 8- and 16-bit whole numbers from a histogram of the values instead of a partial sort.

    Measured (`.venv/bin/python bench/window.py`, best of 7, quiet 2-core machine): 64x64 int16
    0.042 ms against np.percentile's 0.136 ms (a stack of small images windows each one on its own:
    0.28 s of the 3000-image upload's 9.6 s); at 512x512 the histogram was no faster (3.7 against
    3.3 ms: numpy's bincount copies to 64-bit first), so larger samples keep np.percentile."""
    if sample.size > HISTOGRAM_MAX_PIXELS or not (
        np.issubdtype(sample.dtype, np.integer) and sample.dtype.itemsize <= 2
    ):
        return [float(v) for v in np.percentile(sample, qs)]
    low = int(sample.min())
    ends = np.cumsum(np.bincount((sample.astype(np.int32) - low).reshape(-1)))
    out = []
    for q in qs:
        position = q / 100 * (sample.size - 1)
        below = int(np.floor(position))
        above, t = min(below + 1, sample.size - 1), position - below
        a, b = (float(np.searchsorted(ends, rank, side="right") + low) for rank in (below, above))
        # numpy's own interpolation, so that the result is the same to the last bit
        out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
    return out


PNG_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # greyscale, RGB, RGBA


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W) greyscale, (H, W, 3) RGB or (H, W, 4) RGBA to PNG bytes.

    Every row uses PNG's "Up" filter (difference to the row above, computed with numpy) and
    the image data is deflated at level 1: medical images compress about as well as with
    libpng's adaptive filters, in a fraction of the time.
    """
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    rows = np.ascontiguousarray(image, dtype=np.uint8).reshape(height, width * channels)
    raw = np.empty((height, width * channels + 1), dtype=np.uint8)
    raw[:, 0] = PNG_FILTER_UP
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", _deflate.compress(raw, 1)), _chunk(b"IEND", b""))
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def thumbnail(image: np.ndarray, size: int = THUMBNAIL_PX) -> np.ndarray:
    """Shrink a display image (uint8) to fit ``size`` x ``size``, keeping its aspect ratio."""
    height, width = image.shape[:2]
    scale = min(size / width, size / height, 1.0)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new_size == (width, height):
        return image
    return cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)


MAX_ASPECT_SIDE = 4096  # a stretched side grows to this at most (as a plane's width and height)


def aspect_size(width: int, height: int, spacing_row_mm: float | None, spacing_col_mm: float | None):
    """(width, height) of an image with square pixels, the stretched side at most MAX_ASPECT_SIDE
    (spacings of 0.001 and 100 mm would make a 8 x 8 image 800,000 pixels long)."""
    if not spacing_row_mm or not spacing_col_mm or abs(spacing_row_mm / spacing_col_mm - 1) < 0.01:
        return width, height
    if spacing_row_mm > spacing_col_mm:
        return width, max(height, min(round(height * spacing_row_mm / spacing_col_mm), MAX_ASPECT_SIDE))
    return max(width, min(round(width * spacing_col_mm / spacing_row_mm), MAX_ASPECT_SIDE)), height


def resize_to_aspect(image: np.ndarray, spacing_row_mm: float, spacing_col_mm: float) -> np.ndarray:
    """Resample an image with non-square pixels so that each pixel is square."""
    height, width = image.shape[:2]
    size = aspect_size(width, height, spacing_row_mm, spacing_col_mm)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
