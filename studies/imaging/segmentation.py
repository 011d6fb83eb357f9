"""DICOM Segmentations (SEG) laid onto the volume of the series they segment.

A SEG holds, per segment, binary (or fractional) frames; each frame says where it lies
(PlanePosition in the Frame of Reference) and, usually, which source image it was drawn on
(DerivationImage / SourceImage). ``map_to_volume`` puts every frame onto the slice of the
referenced volume it lies on, in that volume's own pixels (nearest neighbour when the SEG's
in-plane grid differs), one bit per segment so that segments may overlap. ``Labels`` keeps
only the slices that hold a segment (plus an empty slice either side), and ``Labels.plane_image``
cuts any axial, coronal or sagittal image of the referenced series out of them with nearest
neighbour, like the image itself is cut (``planes.Resampler``).

highdicom reads the file (segment descriptions, CIELab colours, bit-packed or fractional frames,
compressed pixel data); the geometry here is ours, since it maps onto our volume grid. Plain
Python: no Django.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .planes import Plane, Resampler
from .volume import Volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MAX_SEGMENTS = 64  # one bit each in a uint64
FILL_ALPHA = 115  # ~0.45 of 255: a segment's inside; its outline is opaque
# used when a segment has no RecommendedDisplayCIELabValue (distinct on grey and on hot PET maps)
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4")
ON_SLICE = 0.25  # a frame lies on a slice when within this share of the slice spacing


class SegmentationError(Exception):
    """The file is no segmentation this code can read; the message says why."""


class Mismatch(Exception):
    """The segmentation cannot be laid onto the referenced series; the message says why."""


@dataclass(frozen=True)
class Segment:
    number: int
    label: str
    color: str  # "#rrggbb"
    category: str
    type: str

    def to_dict(self) -> dict:
        return {
            "number": self.number,
            "label": self.label,
            "color": self.color,
            "category": self.category,
            "type": self.type,
        }


@dataclass(frozen=True)
class SegFrame:
    index: int  # 0-based frame of the file
    segment: int  # segment number
    position: tuple[float, float, float] | None
    source_uid: str | None  # SOP instance UID of the image it was drawn on


@dataclass
class SegFile:
    referenced_series_uids: list[str]
    frame_of_reference_uid: str
    rows: int
    columns: int
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None  # between rows, between columns
    segments: list[Segment]
    frames: list[SegFrame]
    masks: FrameMasks = field(repr=False)  # masks[i]: frame i as a (rows, cols) bool array


def read_segmentation(path) -> SegFile:
    """Segments, frame geometry and the frames' masks of a SEG file (SegmentationError if it is
    not one, or cannot be read)."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
            raise SegmentationError("not a Segmentation Storage object")
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        segments = [_segment(seg, number, i) for i, number in enumerate(seg.segment_numbers)]
        frames = _frames(seg)
        masks = FrameMasks(seg)
    except SegmentationError:
        raise
    except Exception as exc:  # highdicom and pydicom raise many kinds on malformed files
        raise SegmentationError(f"the segmentation could not be read ({type(exc).__name__}: {exc})"[:300]) from exc
    if len(masks) != len(frames):
        raise SegmentationError(f"{len(frames)} frame descriptions for {len(masks)} frames")
    references = [
        str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", []) if "SeriesInstanceUID" in item
    ]
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    orientation = _values(_first(shared, "PlaneOrientationSequence"), "ImageOrientationPatient", 6)
    spacing = _values(_first(shared, "PixelMeasuresSequence"), "PixelSpacing", 2)
    return SegFile(
        referenced_series_uids=references,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        orientation=orientation,
        spacing=spacing,
        segments=segments,
        frames=frames,
        masks=masks,
    )


def frame_of_reference(path) -> str:
    """The FrameOfReferenceUID of a DICOM file ("" if it has none or cannot be read)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["FrameOfReferenceUID"])
        return str(ds.get("FrameOfReferenceUID", "") or "")
    except Exception:  # a file that reads no further has no usable Frame of Reference either
        return ""


def _segment(seg, number: int, position: int) -> Segment:
    description = seg.get_segment_description(number)
    color = PALETTE[position % len(PALETTE)]
    lab = description.get("RecommendedDisplayCIELabValue")
    if lab is not None:
        import highdicom as hd

        try:
            red, green, blue = hd.color.CIELabColor.from_dicom_value(tuple(int(v) for v in lab)).to_rgb()
            color = f"#{red:02x}{green:02x}{blue:02x}"
        except (ValueError, TypeError):
            pass
    return Segment(
        number=int(number),
        label=str(description.segment_label or f"Segment {number}"),
        color=color,
        category=_meaning(description, "segmented_property_category"),
        type=_meaning(description, "segmented_property_type"),
    )


def _meaning(description, attribute: str) -> str:
    try:
        return str(getattr(description, attribute).meaning)
    except (AttributeError, KeyError, IndexError, ValueError):
        return ""


def _frames(seg) -> list[SegFrame]:
    shared = _first(seg, "SharedFunctionalGroupsSequence")
    shared_segment = _int(_first(shared, "SegmentIdentificationSequence"), "ReferencedSegmentNumber")
    shared_position = _values(_first(shared, "PlanePositionSequence"), "ImagePositionPatient", 3)
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    count = int(seg.get("NumberOfFrames", 1) or 1)
    frames = []
    for index in range(count):
        groups = per_frame[index] if index < len(per_frame) else None
        segment = _int(_first(groups, "SegmentIdentificationSequence"), "ReferencedSegmentNumber")
        segment = segment if segment is not None else shared_segment
        if segment is None:
            raise SegmentationError(f"frame {index + 1} names no segment")
        position = _values(_first(groups, "PlanePositionSequence"), "ImagePositionPatient", 3)
        frames.append(SegFrame(index, segment, position or shared_position, _source_uid(groups) or _source_uid(shared)))
    return frames


def _source_uid(groups) -> str | None:
    for derivation in (groups.get("DerivationImageSequence") or []) if groups is not None else []:
        for source in derivation.get("SourceImageSequence") or []:
            if "ReferencedSOPInstanceUID" in source:
                return str(source.ReferencedSOPInstanceUID)
    return None


class FrameMasks:
    """The frames of a SEG as boolean masks, each decoded when asked for (a fractional frame: at
    least half of its maximum); SegmentationError if one cannot be decoded."""

    def __init__(self, seg):
        self.seg = seg
        self.count = int(seg.get("NumberOfFrames", 1) or 1)
        self.fractional = str(seg.get("SegmentationType", "BINARY")) == "FRACTIONAL"
        self.maximum = float(seg.get("MaximumFractionalValue", 255) or 255)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        try:
            frame = np.asarray(self.seg.get_stored_frame(index + 1))
        except Exception as exc:  # the decoders raise many kinds on damaged data
            raise SegmentationError(f"frame {index + 1} could not be decoded ({type(exc).__name__})") from exc
        return frame >= self.maximum / 2 if self.fractional else frame > 0


def _first(ds, keyword: str):
    if ds is None:
        return None
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _values(ds, keyword: str, count: int):
    if ds is None or keyword not in ds:
        return None
    try:
        values = tuple(float(v) for v in ds.get(keyword))
    except (TypeError, ValueError):
        return None
    return values if len(values) == count and all(np.isfinite(values)) else None


def _int(ds, keyword: str) -> int | None:
    if ds is None or keyword not in ds:
        return None
    try:
        return int(ds.get(keyword))
    except (TypeError, ValueError):
        return None


# --- onto the referenced volume -------------------------------------------------------------------


@dataclass
class Labels:
    """One bit per segment (bit i: ``segments[i]``) on the slices ``first_slice`` onwards of the
    referenced volume, in its pixels: ``data[k - first_slice, row, col]``."""

    segments: list[int]
    first_slice: int
    data: np.ndarray
    notes: list[str] = field(default_factory=list)

    def plane_image(self, volume: Volume, plane: Plane, index: int) -> np.ndarray:
        """The bits of image ``index`` of ``plane`` (a plane of ``volume``), nearest neighbour:
        shape (height, width), 0 outside the segmented slices."""
        return nearest_image(volume.slices(self.first_slice, len(self.data)), self.data, plane, index)


def map_to_volume(
    seg: SegFile,
    volume: Volume,
    *,
    frame_of_reference_uid: str = "",
    slice_uids: list[str] | None = None,
) -> Labels:
    """Lay every frame of ``seg`` onto the slice of ``volume`` it lies on (by position in the
    shared Frame of Reference, else by the source image it names: ``slice_uids[k]`` is the SOP
    instance UID of slice k). Raises Mismatch when the geometry does not fit."""
    if seg.frame_of_reference_uid and frame_of_reference_uid and seg.frame_of_reference_uid != frame_of_reference_uid:
        raise Mismatch("its Frame of Reference differs from the referenced series'")
    segments = [s.number for s in seg.segments][:MAX_SEGMENTS]
    notes = []
    if len(seg.segments) > MAX_SEGMENTS:
        notes.append(f"only the first {MAX_SEGMENTS} of its {len(seg.segments)} segments are overlaid")
    bit_of = {number: i for i, number in enumerate(segments)}
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if len(segments) <= 8 * np.dtype(t).itemsize)
    by_uid = {uid: k for k, uid in enumerate(slice_uids or []) if uid}
    geometric = seg.orientation is not None and seg.spacing is not None
    if geometric:
        _check_orientation(seg.orientation, volume)
        to_seg = _in_plane_map(seg, volume)
    placed: dict[int, list[tuple[int, np.ndarray]]] = {}
    for frame in seg.frames:
        if frame.segment not in bit_of:
            if frame.segment not in {s.number for s in seg.segments}:
                raise Mismatch(f"frame {frame.index + 1} names segment {frame.segment}, which is not described")
            continue
        mask = seg.masks[frame.index]
        if geometric and frame.position is not None:
            k = _slice_of(np.asarray(frame.position, dtype=float), volume, frame.index)
            pixels = to_seg(mask, np.asarray(frame.position, dtype=float), k)
        elif frame.source_uid in by_uid:
            k = by_uid[frame.source_uid]
            if (seg.rows, seg.columns) != (volume.rows, volume.columns):
                raise Mismatch(
                    f"its frames are {seg.columns}x{seg.rows} pixels, "
                    f"the referenced images {volume.columns}x{volume.rows}"
                )
            pixels = mask
        else:
            raise Mismatch(f"frame {frame.index + 1} has no position and names no image of the referenced series")
        if mask.any() and not pixels.any():
            raise Mismatch(f"frame {frame.index + 1} lies outside the referenced images")
        placed.setdefault(k, []).append((bit_of[frame.segment], pixels))
    if not placed:
        return Labels(segments, 0, np.zeros((0, volume.rows, volume.columns), dtype=dtype), notes)
    first = max(0, min(placed) - 1)  # an empty slice either side: nearest neighbour stops there
    last = min(len(volume.offsets_mm) - 1, max(placed) + 1)
    data = np.zeros((last - first + 1, volume.rows, volume.columns), dtype=dtype)
    for k, items in placed.items():
        for bit, pixels in items:
            data[k - first][pixels] |= dtype(1) << dtype(bit)
    return Labels(segments, first, data, notes)


def _check_orientation(orientation, volume: Volume) -> None:
    values = np.asarray(orientation, dtype=float)
    row, col = values[:3] / np.linalg.norm(values[:3]), values[3:] / np.linalg.norm(values[3:])
    normal = np.cross(volume.row_dir, volume.col_dir)
    if abs(float(np.dot(np.cross(row, col), normal))) < 1 - 1e-3:
        raise Mismatch("its frames are not parallel to the referenced images")


def _slice_of(position: np.ndarray, volume: Volume, index: int) -> int:
    """The slice a frame at ``position`` lies on (Mismatch if it lies between slices or outside)."""
    normal = np.cross(volume.row_dir, volume.col_dir)
    heights = (volume.origin + np.outer(volume.offsets_mm, volume.stack_dir)) @ normal
    distance = np.abs(heights - float(position @ normal))
    k = int(np.argmin(distance))
    tolerance = max(ON_SLICE * (volume.slice_spacing_mm or 1.0), 1e-3)
    if distance[k] > tolerance:
        raise Mismatch(f"frame {index + 1} lies {distance[k]:.2f} mm from the nearest referenced image")
    return k


def _in_plane_map(seg: SegFile, volume: Volume):
    """A function (mask, frame position, slice k) -> the mask in the volume slice's pixels."""
    values = np.asarray(seg.orientation, dtype=float)
    seg_row = values[:3] / np.linalg.norm(values[:3])
    seg_col = values[3:] / np.linalg.norm(values[3:])
    spacing_row, spacing_col = seg.spacing
    rows, cols = np.arange(volume.rows, dtype=float), np.arange(volume.columns, dtype=float)
    row_step = volume.col_dir * volume.spacing_row_mm  # world step per volume row
    col_step = volume.row_dir * volume.spacing_col_mm

    def to_volume(mask: np.ndarray, position: np.ndarray, k: int) -> np.ndarray:
        origin = volume.origin + volume.offsets_mm[k] * volume.stack_dir - position
        # SEG pixel coordinates of every volume pixel (affine in row and column)
        rr, cc = rows[:, None], cols[None, :]
        c = (origin @ seg_row + rr * (row_step @ seg_row) + cc * (col_step @ seg_row)) / spacing_col
        r = (origin @ seg_col + rr * (row_step @ seg_col) + cc * (col_step @ seg_col)) / spacing_row
        r, c = np.rint(r).astype(np.int64), np.rint(c).astype(np.int64)
        if mask.shape == (volume.rows, volume.columns) and np.all(r == rows[:, None]) and np.all(c == cols[None, :]):
            return mask  # the same grid: no resampling
        inside = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
        out = np.zeros((volume.rows, volume.columns), dtype=bool)
        out[inside] = mask[r[inside], c[inside]]
        return out

    return to_volume


# --- plane images ---------------------------------------------------------------------------------


def nearest_image(volume: Volume, data: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """Image ``index`` of ``plane`` cut from ``data[k, row, col]`` (on ``volume``'s grid) by
    nearest neighbour; 0 where the image leaves the data. Axis-aligned cuts gather along
    broadcast 1-D indices (no per-pixel coordinate arrays): a 512 x 512 axial overlay in 4.7 ms
    against 57 ms for ``scipy.ndimage.map_coordinates(order=0)``, coronal 2.4 ms against 6.8 ms,
    same pixels (``python -m bench.segmentation``, 2 loaded cores)."""
    height, width = plane.height, plane.width
    if len(data) == 0:
        return np.zeros((height, width), dtype=data.dtype)
    # the plane's voxel grid, as the image resampler maps it (nothing is interpolated here)
    base, steps = Resampler(volume, data[:1], fill=0)._geometry(plane, index)
    i = np.arange(width, dtype=float)[None, :]
    j = np.arange(height, dtype=float)[:, None]
    coords = []
    for a in range(3):
        value = np.asarray(base[a], dtype=float).reshape(1, 1)
        if abs(steps[a, 0]) > 1e-9:
            value = value + i * steps[a, 0]
        if abs(steps[a, 1]) > 1e-9:
            value = value + j * steps[a, 1]
        coords.append(value)
    c, r, s = coords
    k = _nearest_slice(volume, s)
    n, rows, cols = data.shape
    r, c = np.rint(r), np.rint(c)
    valid = ~np.isnan(k) & (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
    if not valid.any():
        return np.zeros((height, width), dtype=data.dtype)
    ki = np.where(np.isnan(k), 0, k).astype(np.intp)
    ri = np.clip(r, 0, rows - 1).astype(np.intp)
    ci = np.clip(c, 0, cols - 1).astype(np.intp)
    image = np.broadcast_to(data[ki, ri, ci], (height, width))
    return np.where(np.broadcast_to(valid, (height, width)), image, 0).astype(data.dtype)


def _nearest_slice(volume: Volume, s_mm: np.ndarray) -> np.ndarray:
    offsets = volume.offsets_mm
    half = 0.5 * (volume.slice_spacing_mm or 1.0)
    outside = (s_mm < offsets[0] - half) | (s_mm > offsets[-1] + half)
    k = np.rint(np.interp(s_mm, offsets, np.arange(len(offsets), dtype=float)))
    return np.where(outside, np.nan, k)


def overlay_rgba(bits: np.ndarray, segments: list[Segment], shown: list[int] | None = None) -> np.ndarray:
    """RGBA (height, width, 4) uint8 of the ``shown`` segment numbers (all when None) of a plane
    image's bits (bit i: ``segments[i]``): each segment's inside in its colour at alpha
    FILL_ALPHA, its outline opaque; where segments overlap, the later one is on top. Only the
    box around the labelled pixels is worked on (they are usually a small part of the image), and
    outlines are where the top segment changes: 4.0 ms for a 512 x 512 axial overlay against 22 ms
    with a ``scipy.ndimage.binary_erosion`` per segment (``python -m bench.segmentation``)."""
    height, width = bits.shape
    out = np.zeros((height, width, 4), dtype=np.uint8)
    rows, cols = np.flatnonzero(bits.any(axis=1)), np.flatnonzero(bits.any(axis=0))
    if not len(rows):
        return out
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box = bits[r0:r1, c0:c1]
    top = np.zeros(box.shape, dtype=np.intp)  # 1 + the index in ``colours`` of the segment on top
    colours = [(0, 0, 0)]
    for bit, segment in enumerate(segments):
        if shown is not None and segment.number not in shown:
            continue
        mask = (box >> box.dtype.type(bit)) & 1 == 1
        if mask.any():
            colours.append(tuple(int(segment.color[p : p + 2], 16) for p in (1, 3, 5)))
            top[mask] = len(colours) - 1
    if len(colours) == 1:
        return out
    around = np.pad(top, 1)  # outside the box: nothing
    edge = (
        (top != around[:-2, 1:-1]) | (top != around[2:, 1:-1]) | (top != around[1:-1, :-2]) | (top != around[1:-1, 2:])
    )
    region = out[r0:r1, c0:c1]
    region[..., :3] = np.asarray(colours, dtype=np.uint8)[top]
    region[..., 3] = np.where(top > 0, np.where(edge, 255, FILL_ALPHA), 0)
    return out
