"""Frames and rendered images of stored instances, for WADO-RS. No Django imports.

``frames(path, numbers, keep_compressed)`` answers the bytes of the requested frames (1-based):
- native (uncompressed) pixel data, little endian, as stored (no rescale, no colour conversion) —
  sliced from the file when it is stored little endian, else decoded;
- or, when the client accepts any transfer syntax and the file is compressed, each stored
  compressed frame as it is, with the file's transfer syntax;
- a compressed file asked for natively is decoded with pydicom (the same pixels as pydicom's
  ``pixel_array``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from studies.imaging.headers import Header, read_header
from studies.imaging.render import THUMBNAIL_PX, Window, thumbnail
from studies.imaging.series import StackImages
from studies.imaging.volume import FrameRef

NATIVE = str(ExplicitVRLittleEndian)
LITTLE_ENDIAN_NATIVE = {str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)}

# Media types of compressed frames (PS3.18 Table 8.7.3-2), by transfer syntax.
COMPRESSED_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}


class FrameNotFound(LookupError):
    """A requested frame number is outside 1..NumberOfFrames."""


@dataclass
class Frames:
    data: Iterable[bytes]  # one item per frame, produced when its turn comes (see ``frames``)
    transfer_syntax: str


def read(path: Path, transfer_syntax: str = "") -> pydicom.Dataset:
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = transfer_syntax or ImplicitVRLittleEndian
    return ds


def is_encapsulated(transfer_syntax: str) -> bool:
    return UID(transfer_syntax).is_encapsulated if transfer_syntax else False


def frame_count(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def frames(path: Path, numbers: list[int], *, keep_compressed: bool, transfer_syntax: str = "") -> Frames:
    """The requested frames, one at a time: only the first is read here (so that a frame that
    cannot be decoded is an error before the answer starts); the others when the answer is sent,
    so that a long list never holds more than one frame beside the file's pixel data."""
    ds = read(path, transfer_syntax)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    count = frame_count(ds)
    for number in numbers:
        if not 1 <= number <= count:
            raise FrameNotFound(f"frame {number} does not exist: the instance has {count} frame(s)")
    if is_encapsulated(syntax) and keep_compressed:
        return _started((get_frame(ds.PixelData, n - 1, number_of_frames=count) for n in numbers), syntax)
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if syntax in LITTLE_ENDIAN_NATIVE and bits in (8, 16, 32, 64) and "PixelData" in ds:
        sliced = _slice_native(ds, numbers, count, bits)
        if sliced is not None:
            return _started(sliced, NATIVE)
    planar = int(ds.get("SamplesPerPixel", 1) or 1) > 1 and int(ds.get("PlanarConfiguration", 0) or 0) == 1

    def decoded(n: int) -> bytes:
        arr = pixel_array(ds, index=n - 1)
        if planar and not is_encapsulated(syntax) and arr.ndim == 3:
            arr = arr.transpose(2, 0, 1)  # keep the layout the metadata states (PlanarConfiguration 1)
        return _little_endian(arr)

    return _started((decoded(n) for n in numbers), NATIVE)


def _started(data: Iterator[bytes], syntax: str) -> Frames:
    first = next(data, None)
    return Frames(data if first is None else itertools.chain([first], data), syntax)


def _slice_native(ds, numbers: list[int], count: int, bits: int) -> Iterator[bytes] | None:
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "YBR_FULL_422":
        return None  # 4:2:2 subsampled: let the decoder lay it out
    size = int(ds.Rows) * int(ds.Columns) * samples * bits // 8
    data = ds.PixelData
    if len(data) < size * count:
        return None
    return (bytes(data[(n - 1) * size : n * size]) for n in numbers)


def _little_endian(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and np.little_endian is False):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.tobytes()


# --- rendered ---------------------------------------------------------------------------------


class RenderError(ValueError):
    """The instance cannot be rendered; the message says why."""


def render(path: Path, frame: int, window: Window | None = None, size: int | None = None) -> np.ndarray:
    """uint8 display image of a frame (1-based): greyscale windowed (the given window, else the
    file's, else from the data), MONOCHROME1 inverted, colour as RGB; shrunk to fit ``size``."""
    header = read_header(path)
    if not isinstance(header, Header):
        raise RenderError(header.reason)
    if not 1 <= frame <= header.number_of_frames:
        raise FrameNotFound(f"frame {frame} does not exist: the instance has {header.number_of_frames} frame(s)")
    try:
        image = StackImages([header], [FrameRef(0, frame - 1)]).display(0, window)
    except Exception as exc:
        raise RenderError(f"the image could not be decoded ({str(exc)[:160]})") from None
    if size:
        image = thumbnail(image, size)
    return image


def encode(image: np.ndarray, media_type: str, quality: int = 90) -> bytes:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if media_type == "image/png":
        ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image))
    else:
        ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RenderError("the image could not be encoded")
    return buffer.tobytes()


__all__ = ["THUMBNAIL_PX", "Frames", "FrameNotFound", "RenderError", "encode", "frames", "render"]
