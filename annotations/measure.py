"""Geometry of a measurement, from the plane image it was drawn on. Plain Python (no Django).

A plane with geometry (``origin``, ``x_dir``... in ``Series.planes``) maps each drawn pixel to
patient coordinates (LPS mm); lengths and angles are then taken in millimetres in 3D. A stack
without geometry keeps pixel coordinates, and lengths use the series' PixelSpacing if it has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from studies.imaging.planes import Plane

POINT_COUNTS = {"length": 2, "angle": 3, "ellipse": 2, "rectangle": 2, "probe": 1}
ROI_KINDS = ("ellipse", "rectangle")


class MeasureError(ValueError):
    """An impossible measurement: the message says why (shown to the user)."""


@dataclass(frozen=True)
class Geometry:
    points: list[list[float]] | None  # LPS mm, or None for a stack without geometry
    values: dict  # length_mm / angle_deg / area_mm2, as far as the geometry tells


def check_pixels(kind: str, pixels, width: int, height: int) -> list[list[float]]:
    """The drawn points as [[col, row], ...]: the right count for the kind, finite, on the image
    (pixel centres are whole numbers, so the image spans -0.5 .. width - 0.5)."""
    wanted = POINT_COUNTS[kind]
    if not isinstance(pixels, list) or len(pixels) != wanted:
        raise MeasureError(f"A {kind} needs exactly {wanted} point{'s' if wanted > 1 else ''} ([column, row] each).")
    out = []
    for point in pixels:
        if not isinstance(point, list) or len(point) != 2:
            raise MeasureError("Each point is [column, row]: two numbers.")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point):
            raise MeasureError("Point coordinates must be finite numbers.")
        col, row = float(point[0]), float(point[1])
        if not (-0.5 <= col <= width - 0.5 and -0.5 <= row <= height - 0.5):
            raise MeasureError(f"Point ({col:g}, {row:g}) is outside the image ({width} x {height} pixels).")
        out.append([col, row])
    return out


def measure(kind: str, plane: str, info: dict, index: int, pixels: list[list[float]], spacing=None) -> Geometry:
    """Patient coordinates and the values geometry gives. ``spacing`` is (row mm, column mm) for a
    plane without geometry (a stack), or None when unknown."""
    if info.get("origin") is not None:
        grid = Plane.from_dict(plane, info)
        points = [[round(float(v), 4) for v in grid.world(index, row, col)] for col, row in pixels]
        mm = [tuple(p) for p in points]
        along_x = along_y = info["pixel_mm"]
    else:
        points = None
        along_y, along_x = spacing if spacing else (None, None)
        mm = [(col * (along_x or 1.0), row * (along_y or 1.0), 0.0) for col, row in pixels]
    values = {}
    if kind == "length":
        if along_x is not None:
            values["length_mm"] = round(math.dist(mm[0], mm[1]), 3)
        else:
            values["length_px"] = round(math.dist(mm[0], mm[1]), 3)
    elif kind == "angle":
        u = [a - b for a, b in zip(mm[0], mm[1], strict=True)]
        v = [a - b for a, b in zip(mm[2], mm[1], strict=True)]
        nu, nv = math.hypot(*u), math.hypot(*v)
        if nu == 0 or nv == 0:
            raise MeasureError("An angle needs its two arms to have a length.")
        cosine = max(-1.0, min(1.0, sum(a * b for a, b in zip(u, v, strict=True)) / (nu * nv)))
        values["angle_deg"] = round(math.degrees(math.acos(cosine)), 3)
    elif kind in ROI_KINDS:
        (c0, r0), (c1, r1) = pixels
        if abs(c1 - c0) < 1 or abs(r1 - r0) < 1:
            raise MeasureError(f"The {kind} has no area: drag across at least one pixel each way.")
        if along_x is not None:
            area = abs(c1 - c0) * along_x * abs(r1 - r0) * along_y
            values["area_mm2"] = round(area * (math.pi / 4 if kind == "ellipse" else 1.0), 3)
    return Geometry(points, values)


def outline(kind: str, pixels: list[list[float]]) -> list[list[float]]:
    """The points a DICOM graphic of the measurement needs, in the drawn image's pixels: a closed
    polyline for a rectangle (5 points), the major then minor axis end points for an ellipse
    (4 points, PS3.3 C.18.6.1.2), the drawn points otherwise."""
    if kind == "rectangle":
        (c0, r0), (c1, r1) = pixels
        return [[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]]
    if kind == "ellipse":
        (c0, r0), (c1, r1) = pixels
        cx, cy, a, b = (c0 + c1) / 2, (r0 + r1) / 2, abs(c1 - c0) / 2, abs(r1 - r0) / 2
        across = [[cx - a, cy], [cx + a, cy]]
        down = [[cx, cy - b], [cx, cy + b]]
        return across + down if a >= b else down + across
    return [list(p) for p in pixels]


def world_points(plane: str, info: dict, index: int, pixels: list[list[float]]) -> list[list[float]] | None:
    if info.get("origin") is None:
        return None
    grid = Plane.from_dict(plane, info)
    return [[float(v) for v in grid.world(index, row, col)] for col, row in pixels]
