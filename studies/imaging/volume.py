"""Series geometry: is a series one regular stack of slices (a volume), and in what order?

Slices are ordered by their position along the slice normal, never by file name or
InstanceNumber. Frames that do not belong to the main stack (localizers, other orientations,
other sizes) are excluded with a reason, never averaged in. A series that is not a volume is a
``stack``: its frames in acquisition order (InstanceNumber, then frame number).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .headers import Header
from .limits import RenderLimits, image_cost
from .render import aspect_size

MIN_VOLUME_SLICES = 3
ORIENTATION_TOLERANCE = 1e-3  # 1 - cos(angle) between orientations of one stack (~2.5 degrees)
MAX_GAP_RATIO = 3.0  # a gap up to 3x the usual spacing is interpolated; beyond, no volume


@dataclass(frozen=True)
class FrameRef:
    """One 2-D image of a series: frame ``frame`` (0-based) of header number ``instance``."""

    instance: int
    frame: int


@dataclass
class Volume:
    """A regular stack of parallel slices, sorted along ``stack_dir``."""

    frames: list[FrameRef]
    rows: int
    columns: int
    row_dir: np.ndarray  # unit vector along a row (increasing column index), LPS
    col_dir: np.ndarray  # unit vector down a column (increasing row index), LPS
    spacing_row_mm: float  # distance between rows
    spacing_col_mm: float  # distance between columns
    origin: np.ndarray  # centre of pixel (0, 0) of frame 0, mm
    stack_dir: np.ndarray  # unit vector from frame 0 towards the last frame
    offsets_mm: np.ndarray  # distance of each frame from frame 0 along stack_dir
    notes: list[str] = field(default_factory=list)

    @property
    def slice_spacing_mm(self) -> float:
        if len(self.offsets_mm) < 2:
            return 0.0
        return float(np.median(np.diff(self.offsets_mm)))

    @property
    def is_uniform(self) -> bool:
        gaps = np.diff(self.offsets_mm)
        return bool(np.all(np.abs(gaps - self.slice_spacing_mm) <= 0.01 * self.slice_spacing_mm + 1e-3))

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.frames), self.rows, self.columns

    def slices(self, first: int, count: int) -> Volume:
        """The volume of ``count`` slices from slice ``first`` (its frame 0 is slice ``first``)."""
        return Volume(
            frames=self.frames[first : first + count],
            rows=self.rows,
            columns=self.columns,
            row_dir=self.row_dir,
            col_dir=self.col_dir,
            spacing_row_mm=self.spacing_row_mm,
            spacing_col_mm=self.spacing_col_mm,
            origin=self.origin + self.offsets_mm[first] * self.stack_dir,
            stack_dir=self.stack_dir,
            offsets_mm=self.offsets_mm[first : first + count] - self.offsets_mm[first],
        )

    def voxel_to_world(self, k: float, r: float, c: float) -> np.ndarray:
        offset = float(np.interp(k, np.arange(len(self.offsets_mm)), self.offsets_mm))
        return (
            self.origin
            + c * self.spacing_col_mm * self.row_dir
            + r * self.spacing_row_mm * self.col_dir
            + offset * self.stack_dir
        )


@dataclass
class Layout:
    """How a series is shown: as a volume, or as a stack of frames in acquisition order."""

    volume: Volume | None
    stack: list[FrameRef]  # the frames of a non-volume series, in display order
    excluded: list[tuple[FrameRef, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    planes: dict | None = None  # a volume's planes (``planes.Plane`` by name), within the limits

    @property
    def frames(self) -> list[FrameRef]:
        return self.volume.frames if self.volume else self.stack


def layout_series(headers: list[Header], limits: RenderLimits | None = None) -> Layout:
    """Decide how the frames of one series (their headers) are laid out, within ``limits``:
    planes that would be more work than the series' files justify are not made (the acquired
    images are shown as a stack), and a stack stops at the limits (the rest left out, noted)."""
    from .planes import plan_planes  # planes works on a Volume: imported here, not at the top

    limits = limits or RenderLimits()
    all_frames = [FrameRef(i, f) for i, h in enumerate(headers) for f in range(h.number_of_frames)]
    stack_order = sorted(all_frames, key=lambda ref: (_instance_key(headers[ref.instance]), ref.instance, ref.frame))

    def stack(notes=()):
        return _capped_stack(headers, stack_order, limits, list(notes))

    if any(h.is_color for h in headers):
        return stack(["colour images: shown as a stack"])

    geometric = [ref for ref in all_frames if _has_geometry(headers, ref)]
    if len(geometric) < MIN_VOLUME_SLICES:
        return stack()

    groups = _group_compatible(headers, geometric)
    main = max(groups, key=len)
    if len(main) < MIN_VOLUME_SLICES:
        return stack()
    volume, problem = _build_volume(headers, main)
    if volume is None:
        return stack([problem] if problem else [])
    planes = plan_planes(volume, limits.max_plane_images)
    problem = _planes_problem(planes, _data_bytes(headers, main), limits)
    if problem:
        return stack([problem])

    in_volume = set(main)
    excluded = []
    for ref in all_frames:
        if ref in in_volume:
            continue
        excluded.append((ref, _exclusion_reason(headers, ref, main[0])))
    notes = list(volume.notes)
    if any(plane.step_mm > step for plane, step in _natural_steps(planes, volume)):
        notes.append(
            f"a plane longer than {limits.max_plane_images:,} images takes larger steps between its images "
            "(INGEST_MAX_PLANE_IMAGES)"
        )
    if excluded:
        notes.append(f"{len(excluded)} image(s) not part of the volume were left out of the planes")
    return Layout(volume, [], excluded, notes, planes=planes)


def _data_bytes(headers: list[Header], refs: list[FrameRef]) -> int:
    return sum(headers[index].file_size for index in {ref.instance for ref in refs})


def _natural_steps(planes: dict, volume: Volume):
    from .planes import PLANE_AXES, natural_step

    return [(plane, natural_step(volume, name)) for name, plane in planes.items() if name in PLANE_AXES]


def _planes_problem(planes: dict, data_bytes: int, limits: RenderLimits) -> str | None:
    images = sum(plane.count for plane in planes.values())
    cost = sum(plane.count * image_cost(plane.width, plane.height) for plane in planes.values())
    if images <= limits.max_series_images and cost <= limits.pixel_budget(data_bytes):
        return None
    return (
        f"no axial, coronal or sagittal planes: they would be {images:,} images of {cost / 1e6:,.1f} million "
        f"pixels from {data_bytes:,} bytes of files, more than this server renders for them (at most "
        f"{limits.max_series_images:,} images and {limits.max_pixels_per_byte:g} pixels per byte; "
        "INGEST_MAX_SERIES_IMAGES, INGEST_MAX_PIXELS_PER_BYTE): the images are shown as acquired"
    )


def _capped_stack(headers: list[Header], order: list[FrameRef], limits: RenderLimits, notes: list[str]) -> Layout:
    """The frames in display order up to the series' image count and pixel budget; the rest are
    left out with the reason (noted per file)."""
    data_bytes = _data_bytes(headers, order)
    budget = limits.pixel_budget(data_bytes)
    cost = 0
    for kept, ref in enumerate(order):
        cost += image_cost(*display_size(headers[ref.instance], ref.frame))
        if kept and (kept >= limits.max_series_images or cost > budget):  # the first image stays
            break
    else:
        return Layout(None, order, notes=notes)
    reason = (
        f"left out: the series' first {kept:,} images are all this server renders for its "
        f"{data_bytes:,} bytes of files (at most {limits.max_series_images:,} images "
        f"and {limits.max_pixels_per_byte:g} pixels per byte; INGEST_MAX_SERIES_IMAGES, INGEST_MAX_PIXELS_PER_BYTE)"
    )
    left_out = order[kept:]
    notes = [*notes, f"{len(left_out):,} image(s) left out: {reason.removeprefix('left out: ')}"]
    return Layout(None, order[:kept], [(ref, reason) for ref in left_out], notes)


def display_size(header: Header, frame: int) -> tuple[int, int]:
    """(width, height) of a frame shown with square pixels."""
    spacing = header.frames[frame].spacing if header.frames else None
    return aspect_size(header.columns, header.rows, *(spacing or (None, None)))


def _instance_key(header: Header) -> int:
    return header.instance_number if header.instance_number is not None else 2**31


def _geometry(headers, ref: FrameRef):
    return headers[ref.instance].frames[ref.frame]


def _has_geometry(headers, ref: FrameRef) -> bool:
    frame = _geometry(headers, ref)
    return frame.position is not None and frame.orientation is not None and frame.spacing is not None


def _same_orientation(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return (
        float(np.dot(a[:3], b[:3])) > 1 - ORIENTATION_TOLERANCE
        and float(np.dot(a[3:], b[3:])) > 1 - ORIENTATION_TOLERANCE
    )


def _compatible(headers, a: FrameRef, b: FrameRef) -> bool:
    ha, hb = headers[a.instance], headers[b.instance]
    fa, fb = _geometry(headers, a), _geometry(headers, b)
    return (
        (ha.rows, ha.columns) == (hb.rows, hb.columns)
        and np.allclose(fa.spacing, fb.spacing, rtol=1e-3, atol=1e-4)
        and _same_orientation(fa.orientation, fb.orientation)
    )


def _group_compatible(headers, refs: list[FrameRef]) -> list[list[FrameRef]]:
    groups: list[list[FrameRef]] = []
    for ref in refs:
        for group in groups:
            if _compatible(headers, group[0], ref):
                group.append(ref)
                break
        else:
            groups.append([ref])
    return groups


def _exclusion_reason(headers, ref: FrameRef, model: FrameRef) -> str:
    if not _has_geometry(headers, ref):
        return "no position or orientation in its header"
    h, hm = headers[ref.instance], headers[model.instance]
    if (h.rows, h.columns) != (hm.rows, hm.columns):
        return f"different image size ({h.columns}x{h.rows}) from the volume ({hm.columns}x{hm.rows})"
    if not _same_orientation(_geometry(headers, ref).orientation, _geometry(headers, model).orientation):
        return "different orientation from the volume (a localizer?)"
    return "different pixel spacing from the volume"


def _build_volume(headers, refs: list[FrameRef]) -> tuple[Volume | None, str | None]:
    first = _geometry(headers, refs[0])
    orientation = np.asarray(first.orientation, dtype=float)
    row_dir = orientation[:3] / np.linalg.norm(orientation[:3])
    col_dir = orientation[3:] / np.linalg.norm(orientation[3:])
    normal = np.cross(row_dir, col_dir)
    positions = np.array([_geometry(headers, ref).position for ref in refs], dtype=float)
    along_normal = positions @ normal
    order = np.argsort(along_normal, kind="stable")
    positions = positions[order]
    refs = [refs[i] for i in order]
    gaps = np.diff(positions @ normal)
    spacing_row_mm, spacing_col_mm = (float(v) for v in first.spacing)

    if np.any(gaps < 1e-3):
        duplicates = int(np.sum(gaps < 1e-3))
        return (
            None,
            f"{duplicates} slice position(s) occur more than once (several time points or echoes): shown as a stack",
        )
    span = positions[-1] - positions[0]
    stack_dir = span / np.linalg.norm(span)
    offsets = (positions - positions[0]) @ stack_dir
    residual = np.linalg.norm((positions - positions[0]) - np.outer(offsets, stack_dir), axis=1)
    if residual.max() > max(0.5, min(spacing_row_mm, spacing_col_mm)):
        return None, "slice positions do not lie on one line: shown as a stack"
    median_gap = float(np.median(np.diff(offsets)))
    notes = []
    if float(np.max(np.diff(offsets))) > MAX_GAP_RATIO * median_gap:
        return None, "slice spacing is too irregular for reconstructions: shown as a stack"
    irregular = np.abs(np.diff(offsets) - median_gap) > 0.01 * median_gap + 1e-3
    if np.any(irregular):
        notes.append(
            f"irregular slice spacing ({int(irregular.sum())} gap(s) differ from {median_gap:.2f} mm): "
            "planes are interpolated at the real positions"
        )
    tilt = float(np.degrees(np.arccos(np.clip(abs(np.dot(stack_dir, normal)), 0, 1))))
    if tilt > 0.5:
        notes.append(f"slices are sheared by {tilt:.1f} degrees (gantry tilt): planes are corrected")
    volume = Volume(
        frames=refs,
        rows=headers[refs[0].instance].rows,
        columns=headers[refs[0].instance].columns,
        row_dir=row_dir,
        col_dir=col_dir,
        spacing_row_mm=spacing_row_mm,
        spacing_col_mm=spacing_col_mm,
        origin=positions[0],
        stack_dir=stack_dir,
        offsets_mm=offsets,
        notes=notes,
    )
    return volume, None


def volume_to_dict(volume: Volume) -> dict:
    """JSON-friendly geometry (frames are left to the caller, who knows their ids)."""
    return {
        "rows": volume.rows,
        "columns": volume.columns,
        "row_dir": [float(v) for v in volume.row_dir],
        "col_dir": [float(v) for v in volume.col_dir],
        "spacing_row_mm": volume.spacing_row_mm,
        "spacing_col_mm": volume.spacing_col_mm,
        "origin": [float(v) for v in volume.origin],
        "stack_dir": [float(v) for v in volume.stack_dir],
        "offsets_mm": [round(float(v), 6) for v in volume.offsets_mm],
    }


def volume_from_dict(data: dict, frames: list[FrameRef] | None = None) -> Volume:
    count = len(data["offsets_mm"])
    return Volume(
        frames=frames if frames is not None else [FrameRef(k, 0) for k in range(count)],
        rows=data["rows"],
        columns=data["columns"],
        row_dir=np.asarray(data["row_dir"], dtype=float),
        col_dir=np.asarray(data["col_dir"], dtype=float),
        spacing_row_mm=float(data["spacing_row_mm"]),
        spacing_col_mm=float(data["spacing_col_mm"]),
        origin=np.asarray(data["origin"], dtype=float),
        stack_dir=np.asarray(data["stack_dir"], dtype=float),
        offsets_mm=np.asarray(data["offsets_mm"], dtype=float),
    )
