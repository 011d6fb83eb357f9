"""SEG overlay images against the library ways of doing the same (``python -m bench.segmentation``).

A 512 x 512 x 42 label volume (two overlapping segments over 40 slices, uint8 bits): one axial and
one coronal overlay image cut by nearest neighbour with ``segmentation.nearest_image`` and with
``scipy.ndimage.map_coordinates(order=0)`` on per-pixel coordinates (the results must agree), and
coloured with ``segmentation.overlay_rgba`` and with a per-segment ``scipy.ndimage.binary_erosion``
outline. Prints milliseconds per image (best of 5 x 10).
"""

from __future__ import annotations

import json
import timeit

import numpy as np
from scipy import ndimage

from studies.imaging.planes import Resampler, plan_planes
from studies.imaging.segmentation import FILL_ALPHA, Segment, nearest_image, overlay_rgba
from studies.imaging.volume import FrameRef, Volume

SEGMENTS = [Segment(1, "a", "#ff0000", "", ""), Segment(2, "b", "#00ff00", "", "")]


def labels() -> tuple[Volume, np.ndarray]:
    n, rows, cols = 42, 512, 512
    volume = Volume(
        [FrameRef(k, 0) for k in range(n)],
        rows,
        cols,
        np.array([1.0, 0, 0]),
        np.array([0, 1.0, 0]),
        0.7,
        0.7,
        np.array([-180.0, -180.0, 0.0]),
        np.array([0, 0, 1.0]),
        np.arange(n) * 1.25,
    )
    data = np.zeros((n, rows, cols), dtype=np.uint8)
    yy, xx = np.mgrid[0:rows, 0:cols]
    for k in range(1, n - 1):
        data[k][(yy - 250) ** 2 + (xx - 260) ** 2 < (60 + k) ** 2] |= 1
        data[k][(yy - 300) ** 2 + (xx - 200) ** 2 < 50**2] |= 2
    return volume, data


def scipy_nearest(volume: Volume, data: np.ndarray, plane, index: int) -> np.ndarray:
    geometry = Resampler(volume, data[:1], fill=0)
    j, i = np.mgrid[0 : plane.height, 0 : plane.width].astype(np.float64)
    directions = [np.asarray(plane.x_dir) * plane.pixel_mm, np.asarray(plane.y_dir) * plane.pixel_mm]
    steps = geometry._to_voxel @ np.column_stack([*directions, np.asarray(plane.step_dir) * plane.step_mm])
    base = geometry._to_voxel @ (np.asarray(plane.world(index, 0, 0)) - volume.origin)
    c, r, s = (base[a] + i * steps[a, 0] + j * steps[a, 1] for a in range(3))
    k = np.interp(s, volume.offsets_mm, np.arange(len(volume.offsets_mm), dtype=float))
    return ndimage.map_coordinates(data, [k, r, c], order=0, mode="constant", cval=0)


def erosion_overlay(bits: np.ndarray) -> np.ndarray:
    out = np.zeros((*bits.shape, 4), np.uint8)
    for bit, segment in enumerate(SEGMENTS):
        mask = (bits >> bit) & 1 == 1
        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        out[mask, :3] = [int(segment.color[p : p + 2], 16) for p in (1, 3, 5)]
        out[mask, 3] = FILL_ALPHA
        out[edge, 3] = 255
    return out


def ms(function) -> float:
    return round(min(timeit.repeat(function, number=10, repeat=5)) / 10 * 1000, 2)


def main() -> dict:
    volume, data = labels()
    planes = plan_planes(volume)
    result = {}
    for name, index in (("axial", 20), ("coronal", 256)):
        plane = planes[name]
        bits = nearest_image(volume, data, plane, index)
        assert np.array_equal(bits, scipy_nearest(volume, data, plane, index))
        result[name] = {
            "cut_ms": ms(lambda plane=plane, index=index: nearest_image(volume, data, plane, index)),
            "cut_map_coordinates_ms": ms(lambda plane=plane, index=index: scipy_nearest(volume, data, plane, index)),
            "colour_ms": ms(lambda bits=bits: overlay_rgba(bits, SEGMENTS)),
            "colour_binary_erosion_ms": ms(lambda bits=bits: erosion_overlay(bits)),
        }
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
