"""The read side of images: what it takes to render any image of a series version, from the
storage alone (no database), for the workers' render chunks and for images asked for at another
window or before a worker has rendered them.

A version's ``source.json`` (written by ``series_build`` once the series is decoded) names its
kind, planes, default window and geometry; a volume's voxels are in ``volume.npy``, a stack's
frames in its originals. Sources are kept per process (a few), their files on this host (used in
place in a local folder, else copies in the scratch cache).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from studies import scratch, storage
from studies.imaging import header_json
from studies.imaging.headers import Header, read_header
from studies.imaging.planes import Plane
from studies.imaging.render import Window, encode_png
from studies.imaging.series import StackImages, VolumeImages
from studies.imaging.slabs import Slab, check_slab
from studies.imaging.volume import FrameRef, volume_from_dict

_SOURCES: OrderedDict = OrderedDict()  # (series id, version) -> Source
_SOURCES_LOCK = threading.Lock()
_SOURCES_MAX = 8


class NotReady(Exception):
    """The series' pixels are not decoded yet; ask again shortly."""


@dataclass
class Source:
    series_id: int
    version: int
    planes: dict
    images: VolumeImages | StackImages
    values: dict | None = None  # {"unit", "suv_factor", "suv_problem"}; None when built before they were

    def display(self, plane: str, index: int, window: Window | None = None, slab: Slab | None = None) -> np.ndarray:
        if slab is not None:
            check_slab(slab, plane, self.planes.get(plane) or {})
        if isinstance(self.images, VolumeImages):
            return self.images.display(plane, index, window, slab)
        return self.images.display(index, window)

    def count(self, plane: str) -> int:
        return (self.planes.get(plane) or {}).get("count", 0)


def manifest(
    *,
    kind: str,
    planes: dict,
    window: Window | None,
    invert: bool,
    volume: dict | None,
    frames,
    values=None,
    headers: dict | None = None,
) -> dict:
    """The content of source.json (``frames``: [[original name, frame], ...] for a stack;
    ``headers``: {original name: ``header_json.to_json``} of a stack's files, so that rendering
    reads no header; ``values``: the unit of the stored values and the SUV factor,
    ``suv.series_values``)."""
    return {
        "values": values,
        "kind": kind,
        "planes": planes,
        "window": [window.center, window.width] if window else None,
        "invert": invert,
        "volume": volume,
        "frames": frames if kind == "stack" else None,
        "headers": headers if kind == "stack" else None,
    }


def source(series_id: int, version: int, headers: list[Header] | None = None, frames=None, fetch=True) -> Source:
    """The image source of a series version (kept per process). ``headers`` and ``frames`` (a
    stack's, already read by the caller) save reading them again. With ``fetch`` False, a volume
    that is neither in a local storage folder nor in this host's cache raises NotReady instead of
    being fetched (hundreds of megabytes: worth it for a window, not for one image a worker is
    about to store anyway)."""
    key = (series_id, version)
    with _SOURCES_LOCK:
        found = _SOURCES.get(key)
        if found is not None:
            _SOURCES.move_to_end(key)
            return found
    built = _build(series_id, version, headers, frames, fetch)
    with _SOURCES_LOCK:
        _SOURCES[key] = built
        while len(_SOURCES) > _SOURCES_MAX:
            _SOURCES.popitem(last=False)
    return built


def forget(series_id: int) -> None:
    with _SOURCES_LOCK:
        for key in [key for key in _SOURCES if key[0] == series_id]:
            del _SOURCES[key]


def clear() -> None:
    with _SOURCES_LOCK:
        _SOURCES.clear()


def _build(series_id: int, version: int, headers, frames, fetch: bool) -> Source:
    try:
        info = storage.read_json(storage.manifest_name(series_id, version))
    except FileNotFoundError:
        raise NotReady() from None
    window = Window(*info["window"]) if info.get("window") else None
    if info["kind"] == "volume":
        name = storage.volume_name(series_id, version)
        if not fetch and storage.local_path(name) is None and not scratch.cache_path(name).exists():
            raise NotReady()
        try:
            path = storage.local_copy(name)
        except FileNotFoundError:
            raise NotReady() from None
        data = np.load(path, mmap_mode="r")
        volume = volume_from_dict(info["volume"])
        planes = {name: Plane.from_dict(name, plane) for name, plane in info["planes"].items()}
        images = VolumeImages(volume, data, window or Window(0, 1), bool(info.get("invert")), planes)
        return Source(series_id, version, info["planes"], images, info.get("values"))
    if headers is None:
        names = list(dict.fromkeys(name for name, _ in info["frames"]))
        index_of = {name: number for number, name in enumerate(names)}
        headers = LazyHeaders(names, info.get("headers") or {})  # no "headers": written before they were kept
        frames = [FrameRef(index_of[name], frame) for name, frame in info["frames"]]
    return Source(series_id, version, info["planes"], StackImages(headers, frames), info.get("values"))


class LazyHeaders:
    """Headers of stored originals, each read (and fetched to this host) the first time it is
    needed: a stack of thousands of images must not read thousands of headers to render one."""

    def __init__(self, names: list[str], known: dict[str, dict] | None = None):
        self.names = names
        self.known = known or {}  # name -> header_json: no need to read the file's header
        self._read: dict[int, Header] = {}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Header:
        header = self._read.get(index)
        if header is None:
            try:
                path = storage.local_copy(self.names[index])
            except FileNotFoundError:
                raise NotReady() from None
            name = self.names[index]
            if name in self.known:
                header = header_json.from_json(self.known[name], path, name)
            else:
                header = read_header(path)
                if not isinstance(header, Header):
                    raise NotReady()
            self._read[index] = header
        return header


def render_png(
    series_id: int,
    version: int,
    plane: str,
    index: int,
    window: Window | None = None,
    fetch: bool = True,
    slab: Slab | None = None,
) -> bytes:
    """An image rendered now, at the default or another window, or a slab (cached on this host).
    Raises NotReady, IndexError for an image the plane does not have, and SlabError for a slab
    the plane cannot give (a stack, thicker than the volume)."""
    found = source(series_id, version, fetch=fetch)
    if not 0 <= index < found.count(plane):
        raise IndexError(index)
    name = storage.window_image_name(series_id, version, plane, index, window, slab)
    cached = scratch.get(name)
    if cached is not None:
        return cached
    png = encode_png(found.display(plane, index, window, slab))
    scratch.put(name, png)
    return png
