"""A series' display images: decode its pixels once, then cut and window plane images.

``decode_volume`` fills one (slices, rows, cols) array from the instances of a volume, using
threads on big images (the decoders release the GIL). ``VolumeImages`` and ``StackImages`` answer the display
image (uint8) of any plane/index at the default or a given window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import parallel, pixels
from .headers import Header
from .planes import STACK, Plane, Resampler, plan_planes
from .render import VoiLut, Window, auto_window, resize_to_aspect, to_display, window_table
from .slabs import Slab
from .volume import FrameRef, Volume, display_size

INT16_MIN, INT16_MAX = -32768, 32767


def volume_dtype(headers: list[Header]) -> np.dtype:
    """int16 when every modality value must be a whole number inside int16's range."""
    for h in headers:
        if h.has_modality_lut or h.bits_stored > 16 or h.bits_allocated > 16:
            return np.dtype(np.float32)
        lo = -(1 << (h.bits_stored - 1)) if h.pixel_representation else 0
        hi = (1 << (h.bits_stored - 1)) - 1 if h.pixel_representation else (1 << h.bits_stored) - 1
        for frame in h.frames:
            if frame.slope != 1 or frame.intercept != round(frame.intercept):
                return np.dtype(np.float32)
            if lo + frame.intercept < INT16_MIN or hi + frame.intercept > INT16_MAX:
                return np.dtype(np.float32)
    return np.dtype(np.int16)


def decode_volume(
    headers: list[Header], volume: Volume, threads: int = 2, out: np.ndarray | None = None
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode every instance of ``volume`` into one array (slices, rows, cols).

    Returns the array and {header index: reason} for instances that failed to decode (their
    slices are left at zero; the caller drops them and lays the series out again).
    """
    shape = volume.shape
    data = out if out is not None else np.empty(shape, dtype=volume_dtype([headers[r.instance] for r in volume.frames]))
    slots: dict[int, list[tuple[int, int]]] = {}
    for k, ref in enumerate(volume.frames):
        slots.setdefault(ref.instance, []).append((k, ref.frame))
    failures: dict[int, str] = {}

    def work(instance: int):
        try:
            frames = pixels.decode(headers[instance])
        except pixels.DecodeError as exc:
            return instance, str(exc)
        for k, frame in slots[instance]:
            data[k] = frames[frame]
        return instance, None

    threads = parallel.threads_for(shape[1] * shape[2], parallel.RENDER_THREADED_PIXELS, threads)
    for instance, problem in parallel.map_on(threads, work, list(slots)):
        if problem:
            failures[instance] = problem
    return data, failures


def default_window(headers: list[Header], refs: list[FrameRef], data: np.ndarray | None) -> Window | None:
    """The window of the middle image when the file has one; else from the data (if given)."""
    middle = refs[len(refs) // 2]
    frame = headers[middle.instance].frames[middle.frame]
    if frame.window_center is not None and frame.window_width:
        return Window(frame.window_center, frame.window_width)
    if data is None:
        return None
    return auto_window(data)


def is_inverted(header: Header) -> bool:
    return header.photometric_interpretation == "MONOCHROME1"


@dataclass
class VolumeImages:
    """Plane images of a volume. ``data`` may be a memory map of the stored volume."""

    volume: Volume
    data: np.ndarray
    window: Window
    invert: bool = False
    planes: dict[str, Plane] | None = None  # as planned at ingest (within its limits); else planned here

    def __post_init__(self):
        if self.planes is None:
            self.planes = plan_planes(self.volume)
        self.resampler = Resampler(self.volume, self.data)
        self._tables: dict[Window, np.ndarray] = {}

    def values(self, plane: str, index: int, slab: Slab | None = None) -> np.ndarray:
        if slab is not None:
            return self.resampler.slab(self.planes[plane], index, slab.thickness_mm, slab.mode)
        return self.resampler.image(self.planes[plane], index)

    def display(self, plane: str, index: int, window: Window | None = None, slab: Slab | None = None) -> np.ndarray:
        window = (window or self.window).clamp()
        values = self.values(plane, index, slab)
        if self.data.dtype == np.int16 and values.dtype != np.int16:
            # interpolated whole-number data: back to int16 for the one-gather table window
            values = np.rint(values).astype(np.int16)
        table = None
        if values.dtype == np.int16:
            table = self._tables.get(window)
            if table is None:
                table = self._tables[window] = window_table(window, self.invert)
        return to_display(values, window, self.invert, table=table)


class StackImages:
    """Frames of a non-volume series, one image each, decoded from the original files."""

    def __init__(self, headers: list[Header], frames: list[FrameRef]):
        self.headers = headers
        self.frames = frames
        self._cache: tuple[int, np.ndarray] | None = None

    @property
    def count(self) -> int:
        return len(self.frames)

    def plane(self) -> Plane:
        width = max((self._display_size(ref)[0] for ref in self.frames), default=0)
        height = max((self._display_size(ref)[1] for ref in self.frames), default=0)
        return Plane(STACK, len(self.frames), width, height)

    def _display_size(self, ref: FrameRef) -> tuple[int, int]:
        return display_size(self.headers[ref.instance], ref.frame)

    def instance_frames(self, instance: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != instance:
            self._cache = (instance, pixels.decode(self.headers[instance]))
        return self._cache[1]

    def display(self, index: int, window: Window | None = None) -> np.ndarray:
        ref = self.frames[index]
        return self.render(ref, self.instance_frames(ref.instance)[ref.frame], window)

    def render(self, ref: FrameRef, values: np.ndarray, window: Window | None = None) -> np.ndarray:
        """The display image of frame ``ref`` from its decoded ``values`` (thread-safe)."""
        header = self.headers[ref.instance]
        frame = header.frames[ref.frame]
        if header.is_color:
            image = values
        else:
            voi = None
            if window is None and frame.window_center is not None and frame.window_width:
                window = Window(frame.window_center, frame.window_width)
            if window is None and header.has_voi_lut:
                voi = read_voi_lut(header)
            image = to_display(
                values, window if (window or voi) else auto_window(values), is_inverted(header), voi_lut=voi
            )
        if frame.spacing:
            image = resize_to_aspect(image, *frame.spacing)
        return image

    def default_window(self) -> Window | None:
        if not self.frames or self.headers[self.frames[0].instance].is_color:
            return None
        window = default_window(self.headers, self.frames, None)
        if window is None:
            middle = self.frames[len(self.frames) // 2]
            window = auto_window(self.instance_frames(middle.instance)[middle.frame])
        return window


def read_voi_lut(header: Header) -> VoiLut | None:
    try:
        ds = pixels.read_dataset(header)
        item = ds.VOILUTSequence[0]
        entries, first_mapped, bits = (int(v) for v in item.LUTDescriptor)
        raw = item["LUTData"].value
        if isinstance(raw, bytes):
            dtype = np.uint8 if bits <= 8 and len(raw) == (entries or 65536) else np.uint16
            table = np.frombuffer(raw, dtype=dtype)
        else:
            table = np.asarray(raw)
        if first_mapped > 32767 and header.pixel_representation:
            first_mapped -= 65536
        return VoiLut(first_mapped, table.astype(np.float64), bits)
    except Exception:
        return None


def slices_for_image(volume: Volume, plane: Plane) -> list[int] | None:
    """The (one or two) volume slices an image of ``plane`` is cut from, or None if it crosses
    many (the plane is not parallel to the slices). ``plane`` must be one of the volume's."""
    columns = [volume.row_dir * volume.spacing_col_mm, volume.col_dir * volume.spacing_row_mm, volume.stack_dir]
    to_voxel = np.linalg.inv(np.column_stack(columns))
    middle = plane.count // 2
    corners = [plane.world(middle, r, c) for r in (0, plane.height - 1) for c in (0, plane.width - 1)]
    along = [float((to_voxel @ (corner - volume.origin))[2]) for corner in corners]
    tolerance = 1e-3 * max(volume.slice_spacing_mm, 1e-3)
    if max(along) - min(along) > tolerance:
        return None
    k = float(np.interp(along[0], volume.offsets_mm, np.arange(len(volume.offsets_mm))))
    low = int(np.floor(k + 1e-6))
    high = min(low + 1, len(volume.offsets_mm) - 1)
    return [low] if abs(k - low) < 1e-4 or low == high else [low, high]


def first_volume_image(headers: list[Header], volume: Volume, plane: Plane, window: Window | None, invert: bool):
    """Display image ``plane.count // 2`` decoding only the slices it needs, before the rest of
    the volume is read. Returns (image, window) or None when the image needs the whole volume."""
    needed = slices_for_image(volume, plane)
    if needed is None:
        return None
    refs = [volume.frames[k] for k in needed]
    data = np.stack([pixels.decode(headers[ref.instance])[ref.frame] for ref in refs])
    sub = volume.slices(needed[0], len(needed))
    window = window or auto_window(data)
    values = Resampler(sub, data, fill=float(data.min())).image(plane, plane.count // 2)
    if data.dtype == np.int16 and values.dtype != np.int16:
        values = np.rint(values).astype(np.int16)
    return to_display(values, window.clamp(), invert), window
