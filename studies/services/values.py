"""Values, not just pixels: the modality value under a point of a plane image and statistics
inside a shape drawn on it, from the stored values of the series (``image_source``), in the
series' unit (HU, SUVbw, Bq/ml...). Callers pass a series they took from ``studies.selectors``;
each answer is audited as image access (``record_images_view``, one event per user and series
per AUDIT_IMAGE_WINDOW).

- A volume plane: the probe interpolates the voxels around the point's world position (so the
  same point answers the same on every plane; at a voxel centre, that voxel); an ROI takes the
  plane image's values (resampled as shown).
- A stack image: the stored frame (shown resized to square pixels: display coordinates are
  mapped back to the frame's), the pixel under the point; position from the frame's
  ImagePositionPatient, ImageOrientationPatient and PixelSpacing when it has them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from audit.services import record_images_view
from studies.imaging import measure
from studies.imaging.measure import MeasureError
from studies.imaging.series import VolumeImages
from studies.imaging.suv import SUV_UNIT, fallback_values
from studies.imaging.volume import display_size
from studies.models import Series
from studies.services import image_source
from studies.services.image_source import NotReady

__all__ = ["MeasureError", "NoSuchImage", "NotReady", "probe", "roi", "series_values"]

_PLANE_VALUES: OrderedDict = OrderedDict()  # (series, version, plane, index) -> (values, covered)
_PLANE_VALUES_LOCK = threading.Lock()
_PLANE_VALUES_MAX = 8


class NoSuchImage(LookupError):
    """The series has no such plane, or the plane no such image (a 404, with the reason)."""


def series_values(series: Series) -> dict:
    """``{"unit", "suv_factor", "suv_problem"}`` as recorded when the series was built, or by its
    modality for series built before (PET then has no SUV until it is built again)."""
    values = (series.layout or {}).get("values")
    return values if values else fallback_values(series.modality)


@dataclass
class _Image:
    """One plane image's stored values and how its display coordinates map onto them."""

    values: np.ndarray  # (rows, columns) of the stored image (a stack frame, or a volume plane image)
    width: int  # of the image as shown
    height: int
    scale: tuple[float, float]  # stored pixels per shown pixel (x, y)
    pixel_area_mm2: float | None  # of a stored pixel
    world: object  # (x, y) in shown pixels -> [x, y, z] mm, or None

    def stored_xy(self, x: float, y: float) -> tuple[float, float]:
        return (x + 0.5) * self.scale[0] - 0.5, (y + 0.5) * self.scale[1] - 0.5


def probe(request, series: Series, plane: str, index: int, x: float, y: float) -> dict:
    """``{"value", "unit", "position_mm", "suv_problem"}`` at (x, y) of image ``index`` of ``plane``."""
    found, units = _source(series, plane, index)
    measure.check_point(x, y, *_size(found, plane, index))
    if isinstance(found.images, VolumeImages):
        grid = found.images.planes[plane]
        world = grid.world(index, y, x)
        value = found.images.resampler.value_at(world)
        if value is None:
            raise MeasureError("No value here: the point lies outside the scanned volume.")
        position = world
    else:
        image = _stack_image(found, index, with_values=True)
        sx, sy = image.stored_xy(x, y)
        row, col = measure.nearest_pixel(sx, sy, image.values.shape[1], image.values.shape[0])
        value = float(image.values[row, col])
        position = image.world(sx, sy)
    record_images_view(request, series)
    factor = units["suv_factor"]
    return {
        "value": _number(value * factor if factor else value),
        "unit": SUV_UNIT if factor else units["unit"],
        "position_mm": [round(float(v), 3) for v in position] if position is not None else None,
        "suv_problem": units["suv_problem"],
    }


def roi(request, series: Series, plane: str, index: int, shape: str, x0, y0, x1, y1) -> dict:
    """``{"mean", "sd", "min", "max", "n", "area_mm2", "unit", "clipped", "suv_problem"}`` of the
    stored values inside ``shape`` (ellipse or rectangle) with corners (x0, y0), (x1, y1)."""
    if shape not in measure.SHAPES:
        raise MeasureError(f"shape must be one of: {', '.join(measure.SHAPES)}.")
    found, units = _source(series, plane, index)
    if isinstance(found.images, VolumeImages):
        grid = found.images.planes[plane]
        values, covered = _plane_values(found, plane, index)
        area = grid.pixel_mm**2 if grid.pixel_mm else None
        stats = measure.roi_stats(values, shape, x0, y0, x1, y1, area, covered)
    else:
        image = _stack_image(found, index, with_values=True)
        # (x + 0.5) * scale - 0.5 maps the shown image's extent onto the stored one's: the same
        # shapes are empty, off the image or clipped in both
        (sx0, sy0), (sx1, sy1) = image.stored_xy(x0, y0), image.stored_xy(x1, y1)
        stats = measure.roi_stats(image.values, shape, sx0, sy0, sx1, sy1, image.pixel_area_mm2)
    record_images_view(request, series)
    factor = units["suv_factor"] or 1.0
    return {
        "mean": _number(stats.mean * factor),
        "sd": _number(stats.sd * factor),
        "min": _number(stats.min * factor),
        "max": _number(stats.max * factor),
        "n": stats.n,
        "area_mm2": round(stats.area_mm2, 3) if stats.area_mm2 is not None else None,
        "unit": SUV_UNIT if units["suv_factor"] else units["unit"],
        "clipped": stats.clipped,
        "suv_problem": units["suv_problem"],
    }


def _number(value: float) -> float:
    return float(f"{value:.7g}")


def _source(series: Series, plane: str, index: int):
    planes = series.planes or {}
    if not planes or not series.render_version:
        raise NotReady()
    if plane not in planes:
        raise NoSuchImage(f"This series has no '{plane}' plane (available: {', '.join(planes)}).")
    count = planes[plane]["count"]
    if not 0 <= index < count:
        raise NoSuchImage(f"Image {index} does not exist: the {plane} plane has {count} images.")
    try:
        found = image_source.source(series.pk, series.render_version)
    except FileNotFoundError:  # a cached copy trimmed away under a kept source: build it again next time
        image_source.forget(series.pk)
        raise NotReady() from None
    if plane not in found.planes or not 0 <= index < found.count(plane):
        raise NotReady()  # the series is being built again: its images will match shortly
    units = found.values or series_values(series)
    return found, units


def _size(found, plane: str, index: int) -> tuple[int, int]:
    if isinstance(found.images, VolumeImages):
        grid = found.images.planes[plane]
        return grid.width, grid.height
    image = _stack_image(found, index, with_values=False)
    return image.width, image.height


def _plane_values(found, plane: str, index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A plane image's values and which of its pixels lie in the volume (None: all), kept for a
    few images per process (an ROI is drawn, moved and resized on one image)."""
    key = (found.series_id, found.version, plane, index)
    with _PLANE_VALUES_LOCK:
        values = _PLANE_VALUES.get(key)
        if values is not None:
            _PLANE_VALUES.move_to_end(key)
            return values
    grid = found.images.planes[plane]
    values = (np.asarray(found.images.values(plane, index)), found.images.resampler.covered(grid, index))
    with _PLANE_VALUES_LOCK:
        _PLANE_VALUES[key] = values
        while len(_PLANE_VALUES) > _PLANE_VALUES_MAX:
            _PLANE_VALUES.popitem(last=False)
    return values


def _stack_image(found, index: int, with_values: bool) -> _Image:
    stack = found.images
    ref = stack.frames[index]
    header = stack.headers[ref.instance]
    if header.is_color:
        raise MeasureError("This is a colour image: its pixels have no single value to measure.")
    frame = header.frames[ref.frame]
    width, height = display_size(header, ref.frame)
    values = stack.instance_frames(ref.instance)[ref.frame] if with_values else None
    spacing = frame.spacing
    pixel_area = spacing[0] * spacing[1] if spacing else None

    def world(sx: float, sy: float):
        if frame.position is None or frame.orientation is None or spacing is None:
            return None
        row_dir, col_dir = np.asarray(frame.orientation[:3]), np.asarray(frame.orientation[3:])
        return np.asarray(frame.position) + sx * spacing[1] * row_dir + sy * spacing[0] * col_dir

    scale = (header.columns / width, header.rows / height)
    return _Image(values, width, height, scale, pixel_area, world)
