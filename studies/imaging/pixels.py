"""Decode pixel data into modality values (greyscale) or 8-bit RGB (colour).

Compressed transfer syntaxes decode through pydicom's pixel backends with the pylibjpeg plugins
(JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE); deflate is pydicom's own.
"""

from __future__ import annotations

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut

from .headers import Header

INT16 = np.iinfo(np.int16)


class DecodeError(Exception):
    """The pixels of a file could not be decoded; the message says why, in plain words."""


def read_dataset(header: Header):
    ds = pydicom.dcmread(header.path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = header.transfer_syntax_uid
    return ds


def decode(header: Header) -> np.ndarray:
    """All frames of one instance.

    Greyscale: shape (frames, rows, cols) of modality values (rescale or Modality LUT applied),
    int16 when the values are whole numbers that fit, else float32.
    Colour: shape (frames, rows, cols, 3), uint8 RGB (YBR converted, palettes applied).
    A decode that runs out of memory (the worker's cap, WORKER_MEMORY_LIMIT_MB) is a DecodeError.
    """
    try:
        return _decode(header)
    except MemoryError:
        raise DecodeError(
            f"not enough memory to decode {header.columns} x {header.rows} pixels x {header.number_of_frames} "
            "frames on this server"
        ) from None


def _decode(header: Header) -> np.ndarray:
    if is_plain_native(header):
        raw = _read_native(header)
        return _rescale_int16(raw, header) if _fits_int16(header) else modality_values(None, raw, header)
    try:
        ds = read_dataset(header)
        arr = ds.pixel_array
    except Exception as exc:
        raise DecodeError(_decode_message(header, exc)) from None
    if arr.shape[-2 if header.samples_per_pixel == 1 else -3 :][:2] != (header.rows, header.columns):
        raise DecodeError(f"decoded image size {arr.shape} does not match Rows x Columns")
    frames = header.number_of_frames
    if header.is_color:
        return _colour(ds, arr, header, frames)
    arr = arr.reshape(frames, header.rows, header.columns)
    return modality_values(ds, arr, header)


def is_plain_native(header: Header) -> bool:
    """Uncompressed little-endian greyscale that can be read straight from the file."""
    return (
        header.pixel_offset is not None
        and header.samples_per_pixel == 1
        and header.bits_allocated in (8, 16)
        and 0 < header.bits_stored <= header.bits_allocated
        and header.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
        and not header.has_modality_lut
    )


def _fits_int16(header: Header) -> bool:
    """Whole-number rescale whose every possible result fits int16: one pass, no wide temporaries."""
    lo = -(1 << (header.bits_stored - 1)) if header.pixel_representation else 0
    hi = (1 << (header.bits_stored - 1)) - 1 if header.pixel_representation else (1 << header.bits_stored) - 1
    for frame in header.frames:
        if frame.slope != 1 or frame.intercept != round(frame.intercept):
            return False
        if lo + frame.intercept < INT16.min or hi + frame.intercept > INT16.max:
            return False
    return True


def _rescale_int16(raw: np.ndarray, header: Header) -> np.ndarray:
    out = np.empty(raw.shape, dtype=np.int16)
    for index, frame in enumerate(header.frames):
        np.add(raw[index], np.int32(frame.intercept), out=out[index], casting="unsafe")
    return out


NATIVE_SHORT = "pixel data is shorter than Rows x Columns x frames"


def native_problem(header: Header) -> str | None:
    """Why a plain native file (``is_plain_native``) cannot be read, from its header alone: its
    pixels would run past the end of the file. None when reading it will give every frame."""
    count = header.number_of_frames * header.rows * header.columns
    if header.pixel_offset + count * (header.bits_allocated // 8) > header.file_size:
        return NATIVE_SHORT
    return None


def _read_native(header: Header) -> np.ndarray:
    """Frames straight from the file (no full parse): the same values pydicom's decoder gives."""
    signed = header.pixel_representation == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{header.bits_allocated // 8}")
    count = header.number_of_frames * header.rows * header.columns
    arr = np.fromfile(header.path, dtype=dtype, count=count, offset=header.pixel_offset)
    if arr.size != count:
        raise DecodeError(NATIVE_SHORT)
    unused = header.bits_allocated - header.bits_stored
    if unused:  # bits above BitsStored carry no value (overlays, junk): drop them, keep the sign
        if signed:
            arr = (arr << unused) >> unused
        else:
            arr = arr & dtype.type((1 << header.bits_stored) - 1)
    return arr.reshape(header.number_of_frames, header.rows, header.columns)


def modality_values(ds, arr: np.ndarray, header: Header) -> np.ndarray:
    if header.has_modality_lut:
        try:
            out = apply_modality_lut(arr, ds)
        except Exception as exc:
            raise DecodeError(f"Modality LUT could not be applied ({exc})") from None
        return _compact(np.asarray(out))
    slopes = np.array([f.slope for f in header.frames], dtype=np.float64)
    intercepts = np.array([f.intercept for f in header.frames], dtype=np.float64)
    if np.all(slopes == 1) and np.all(intercepts == np.round(intercepts)):
        if np.all(intercepts == 0) and arr.dtype in (np.int16, np.uint8, np.int8):
            return arr.astype(np.int16, copy=False)
        out = arr.astype(np.int32) + intercepts.astype(np.int32)[:, None, None]
        return _compact(out)
    out = (
        arr.astype(np.float32) * slopes.astype(np.float32)[:, None, None] + intercepts.astype(np.float32)[:, None, None]
    )
    return out


def _compact(arr: np.ndarray) -> np.ndarray:
    """int16 when every value is a whole number inside its range, else float32."""
    if arr.size == 0:
        return arr.astype(np.int16)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if INT16.min <= lo and hi <= INT16.max:
            return arr.astype(np.int16)
        return arr.astype(np.float32)
    if np.all(np.mod(arr, 1) == 0) and arr.min() >= INT16.min and arr.max() <= INT16.max:
        return arr.astype(np.int16)
    return arr.astype(np.float32)


def _colour(ds, arr: np.ndarray, header: Header, frames: int) -> np.ndarray:
    if header.photometric_interpretation == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as exc:
            raise DecodeError(f"palette could not be applied ({exc})") from None
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            top = float(arr.max()) or 1.0
            arr = (arr.astype(np.float32) * (255.0 / (65535.0 if top > 255 else 255.0))).round().astype(np.uint8)
    elif arr.dtype != np.uint8:
        top = (1 << header.bits_stored) - 1 if header.bits_stored else float(arr.max() or 1)
        arr = np.clip(arr.astype(np.float32) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if arr.ndim == 2:  # a palette applied to a single greyscale frame
        arr = arr[None]
    return arr.reshape(frames, header.rows, header.columns, 3)


def _decode_message(header: Header, exc: Exception) -> str:
    syntax = pydicom.uid.UID(header.transfer_syntax_uid)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "12-bit" in text or (syntax == "1.2.840.10008.1.2.4.51" and header.bits_stored > 8):
        return f"{syntax.name} with {header.bits_stored}-bit samples cannot be decoded by this server"
    if "Unable to decode" in text or "plugin" in text.lower():
        return f"pixel data in {syntax.name} could not be decoded ({text[:120]})"
    return f"pixel data could not be decoded ({text[:160]})"
