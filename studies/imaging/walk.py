"""Read the top level of an ordinary DICOM file into the ``FileDataset`` pydicom would build.

``walk`` reads a Part 10 file (preamble, 'DICM', Explicit VR Little Endian file meta) whose data
set is Implicit or Explicit VR Little Endian, and answers what ``pydicom.dcmread(...,
defer_size=DEFER_SIZE, force=True)`` answers for the same bytes: the same raw elements (tag, VR,
length, value, value_tell, encoding flags), the same deferred values (value None, read from the
file or buffer on access), the same file meta, preamble and original encoding. Defined-length
sequences stay raw bytes, as pydicom leaves them until asked. Everything else (no preamble, big
endian, deflate, anything of undefined length but compressed pixel data, unknown VR bytes, a
value or header running past the bytes given, no pixel data) answers None, and the caller asks
pydicom itself. It never raises.

Why not pydicom: its element generator and the five Datasets a read builds cost as much as the
rest of the header reading. bench/headers.py (median of 5 interleaved rounds, 2-core machine
shared with other work), ms per file, walker vs dcmread: read_header_prefix on the 3000 64x64 MR
members of the bench's small ZIP 0.30 vs 0.53; on the 275 LIDC CT slices (implicit VR, 89
elements) 0.64 vs 0.81; read_header on those slices as files 0.68 vs 0.96. (Before this module and
the absent-element shortcut in headers._raw: 0.67 and 0.96 ms for the two read_header_prefix
cases, same run, interleaved.) tests/imaging/test_headers.py holds both to the same datasets and
headers on every test file.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import BinaryIO

import pydicom.uid
from pydicom.charset import convert_encodings
from pydicom.charset import default_encoding as _default_encoding
from pydicom.dataelem import RawDataElement, convert_raw_data_element, empty_value_for_VR
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

DEFER_SIZE = 1024  # values longer than this are read on access (what headers.py passes to dcmread)
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})  # Pixel Data, Float and Double Float Pixel Data
CHARSET_TAG = 0x00080005  # never deferred: pydicom needs it at once

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LONG = struct.Struct("<L")
_VRS = {vr.value.encode("ascii"): str(vr.value) for vr in VR}  # known VR bytes -> the str pydicom gives
_LONG_VRS = frozenset(str(vr.value) for vr in EXPLICIT_VR_LENGTH_32)  # 2 reserved bytes, then a 4-byte length
_UNDEFINED = 0xFFFFFFFF
_NOT_WALKED = (pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian)
_PLAIN_UID = re.compile(rb"[0-9.]{1,64}\x00?")


def walk(
    buffer: bytes, size: int | None = None, path: Path | None = None, fp: BinaryIO | None = None
) -> FileDataset | None:
    """The data set pydicom reads from a file of ``size`` bytes (default: ``len(buffer)``) that
    starts with ``buffer``; None when these bytes cannot tell or the file is not an ordinary one.

    ``path``: the file, for values read on access; without it they are read from ``buffer`` (as
    pydicom does when given ``io.BytesIO(buffer)``). ``fp``: the file open for reading, for the
    item headers of compressed pixel data past the buffer."""
    try:
        return _walk(buffer, len(buffer) if size is None else size, path, fp)
    except Exception:  # whatever pydicom would make of it, it decides
        return None


def _walk(buffer: bytes, size: int, path: Path | None, fp: BinaryIO | None) -> FileDataset | None:
    end = len(buffer)
    if end < 132 or buffer[128:132] != b"DICM" or size < end:
        return None
    meta: dict = {}
    pos = 132
    while True:  # file meta: group 0002, Explicit VR Little Endian, nothing deferred
        if pos + 8 > end:
            return None
        group, elem, vr_bytes, length = _EXPLICIT.unpack_from(buffer, pos)
        if group != 0x0002:
            break
        vr = _VRS.get(vr_bytes)
        if vr is None:
            return None
        if vr in _LONG_VRS:
            if pos + 12 > end:
                return None
            (length,) = _LONG.unpack_from(buffer, pos + 8)
            value_tell = pos + 12
        else:
            value_tell = pos + 8
        pos = value_tell + length
        if length == _UNDEFINED or pos > end:
            return None
        tag = BaseTag(0x00020000 | elem)
        value = buffer[value_tell:pos] if length else empty_value_for_VR(vr, raw=True)
        meta[tag] = RawDataElement(tag, vr, length, value, value_tell, False, True)
    if not meta or group == 0x0000 or pos >= end:  # no meta, a command set, or nothing after the meta
        return None

    file_meta = _new_file_meta(meta)
    syntax = _transfer_syntax(file_meta, meta)
    if syntax is None or syntax in _NOT_WALKED or syntax in pydicom.uid.PrivateTransferSyntaxes:
        return None
    implicit = syntax == pydicom.uid.ImplicitVRLittleEndian  # any other syntax is explicit VR LE

    # pydicom looks at the first element's VR bytes and, if they disagree with the syntax, warns
    # and reads the other way: such files are left to it.
    if pos + 6 > end:
        return None
    looks_implicit = not (0x40 < buffer[pos + 4] < 0x5B and 0x40 < buffer[pos + 5] < 0x5B)
    if looks_implicit != implicit:
        return None

    elements: dict = {}
    pixels = False
    charset = None
    unpack, long_unpack, vrs, long_vrs = (
        (_IMPLICIT if implicit else _EXPLICIT).unpack_from,
        _LONG.unpack_from,
        _VRS,
        _LONG_VRS,
    )
    new_tag, new_element, defer_size = BaseTag, RawDataElement, DEFER_SIZE
    while pos < size:  # pydicom reads until the file ends
        if pos + 8 > end:
            return None  # the header of the next element is not in the buffer
        if implicit:
            group, elem, length = unpack(buffer, pos)
            vr = None
            value_tell = pos + 8
        else:
            group, elem, vr_bytes, length = unpack(buffer, pos)
            vr = vrs.get(vr_bytes)
            if vr in long_vrs:
                if pos + 12 > end:
                    return None
                (length,) = long_unpack(buffer, pos + 8)
                value_tell = pos + 12
            elif vr is None:
                return None
            else:
                value_tell = pos + 8
        if group == 0xFFFE:  # items out of place
            return None
        number = group << 16 | elem
        if length <= defer_size or number == CHARSET_TAG and length != _UNDEFINED:
            pos = value_tell + length
            if pos > end:
                return None  # a value pydicom reads that the buffer does not hold (or truncated: its call)
            value = buffer[value_tell:pos] if length else empty_value_for_VR(vr, raw=True)
        elif length != _UNDEFINED:
            value = None  # deferred: pydicom skips it, and stops if that is past the end of the file
            pos = value_tell + length
        else:  # undefined length: only encapsulated (compressed) pixel data, in items
            if number != 0x7FE00010 or vr not in ("OB", "OW"):
                return None
            found = _fragments_end(buffer, value_tell, fp)
            if found is None:
                return None
            pos, count = found
            value = None if count >= defer_size else buffer[value_tell : value_tell + count - 4]
            if value is not None and len(value) != count - 4:
                return None
        tag = new_tag(number)
        element = new_element(tag, vr, length, value, value_tell, implicit, True)
        elements[tag] = element
        if number == CHARSET_TAG:
            charset = element
        elif number in PIXEL_TAGS:
            pixels = True
    if not pixels:
        return None  # not an image, or the pixels are not in these bytes: pydicom says which

    if charset is not None:  # pydicom converts the character set twice while reading; either may raise
        convert_encodings(convert_string(charset.value or b"", True))
        convert_encodings(convert_raw_data_element(charset).value)
    if path is not None:
        ds = FileDataset(str(path), elements, buffer[:128], file_meta, implicit, True)
    else:
        ds = _new_file_dataset(io.BytesIO(buffer), elements, buffer[:128], file_meta, implicit)
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds


_ITEM = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian
_SEQUENCE_END = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD)


def _fragments_end(buffer: bytes, start: int, fp: BinaryIO | None) -> tuple[int, int] | None:
    """Where encapsulated pixel data starting at ``start`` ends, as pydicom finds it (item after
    item to the sequence delimiter): the position after the delimiter and its length, and the
    bytes pydicom counts (items and the delimiter's tag). None where pydicom would scan byte by
    byte instead (a missing item, the file ending first)."""

    def read(offset: int, count: int) -> bytes:
        if offset + count <= len(buffer) or fp is None:
            return buffer[offset : offset + count]
        fp.seek(offset)
        return fp.read(count)

    pos = start
    while True:
        tag = read(pos, 4)
        if tag == _SEQUENCE_END:
            return pos + 8, pos + 4 - start
        length = read(pos + 4, 4)
        if tag != _ITEM or len(length) < 4:
            return None
        pos += 8 + _LONG.unpack(length)[0]


def _transfer_syntax(file_meta: FileMetaDataset, meta: dict) -> str | None:
    """The transfer syntax as pydicom reads it. pydicom converts the meta's first element (to see
    whether the group was explicit VR after all), its group length and the transfer syntax as
    soon as it has read them; an ordinary group length (a 4-byte UL) and a plain UID cannot fail
    to convert and stay raw until used (as other values do), others are converted here as pydicom
    converts them, raising what it raises."""
    first = meta[min(meta)]
    if not (first.tag == 0x00020000 and first.VR == "UL" and first.length == 4):
        _ = file_meta[first.tag]
        if "FileMetaInformationGroupLength" in file_meta:
            _ = file_meta.FileMetaInformationGroupLength
    syntax = meta.get(0x00020010)
    if syntax is not None and syntax.VR == "UI" and _PLAIN_UID.fullmatch(syntax.value):
        return syntax.value.rstrip(b"\x00").decode("ascii")
    return file_meta.get("TransferSyntaxUID")


# Making the two datasets is a third of the walk: Dataset.__init__ sets about twenty attributes
# through Dataset.__setattr__. A fresh one is made instead from the attributes of one made by the
# constructor (with new containers), and then only what differs is set; checked once against the
# constructor below, and the constructor is used if they differ (another pydicom version, say).
def _state(obj) -> dict:
    return {name: value.copy() if type(value) in (dict, list, set) else value for name, value in vars(obj).items()}


def _new_file_meta(meta: dict) -> FileMetaDataset:
    if not _COPY_STATE:
        file_meta = FileMetaDataset(meta)
        file_meta.set_original_encoding(False, True, _default_encoding)
        return file_meta
    file_meta = FileMetaDataset.__new__(FileMetaDataset)
    vars(file_meta).update(_state(_META_MODEL), _dict=meta)
    return file_meta


def _new_file_dataset(
    source: io.BytesIO, elements: dict, preamble: bytes, file_meta: FileMetaDataset, implicit: bool
) -> FileDataset:
    if not _COPY_STATE:
        return FileDataset(source, elements, preamble, file_meta, implicit, True)
    ds = FileDataset.__new__(FileDataset)
    state = _state(_FILE_MODEL if implicit else _EXPLICIT_FILE_MODEL)
    vars(ds).update(state, _dict=elements, preamble=preamble, file_meta=file_meta, buffer=source)
    return ds


def _models() -> tuple[FileMetaDataset, FileDataset, FileDataset]:
    file_meta = FileMetaDataset({})
    file_meta.set_original_encoding(False, True, _default_encoding)
    return (
        file_meta,
        FileDataset(io.BytesIO(), {}, None, FileMetaDataset(), True, True),
        FileDataset(io.BytesIO(), {}, None, FileMetaDataset(), False, True),
    )


def _copies_match() -> bool:
    try:
        for implicit in (True, False):
            meta = {BaseTag(0x00020010): RawDataElement(BaseTag(0x00020010), "UI", 2, b"1\x00", 0, False, True)}
            made = FileMetaDataset(meta)
            made.set_original_encoding(False, True, _default_encoding)
            copied = _new_file_meta(meta)
            if type(copied) is not type(made) or _state(copied) != _state(made):
                return False
            source, preamble = io.BytesIO(), b"\x00" * 128
            made = FileDataset(source, {}, preamble, made, implicit, True)
            copied = _new_file_dataset(source, {}, preamble, copied, implicit)
            if type(copied) is not type(made) or _state(copied) != _state(made):
                return False
        return True
    except Exception:
        return False


_META_MODEL, _FILE_MODEL, _EXPLICIT_FILE_MODEL = _models()
_COPY_STATE = True
_COPY_STATE = _copies_match()
