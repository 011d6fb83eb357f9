"""Axial, coronal and sagittal planes of a volume, in the radiological convention.

World coordinates are DICOM patient coordinates (LPS: +x to the patient's left, +y posterior,
+z superior). Every plane image has square pixels in millimetres, so its aspect ratio is the
anatomy's, whatever plane the volume was acquired in:

- axial, seen from the feet: patient's right on the image's left, anterior at the top;
  index 0 is the most superior image.
- coronal, seen from the front: right on the left, superior at the top; index 0 most anterior.
- sagittal, seen from the patient's left: anterior on the left, superior at the top;
  index 0 is the right-most image.

A plane is a grid in world space: ``origin`` is the centre of pixel (0, 0) of image 0; a pixel
step is ``pixel_mm`` along ``x_dir`` (columns) or ``y_dir`` (rows); an image step is
``step_mm`` along ``step_dir``. Clients use this to map a point between planes.

A volume acquired oblique (its rows or columns more than half a degree off every world axis) has
a fourth plane, ``acquired``: its own frames in stack order, unresampled but for square pixels,
with the same geometry (``x_dir``/``y_dir`` the frames' row and column directions, ``step_dir``
the slice normal).

``Resampler.slab`` gives a slab's values: the maximum (MIP), minimum (MinIP) or mean of the
volume over a thickness centred on an image, along the plane's normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from .volume import Volume

PLANE_AXES = {
    # name: (x_dir, y_dir, step_dir)
    "axial": ((1, 0, 0), (0, 1, 0), (0, 0, -1)),
    "coronal": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1), (1, 0, 0)),
}
VOLUME_PLANES = tuple(PLANE_AXES)
STACK = "stack"
ACQUIRED = "acquired"
OBLIQUE_COS = float(np.cos(np.radians(0.5)))  # rows or columns this far off every world axis: oblique
SLAB_MODES = ("mip", "minip", "avg")
MAX_PLANE_PIXELS = 4096  # width/height cap; pixels grow instead
EXACT = 1e-4  # coordinates this close to a whole voxel are taken, not interpolated


@dataclass(frozen=True)
class Plane:
    name: str
    count: int
    width: int
    height: int
    pixel_mm: float | None = None
    step_mm: float | None = None
    origin: tuple[float, float, float] | None = None
    x_dir: tuple[float, float, float] | None = None
    y_dir: tuple[float, float, float] | None = None
    step_dir: tuple[float, float, float] | None = None

    def to_dict(self) -> dict:
        data = {"count": self.count, "width": self.width, "height": self.height}
        if self.pixel_mm is not None:
            data.update(
                pixel_mm=round(self.pixel_mm, 6),
                step_mm=round(self.step_mm, 6),
                origin=[round(v, 4) for v in self.origin],
                x_dir=list(self.x_dir),
                y_dir=list(self.y_dir),
                step_dir=list(self.step_dir),
            )
        return data

    @classmethod
    def from_dict(cls, name: str, data: dict) -> Plane:
        def vec(key):
            return tuple(data[key]) if data.get(key) is not None else None

        return cls(
            name,
            data["count"],
            data["width"],
            data["height"],
            data.get("pixel_mm"),
            data.get("step_mm"),
            vec("origin"),
            vec("x_dir"),
            vec("y_dir"),
            vec("step_dir"),
        )

    def world(self, index: float, row: float, col: float) -> np.ndarray:
        return (
            np.asarray(self.origin)
            + col * self.pixel_mm * np.asarray(self.x_dir)
            + row * self.pixel_mm * np.asarray(self.y_dir)
            + index * self.step_mm * np.asarray(self.step_dir)
        )


def _volume_axes(volume: Volume) -> list[tuple[np.ndarray, float]]:
    return [
        (volume.row_dir, volume.spacing_col_mm),
        (volume.col_dir, volume.spacing_row_mm),
        (volume.stack_dir, volume.slice_spacing_mm),
    ]


def volume_bounds(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    n, rows, cols = volume.shape
    corners = np.array(
        [volume.voxel_to_world(k, r, c) for k in (0, n - 1) for r in (0, rows - 1) for c in (0, cols - 1)]
    )
    return corners.min(axis=0), corners.max(axis=0)


def _steps_per_world_axis(volume: Volume) -> list[float]:
    axes = _volume_axes(volume)
    return [axes[int(np.argmax([abs(a[w]) for a, _ in axes]))][1] for w in range(3)]


def natural_step(volume: Volume, name: str) -> float:
    """The step between images of plane ``name`` before any cap: the spacing of the volume axis
    closest to the plane's normal."""
    return _steps_per_world_axis(volume)[int(np.argmax(np.abs(PLANE_AXES[name][2])))]


def plan_planes(volume: Volume, max_images: int | None = None) -> dict[str, Plane]:
    """The axial, coronal and sagittal planes that cover ``volume``.

    Along each world axis the sampling step is the spacing of the volume axis closest to it,
    so an axis-aligned acquisition keeps its own pixels and slices; in-plane, each image takes
    the finer of its two steps for both, to make the pixels square. A plane that would have more
    than ``max_images`` images takes larger steps between them (its pixels stay).
    """
    lo, hi = volume_bounds(volume)
    step_per_world_axis = _steps_per_world_axis(volume)
    planes = {}
    for name, (x_dir, y_dir, step_dir) in PLANE_AXES.items():
        wx, wy, wt = (int(np.argmax(np.abs(d))) for d in (x_dir, y_dir, step_dir))
        pixel_mm = min(step_per_world_axis[wx], step_per_world_axis[wy])
        extent_x, extent_y, extent_t = hi[wx] - lo[wx], hi[wy] - lo[wy], hi[wt] - lo[wt]
        pixel_mm = max(pixel_mm, max(extent_x, extent_y) / (MAX_PLANE_PIXELS - 1))
        step_mm = step_per_world_axis[wt]
        if max_images is not None and int(round(extent_t / step_mm)) + 1 > max(max_images, 2):
            step_mm = extent_t / (max(max_images, 2) - 1)
        origin = np.zeros(3)
        for axis, direction in ((wx, x_dir), (wy, y_dir), (wt, step_dir)):
            origin[axis] = lo[axis] if direction[axis] > 0 else hi[axis]
        planes[name] = Plane(
            name=name,
            count=int(round(extent_t / step_mm)) + 1,
            width=int(round(extent_x / pixel_mm)) + 1,
            height=int(round(extent_y / pixel_mm)) + 1,
            pixel_mm=float(pixel_mm),
            step_mm=float(step_mm),
            origin=tuple(float(v) for v in origin),
            x_dir=tuple(float(v) for v in x_dir),
            y_dir=tuple(float(v) for v in y_dir),
            step_dir=tuple(float(v) for v in step_dir),
        )
    if is_oblique(volume) and (max_images is None or len(volume.frames) <= max(max_images, 2)):
        planes[ACQUIRED] = acquired_plane(volume)
    return planes


def is_oblique(volume: Volume) -> bool:
    """Rows or columns off every world axis (by more than half a degree), slices not sheared: the
    acquired frames are images of their own, which no axial/coronal/sagittal plane shows unresampled.
    (A gantry tilt alone shears the slices: its planes are the usual ones.)"""
    normal = np.cross(volume.row_dir, volume.col_dir)
    aligned = all(float(np.max(np.abs(d))) >= OBLIQUE_COS for d in (volume.row_dir, volume.col_dir))
    sheared = abs(float(np.dot(normal, volume.stack_dir))) < OBLIQUE_COS
    return not aligned and not sheared and len(volume.frames) >= 1


def acquired_plane(volume: Volume) -> Plane:
    """The frames as acquired, with square pixels (the finer spacing), in stack order."""
    n, rows, cols = volume.shape
    pixel_mm = min(volume.spacing_row_mm, volume.spacing_col_mm)
    extent_x, extent_y = (cols - 1) * volume.spacing_col_mm, (rows - 1) * volume.spacing_row_mm
    pixel_mm = max(pixel_mm, max(extent_x, extent_y) / (MAX_PLANE_PIXELS - 1))
    normal = np.cross(volume.row_dir, volume.col_dir)
    normal = normal if float(np.dot(normal, volume.stack_dir)) >= 0 else -normal
    return Plane(
        name=ACQUIRED,
        count=n,
        width=int(round(extent_x / pixel_mm)) + 1,
        height=int(round(extent_y / pixel_mm)) + 1,
        pixel_mm=float(pixel_mm),
        step_mm=float(volume.slice_spacing_mm or 1.0),
        origin=tuple(float(v) for v in volume.origin),
        x_dir=tuple(float(v) for v in volume.row_dir),
        y_dir=tuple(float(v) for v in volume.col_dir),
        step_dir=tuple(float(v) for v in normal),
    )


class Resampler:
    """Cuts plane images out of a volume's voxels (``data[k, row, col]``, modality values)."""

    def __init__(self, volume: Volume, data: np.ndarray, fill: float | None = None):
        self.volume = volume
        self.data = data
        self.fill = float(np.min(data[:: max(1, len(data) // 8)])) if fill is None else fill
        columns = [direction * spacing for direction, spacing in _volume_axes(volume)]
        columns[2] = volume.stack_dir  # third coordinate is millimetres along the stack
        self._to_voxel = np.linalg.inv(np.column_stack(columns))
        self._k_index = np.arange(len(volume.offsets_mm), dtype=float)

    def image(self, plane: Plane, index: int) -> np.ndarray:
        """Image ``index`` of ``plane``: shape (height, width), modality values."""
        if plane.name == ACQUIRED:
            return self._acquired(plane, np.array([self.volume.offsets_mm[index]]), "mip")
        base, steps = self._geometry(plane, index)
        if _is_separable(steps):
            return self._separable(plane, [base], steps, "mip")
        return self._general(plane, base, steps)

    def slab(self, plane: Plane, index: int, thickness_mm: float, mode: str) -> np.ndarray:
        """The ``mode`` (``SLAB_MODES``) of the values over a slab ``thickness_mm`` thick centred on
        image ``index`` of ``plane``: sampled along the plane's normal at its step (finer when the
        slab is thinner than two steps), samples outside the volume left out. Shape and values as
        ``image``; the reduction runs along a volume axis at once when the plane follows the axes."""
        if mode not in SLAB_MODES:
            raise ValueError(f"unknown slab mode {mode!r}")
        offsets = slab_offsets(plane.step_mm, thickness_mm)
        if plane.name == ACQUIRED:
            stack = self.volume.offsets_mm
            positions = float(stack[index]) + offsets
            inside = (positions >= stack[0] - 1e-6) & (positions <= stack[-1] + 1e-6)
            return self._acquired(plane, positions[inside], mode)
        positions = index + offsets / plane.step_mm
        positions = positions[(positions >= -1e-6) & (positions <= plane.count - 1 + 1e-6)]
        bases = [self._geometry(plane, float(position))[0] for position in positions]
        steps = self._geometry(plane, index)[1]
        if _is_separable(steps):
            return self._separable(plane, bases, steps, mode)
        return self._general_slab(plane, bases, steps, mode)

    def _geometry(self, plane: Plane, index: float) -> tuple[np.ndarray, np.ndarray]:
        """Voxel coordinates of pixel (0, 0) of image ``index`` and of one step along each image axis."""
        steps = self._to_voxel @ np.column_stack(
            [
                np.asarray(plane.x_dir) * plane.pixel_mm,
                np.asarray(plane.y_dir) * plane.pixel_mm,
                np.asarray(plane.step_dir) * plane.step_mm,
            ]
        )
        base = self._to_voxel @ (np.asarray(plane.world(index, 0, 0)) - self.volume.origin)
        return base, steps

    # -- stack coordinate (mm) to fractional slice index ------------------------------------
    def _slice_index(self, s_mm: np.ndarray) -> np.ndarray:
        offsets = self.volume.offsets_mm
        half = 0.5 * (self.volume.slice_spacing_mm or 1.0)
        k = np.interp(s_mm, offsets, self._k_index)
        outside = (s_mm < offsets[0] - half) | (s_mm > offsets[-1] + half)
        return np.where(outside, np.nan, k)

    def _separable(self, plane: Plane, bases: list[np.ndarray], steps: np.ndarray, mode: str) -> np.ndarray:
        # Volume coordinate a (0: column, 1: row, 2: stack) follows image axis drivers[a]:
        # 0 = image columns, 1 = image rows, 2 = fixed for this image (several: a slab's samples).
        base = bases[0]
        drivers = [int(np.nonzero(np.abs(steps[a]) > 1e-9)[0][0]) for a in range(3)]
        sizes = (plane.width, plane.height, 1)
        coords = []
        for a in range(3):
            values = base[a] + np.arange(sizes[drivers[a]]) * steps[a, drivers[a]]
            coords.append(self._slice_index(values) if a == 2 else values)
        # data axes are (k, row, col) = volume coordinates (2, 1, 0)
        data_axis_coords = {0: coords[2], 1: coords[1], 2: coords[0]}
        data_axis_driver = {0: drivers[2], 1: drivers[1], 2: drivers[0]}
        fixed_axis = next(ax for ax, drv in data_axis_driver.items() if drv == 2)
        fixed = np.array([b[2 - fixed_axis] for b in bases])  # data axis d is volume coordinate 2 - d
        if fixed_axis == 0:
            fixed = self._slice_index(fixed)
        slab = _reduce_along(self.data, fixed, fixed_axis, mode)
        if slab is None:
            return np.full((plane.height, plane.width), self.fill, dtype=np.float32)
        slab = np.squeeze(slab, axis=fixed_axis)
        remaining = [ax for ax in (0, 1, 2) if ax != fixed_axis]  # slab axes 0 and 1, in order
        coords = [data_axis_coords[ax] for ax in remaining]
        drivers_of = [data_axis_driver[ax] for ax in remaining]
        return self._in_plane(slab, coords, drivers_of)

    def _in_plane(self, slab: np.ndarray, coords: list[np.ndarray], drivers: list[int]) -> np.ndarray:
        """Resample a 2-D cut of the volume along its two axes at fractional ``coords``; ``drivers``
        says which image axis each follows (0 columns, 1 rows). Points outside take ``fill``."""
        invalid = {}
        for slab_axis, values in enumerate(coords):
            slab, invalid[drivers[slab_axis]] = _resample_axis(slab, values, slab_axis)
        if drivers[0] == 0:  # slab rows follow image columns: transpose
            slab = slab.T
        if invalid[1].any() or invalid[0].any():
            slab = slab.astype(np.float32, copy=True) if slab.dtype != np.float32 else slab.copy()
            slab[invalid[1], :] = self.fill
            slab[:, invalid[0]] = self.fill
        return slab

    def _acquired(self, plane: Plane, stack_mm: np.ndarray, mode: str) -> np.ndarray:
        """Frames (a slab of them) at ``stack_mm`` along the stack, as acquired: square pixels only."""
        slab = _reduce_along(self.data, self._slice_index(np.asarray(stack_mm, dtype=float)), 0, mode)
        if slab is None:
            return np.full((plane.height, plane.width), self.fill, dtype=np.float32)
        rows = np.arange(plane.height) * (plane.pixel_mm / self.volume.spacing_row_mm)
        cols = np.arange(plane.width) * (plane.pixel_mm / self.volume.spacing_col_mm)
        return self._in_plane(slab[0], [rows, cols], [1, 0])

    def _general_slab(self, plane: Plane, bases: list[np.ndarray], steps: np.ndarray, mode: str) -> np.ndarray:
        """A slab across the voxel grid: one interpolated image per sample, reduced as they come
        (points outside the volume in a sample are left out of that point's reduction)."""
        result, count = None, None
        for base in bases:
            image = self._general(plane, base, steps, cval=np.nan)
            seen = ~np.isnan(image)
            if result is None:
                result, count = image, seen.astype(np.float32)
            elif mode == "mip":
                np.fmax(result, image, out=result)
            elif mode == "minip":
                np.fmin(result, image, out=result)
            else:
                np.add(np.nan_to_num(result), np.nan_to_num(image), out=result)
                count += seen
        if mode == "avg":
            with np.errstate(invalid="ignore", divide="ignore"):
                result = np.where(count > 0, result / np.maximum(count, 1), np.nan).astype(np.float32)
        result[np.isnan(result)] = self.fill
        return result

    def _general(self, plane: Plane, base: np.ndarray, steps: np.ndarray, cval: float | None = None) -> np.ndarray:
        j, i = np.mgrid[0 : plane.height, 0 : plane.width].astype(np.float64)
        c = base[0] + i * steps[0, 0] + j * steps[0, 1]
        r = base[1] + i * steps[1, 0] + j * steps[1, 1]
        s = base[2] + i * steps[2, 0] + j * steps[2, 1]
        k = self._slice_index(s)
        n, rows, cols = self.data.shape
        coords = []
        for values, size in ((k, n), (r, rows), (c, cols)):
            bad = np.isnan(values) | (values < -0.5) | (values > size - 0.5)
            coords.append(np.where(bad, -10.0, np.clip(values, 0, size - 1)))
        return ndimage.map_coordinates(
            self.data,
            coords,
            order=1,
            mode="constant",
            cval=self.fill if cval is None else cval,
            output=np.float32,
            prefilter=False,
        )


def _is_separable(steps: np.ndarray) -> bool:
    """Does each image axis follow exactly one volume axis (no interpolation across them)?"""
    significant = np.abs(steps) > 1e-9
    return bool(np.all(significant.sum(axis=0) == 1) and np.all(significant.sum(axis=1) == 1))


def slab_offsets(step_mm: float, thickness_mm: float) -> np.ndarray:
    """Sample offsets (mm, along the normal) of a slab centred on 0: every ``step_mm`` within half
    the thickness either side; a slab thinner than two steps takes its centre and both faces."""
    half = thickness_mm / 2.0
    step = step_mm if thickness_mm >= 2 * step_mm else max(half, 1e-6)
    k = int(np.floor(half / step + 1e-6))
    return np.arange(-k, k + 1, dtype=float) * step


def _reduce_along(data: np.ndarray, coords, axis: int, mode: str):
    """The values of ``data`` at fractional ``coords`` along ``axis`` (linear between neighbours),
    reduced to one (``mode``: mip max, minip min, avg mean) with that axis kept (length 1); None
    when every coordinate is outside (NaN). Whole-voxel coordinates are read as they are (a
    contiguous run as a view), so an axis-aligned MIP keeps the volume's dtype."""
    coords = np.asarray(coords, dtype=float).reshape(-1)
    coords = coords[~np.isnan(coords)]
    if coords.size == 0:
        return None
    size = data.shape[axis]
    coords = np.clip(coords, 0.0, size - 1.0)
    low = np.floor(coords).astype(np.intp)
    weight = coords - low
    up = weight > 1 - EXACT
    low = np.where(up, np.minimum(low + 1, size - 1), low)
    weight = np.where(up | (low + 1 >= size), 0.0, weight)
    if np.all(weight < EXACT):
        if low.size > 1 and np.all(np.diff(low) == 1):
            index = [slice(None)] * data.ndim
            index[axis] = slice(int(low[0]), int(low[-1]) + 1)
            block = data[tuple(index)]
        else:
            block = np.take(data, low, axis=axis)
    else:
        shape = [1] * data.ndim
        shape[axis] = low.size
        w = weight.astype(np.float32).reshape(shape)
        high = np.minimum(low + 1, size - 1)
        block = np.take(data, low, axis=axis).astype(np.float32) * (1 - w)
        block += np.take(data, high, axis=axis).astype(np.float32) * w
    if block.shape[axis] == 1:
        return block
    return np.expand_dims(_reduce(block, axis, mode), axis)


_CV_TYPES = (np.int16, np.uint16, np.uint8, np.float32)


def _reduce(block: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """``block`` reduced along ``axis``, the fastest way measured for each case (bench/slabs.py):
    the mean of whole-number cuts by OpenCV's row reduction (numpy converts every element through
    a buffer first), a maximum or minimum one whole cut at a time with an elementwise ufunc, and a
    short inner axis (a sagittal slab of an axial volume) copied in memory order first: numpy's
    reductions along a short axis that is not the first run element by element."""
    if axis == block.ndim - 1:
        rows = np.ascontiguousarray(block)
        flat = rows.reshape(-1, rows.shape[-1])
        if mode == "avg" and flat.dtype in _CV_TYPES:
            return cv2.reduce(flat, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).reshape(rows.shape[:-1])
        reduce = {"mip": np.max, "minip": np.min}.get(mode)
        if reduce is not None:
            return reduce(flat, axis=1).reshape(rows.shape[:-1])
        return flat.mean(axis=1, dtype=np.float32).reshape(rows.shape[:-1])
    block = np.moveaxis(block, axis, 0)  # a view: block[j] is cut j
    if mode == "avg":
        if block.flags.c_contiguous and block.dtype in _CV_TYPES:  # a run of whole slices
            flat = block.reshape(len(block), -1)
            return cv2.reduce(flat, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).reshape(block.shape[1:])
        total = block[0].astype(np.float32)
        for cut in block[1:]:
            np.add(total, cut, out=total)
        return total * np.float32(1.0 / len(block))
    combine = np.maximum if mode == "mip" else np.minimum
    result = np.array(block[0])
    for cut in block[1:]:
        combine(result, cut, out=result)
    return result


def _resample_axis(slab: np.ndarray, values: np.ndarray, axis: int):
    """Linear resampling of ``slab`` along ``axis`` at fractional positions ``values``."""
    size = slab.shape[axis]
    invalid = np.isnan(values) | (values < -0.5) | (values > size - 0.5)
    clipped = np.clip(np.nan_to_num(values, nan=0.0), 0, size - 1)
    low = np.floor(clipped).astype(np.intp)
    weight = clipped - low
    if np.all((weight < EXACT) | (weight > 1 - EXACT)):
        index = np.where(weight > 1 - EXACT, np.minimum(low + 1, size - 1), low)
        if np.array_equal(index, np.arange(size)):
            return slab, invalid
        if len(index) == size and np.array_equal(index, np.arange(size)[::-1]):
            return np.flip(slab, axis=axis), invalid
        return np.take(slab, index, axis=axis), invalid
    high = np.minimum(low + 1, size - 1)
    shape = [1, 1]
    shape[axis] = len(values)
    w = weight.astype(np.float32).reshape(shape)
    out = (
        np.take(slab, low, axis=axis).astype(np.float32) * (1 - w)
        + np.take(slab, high, axis=axis).astype(np.float32) * w
    )
    return out, invalid
