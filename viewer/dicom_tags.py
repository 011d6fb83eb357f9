"""The DICOM header behind the image on screen, for the tag browser. Plain Python, no Django.

``source_frame`` finds the stored instance (and frame) an image comes from: for a stack image or
a volume plane parallel to the acquisition, that very slice; for a reconstruction (a plane across
the acquired slices, or one interpolated between them), the acquired slice nearest a point of
the image, its centre unless a row and column are given.

``header_rows`` flattens a pydicom Dataset (read with ``stop_before_pixels``) into rows of tag,
keyword, name, VR and a readable value, sequences indented under their items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from studies.imaging.planes import STACK, Plane
from studies.imaging.volume import volume_from_dict

PER_FRAME_GROUPS = 0x52009230  # PerFrameFunctionalGroupsSequence
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
MAX_VALUES = 64


@dataclass(frozen=True)
class Source:
    instance_pk: int
    frame: int
    reconstruction: bool
    distance_mm: float | None = None  # from the image point to the source slice


def source_frame(layout: dict, planes: dict, plane: str, index: int, row=None, col=None) -> Source:
    """The source of image ``index`` of ``plane``. Raises KeyError (no such plane), IndexError."""
    info = planes[plane]
    if not 0 <= index < info["count"]:
        raise IndexError(index)
    frames = layout.get("frames") or []
    if plane == STACK or layout.get("kind") != "volume":
        instance_pk, frame = frames[index]
        return Source(instance_pk, frame, reconstruction=False)
    grid = Plane.from_dict(plane, info)
    volume = volume_from_dict(layout["volume"])
    row = (grid.height - 1) / 2 if row is None else min(max(float(row), 0.0), grid.height - 1.0)
    col = (grid.width - 1) / 2 if col is None else min(max(float(col), 0.0), grid.width - 1.0)
    offset_mm = float(np.dot(grid.world(index, row, col) - volume.origin, volume.stack_dir))
    nearest = int(np.argmin(np.abs(volume.offsets_mm - offset_mm)))
    distance_mm = abs(float(volume.offsets_mm[nearest]) - offset_mm)
    parallel = abs(float(np.dot(grid.step_dir, volume.stack_dir))) > 0.999
    on_slice = distance_mm <= 0.05 * (volume.slice_spacing_mm or 1.0) + 1e-3
    instance_pk, frame = frames[nearest]
    return Source(instance_pk, frame, reconstruction=not (parallel and on_slice), distance_mm=round(distance_mm, 3))


@dataclass
class Limits:
    max_rows: int = 5000
    max_levels: int = 4  # sequences nested deeper than this are summarised
    max_items: int = 50  # items shown per sequence


def read_header_rows(path: Path, frame: int | None = None, limits: Limits | None = None) -> tuple[list[dict], bool]:
    """Rows of the file's meta information and data set, without reading the pixel data.

    For a multi-frame image, only the per-frame functional group item of ``frame`` (0-based) is
    shown. Returns the rows and whether some were left out to respect the limits.
    """
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    limits = limits or Limits()
    rows: list[dict] = []
    truncated = False
    for part in (getattr(ds, "file_meta", None), ds):
        if part is not None and len(part):
            truncated = dataset_rows(part, rows, limits, frame=frame) or truncated
    return rows, truncated


def dataset_rows(ds: Dataset, rows: list[dict], limits: Limits, level: int = 0, frame: int | None = None) -> bool:
    """Append the rows of ``ds`` (indented by sequence level); True if some were left out."""
    truncated = False
    for tag in ds.keys():
        if len(rows) >= limits.max_rows:
            return True
        if tag == 0x7FE00010:  # Pixel Data
            continue
        try:
            elem = ds[tag]
        except Exception:
            rows.append(_row(tag, "", "", "", "(could not be read)", 2 * level))
            continue
        rows.append(_row(tag, elem.keyword, elem.name, elem.VR, describe_value(elem), 2 * level))
        if elem.VR != "SQ" or not elem.value:
            continue
        if level + 1 >= limits.max_levels:
            truncated = True
            continue
        if tag == PER_FRAME_GROUPS and frame is not None and level == 0 and 0 <= frame < len(elem.value):
            rows.append(_row(0xFFFEE000, "", f"Item {frame + 1} (this frame)", "", "", 1))
            truncated = dataset_rows(elem.value[frame], rows, limits, 1) or truncated
            continue
        for number, item in enumerate(elem.value, start=1):
            if number > limits.max_items:
                more = len(elem.value) - limits.max_items
                rows.append(_row(0xFFFEE000, "", f"… {more} more items not shown", "", "", 2 * level + 1))
                truncated = True
                break
            rows.append(_row(0xFFFEE000, "", f"Item {number}", "", "", 2 * level + 1))
            truncated = dataset_rows(item, rows, limits, level + 1) or truncated
    return truncated


def _row(tag: int, keyword: str, name: str, vr, value: str, depth: int) -> dict:
    tag = int(tag)
    return {
        "tag": f"{tag >> 16:04X},{tag & 0xFFFF:04X}",
        "keyword": keyword,
        "name": name,
        "vr": getattr(vr, "value", vr),
        "value": value,
        "depth": depth,
    }


def describe_value(elem, max_chars: int = 300) -> str:
    """A readable value: text as is, numbers joined with backslashes, binary data by its size."""
    try:
        value = elem.value
    except Exception:
        return "(could not be read)"
    if elem.VR == "SQ":
        count = len(value or [])
        return f"{count} item" + ("" if count == 1 else "s")
    if value is None or value == "":
        return ""
    if isinstance(value, bytes | bytearray) or elem.VR in BINARY_VRS:
        data = bytes(value) if isinstance(value, bytes | bytearray) else b""
        if data and len(data) <= 16:
            return data.hex(" ").upper()
        return f"({len(data) if data else 'binary'} bytes)" if data else "(binary data)"
    if isinstance(value, MultiValue | list | tuple):
        shown = "\\".join(str(item) for item in list(value)[:MAX_VALUES])
        text = shown + (f" … ({len(value)} values)" if len(value) > MAX_VALUES else "")
    else:
        text = str(value)
    text = text.replace("\x00", "").strip()
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
