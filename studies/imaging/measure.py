"""Values under a point and statistics inside a shape, from an image's stored values (modality
values: HU, Bq/ml...; never the display PNG). Plain Python and numpy, no Django.

Coordinates are the image's pixel coordinates: x along a row (column index), y down a column (row
index), pixel centres at whole numbers, so the image spans -0.5 .. width - 0.5 and -0.5 .. height - 0.5.

- ``inside``: whether a point lies on the image.
- ``roi_stats``: an ``ellipse`` (inscribed in the box x0..x1, y0..y1) or ``rectangle``; the pixels
  whose centres lie inside count. A shape partly off the image is clipped to it (and says so);
  its area is the shape's own (in mm² when the pixel spacing is known), clipped likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHAPES = ("ellipse", "rectangle")
AREA_SAMPLES = 4096  # strips for the area of an ellipse cut by the image's edges


class MeasureError(ValueError):
    """A point or shape that gives no value; the message says why, for the user."""


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float  # population standard deviation (over the n pixels, not n - 1)
    min: float
    max: float
    n: int
    area_mm2: float | None
    area_px: float  # in (square) pixels of the image the shape was drawn on
    clipped: bool


def inside(x: float, y: float, width: int, height: int) -> bool:
    return -0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5


def check_point(x: float, y: float, width: int, height: int) -> None:
    if not (math.isfinite(x) and math.isfinite(y)):
        raise MeasureError("x and y must be finite numbers.")
    if not inside(x, y, width, height):
        raise MeasureError(
            f"The point ({x:g}, {y:g}) is outside the image, which spans x -0.5 to {width - 0.5:g} "
            f"and y -0.5 to {height - 0.5:g}."
        )


def nearest_pixel(x: float, y: float, width: int, height: int) -> tuple[int, int]:
    """(row, column) of the pixel under a point of the image (raises MeasureError off it)."""
    check_point(x, y, width, height)
    return min(int(math.floor(y + 0.5)), height - 1), min(int(math.floor(x + 0.5)), width - 1)


def roi_stats(
    values: np.ndarray, shape: str, x0: float, y0: float, x1: float, y1: float, pixel_area_mm2=None, covered=None
):
    """Statistics of the pixels of ``values`` (height, width) inside the shape; only those that are
    ``covered`` (a boolean mask of the image, if given: pixels of a plane image inside the volume)."""
    if shape not in SHAPES:
        raise MeasureError(f"shape must be one of: {', '.join(SHAPES)}.")
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise MeasureError("x0, y0, x1 and y1 must be finite numbers.")
    height, width = values.shape[:2]
    left, right = sorted((float(x0), float(x1)))
    top, bottom = sorted((float(y0), float(y1)))
    if right - left <= 0 or bottom - top <= 0:
        raise MeasureError("The shape has no area: give corners that differ in both x and y.")
    if right < -0.5 or left > width - 0.5 or bottom < -0.5 or top > height - 0.5:
        raise MeasureError("The shape lies entirely outside the image.")
    clipped = left < -0.5 or top < -0.5 or right > width - 0.5 or bottom > height - 0.5
    c0, c1 = max(math.ceil(left), 0), min(math.floor(right), width - 1)
    r0, r1 = max(math.ceil(top), 0), min(math.floor(bottom), height - 1)
    if c0 > c1 or r0 > r1:
        raise MeasureError("The shape holds no pixel centre: draw it larger.")
    block = values[r0 : r1 + 1, c0 : c1 + 1]
    keep = covered[r0 : r1 + 1, c0 : c1 + 1] if covered is not None else None
    cx, cy = (left + right) / 2, (top + bottom) / 2
    a, b = (right - left) / 2, (bottom - top) / 2
    if shape == "ellipse":
        dx = ((np.arange(c0, c1 + 1) - cx) / a) ** 2
        dy = ((np.arange(r0, r1 + 1) - cy) / b) ** 2
        mask = dy[:, None] + dx[None, :] <= 1.0
        picked = block[mask if keep is None else mask & keep]
        empty = not mask.any()
    else:
        picked = block.reshape(-1) if keep is None else block[keep]
        empty = False
    if picked.size == 0:
        if empty or keep is None:
            raise MeasureError("The shape holds no pixel centre: draw it larger.")
        raise MeasureError("The shape lies outside the scanned volume: no values there.")
    picked = picked.astype(np.float64, copy=False)
    mean = float(picked.mean())
    sd = float(np.sqrt(np.mean((picked - mean) ** 2)))
    area_px = _area(shape, left, top, right, bottom, width, height) if clipped else _full_area(shape, a, b)
    return RoiStats(
        mean=mean,
        sd=sd,
        min=float(picked.min()),
        max=float(picked.max()),
        n=int(picked.size),
        area_mm2=area_px * pixel_area_mm2 if pixel_area_mm2 else None,
        area_px=area_px,
        clipped=clipped,
    )


def _full_area(shape: str, a: float, b: float) -> float:
    return math.pi * a * b if shape == "ellipse" else 4 * a * b


def _area(shape: str, left, top, right, bottom, width: int, height: int) -> float:
    """Area of the shape within the image (-0.5 .. width - 0.5, -0.5 .. height - 0.5)."""
    lo_x, hi_x, lo_y, hi_y = -0.5, width - 0.5, -0.5, height - 0.5
    if shape == "rectangle":
        return max(0.0, min(right, hi_x) - max(left, lo_x)) * max(0.0, min(bottom, hi_y) - max(top, lo_y))
    cx, cy, a, b = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
    start, stop = max(left, lo_x), min(right, hi_x)
    if stop <= start:
        return 0.0
    step = (stop - start) / AREA_SAMPLES
    x = start + (np.arange(AREA_SAMPLES) + 0.5) * step  # midpoints of vertical strips
    half = b * np.sqrt(np.clip(1 - ((x - cx) / a) ** 2, 0, None))
    chord = np.clip(np.minimum(cy + half, hi_y) - np.maximum(cy - half, lo_y), 0, None)
    return float(chord.sum() * step)
