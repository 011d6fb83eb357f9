"""Recognise DICOM files by content and read their headers (no pixel data).

``read_header`` answers either a ``Header`` (everything the database and the geometry code need)
or a ``Skipped`` with a plain-language reason. Values are read defensively: one malformed
element never costs the whole file unless it is an identifier we cannot do without.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .archive import Skipped
from .suv import PetInfo, read_pet_info
from .uids import uid_problem
from .walk import DEFER_SIZE, walk

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Frame:
    """Geometry and value mapping of one frame (one 2-D image) of an instance."""

    position: tuple[float, float, float] | None = None  # ImagePositionPatient, mm (LPS)
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient: row cosines, column cosines
    spacing: tuple[float, float] | None = None  # PixelSpacing: between rows, between columns (mm)
    slope: float = 1.0
    intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None


@dataclass
class Header:
    path: Path
    name: str
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: dt.date | None = None
    patient_sex: str = ""
    study_date: dt.date | None = None
    study_time: dt.time | None = None
    study_description: str = ""
    accession_number: str = ""
    study_id: str = ""
    referring_physician_name: str = ""
    modality: str = ""
    series_description: str = ""
    series_number: int | None = None
    body_part_examined: str = ""
    series_date: dt.date | None = None
    series_time: dt.time | None = None
    frame_of_reference_uid: str = ""  # FrameOfReferenceUID: series sharing one share patient coordinates
    instance_number: int | None = None
    rows: int = 0
    columns: int = 0
    number_of_frames: int = 1
    samples_per_pixel: int = 1
    photometric_interpretation: str = ""
    bits_allocated: int = 0
    bits_stored: int = 0
    pixel_representation: int = 0
    slice_thickness: float | None = None
    has_modality_lut: bool = False
    has_voi_lut: bool = False
    image_type: str = ""
    frames: list[Frame] = field(default_factory=list)
    file_size: int = 0
    encoding_note: str = ""  # e.g. "no file meta information; read as Implicit VR Little Endian"
    instance_pk: int | None = None  # set by the caller once the file is stored
    pixel_offset: int | None = None  # where native little-endian Pixel Data starts in the file
    pet: PetInfo | None = None  # a PET image's units, dose, weight and times (for SUV)

    @property
    def is_color(self) -> bool:
        return self.samples_per_pixel > 1 or self.photometric_interpretation == "PALETTE COLOR"

    @property
    def window(self) -> tuple[float | None, float | None]:
        """The window of the middle frame (DICOM's default for the image)."""
        if not self.frames:
            return None, None
        frame = self.frames[len(self.frames) // 2]
        return frame.window_center, frame.window_width


def looks_like_dicom(path: Path) -> bool:
    """True when the file looks like DICOM: the 'DICM' marker, or a bare data set."""
    with open(path, "rb") as fp:
        return starts_like_dicom(fp.read(132))


def starts_like_dicom(head: bytes) -> bool:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    # No preamble: a data set starts with a low group number (file meta 0002, or 0008).
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    return group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


# Ordinary files are read by studies/imaging/walk.py, which builds the data set dcmread would build
# for a fraction of the cost (the figures are beside it); anything else goes to dcmread. read_header
# gives it the first WALK_BYTES of the file (a longer header goes to dcmread). Off: dcmread only.
FAST_WALK = True
WALK_BYTES = 64 * 1024


def read_header(path: Path, name: str | None = None, max_frames: int | None = None) -> Header | Skipped:
    """Read the header of one file. Never raises for bad input: answers Skipped instead.

    ``max_frames``: files that claim more frames are skipped (default: ``HARD_MAX_FRAMES``)."""
    path = Path(path)
    name = name or path.name
    try:
        ds = None
        if FAST_WALK:
            with open(path, "rb") as fp:
                head = fp.read(WALK_BYTES)
                if not starts_like_dicom(head[:132]):
                    return Skipped(name, "not a DICOM file")
                ds = walk(head, os.fstat(fp.fileno()).st_size, path, fp)
        elif not looks_like_dicom(path):
            return Skipped(name, "not a DICOM file")
        if ds is None:
            ds = pydicom.dcmread(path, defer_size=DEFER_SIZE, force=True)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        return Skipped(name, f"unreadable DICOM ({_brief(exc)})")
    return _header_or_skip(ds, path, name, path.stat().st_size, max_frames)


NEED_MORE = None  # read_header_prefix: the header goes on past the bytes given


def read_header_prefix(
    head: bytes, name: str, size: int, path: Path, max_frames: int | None = None
) -> Header | Skipped | None:
    """Read a header from the first bytes of a file of ``size`` bytes that will live at ``path``.

    Answers NEED_MORE (None) when ``head`` stops before the header does: read more and ask again.
    """
    if not starts_like_dicom(head[:132]):
        if head[:4] == b"PK\x03\x04":
            return Skipped(name, "nested ZIP archive (not extracted; upload it on its own)")
        return Skipped(name, "not a DICOM file")
    partial = len(head) < size
    ds = walk(head) if FAST_WALK else None  # what dcmread would answer, or None: ask dcmread
    if ds is None:
        try:
            ds = pydicom.dcmread(io.BytesIO(head), defer_size=DEFER_SIZE, force=True)
        except Exception as exc:
            return NEED_MORE if partial else Skipped(name, f"unreadable DICOM ({_brief(exc)})")
    if partial and not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        return NEED_MORE  # maybe the pixels come later; maybe it is not an image: only all of it can tell
    return _header_or_skip(ds, Path(path), name, size, max_frames)


def _header_or_skip(ds: Dataset, path: Path, name: str, size: int, max_frames: int | None) -> Header | Skipped:
    try:
        return _header_from_dataset(ds, path, name, size, max_frames)
    except Exception as exc:
        return Skipped(name, f"damaged DICOM header ({_brief(exc)})")


def _header_from_dataset(ds: Dataset, path: Path, name: str, size: int, max_frames: int | None) -> Header | Skipped:
    if len(ds) == 0:
        return Skipped(name, "not a DICOM file")
    meta = getattr(ds, "file_meta", None) or Dataset()
    sop_class = _str(ds, "SOPClassUID") or _str(meta, "MediaStorageSOPClassUID")
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return Skipped(name, "DICOMDIR index file (the images it lists are read directly)")
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        kind = UID(sop_class).name if sop_class else "unknown object"
        return Skipped(name, f"not an image ({kind}): nothing to display, not stored")

    uids = {}
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = _str(ds, keyword)
        if problem := uid_problem(keyword, value):
            return Skipped(name, problem)
        uids[keyword] = value

    transfer_syntax = _str(meta, "TransferSyntaxUID")
    for keyword, value in (("SOPClassUID", sop_class), ("TransferSyntaxUID", transfer_syntax)):
        if value and (problem := uid_problem(keyword, value)):
            return Skipped(name, problem)
    note = ""
    if not transfer_syntax:
        transfer_syntax = ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian
        note = f"no file meta information; read as {UID(transfer_syntax).name}"

    header = Header(
        path=path,
        name=name,
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=sop_class,
        study_instance_uid=uids["StudyInstanceUID"],
        series_instance_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=transfer_syntax,
        patient_id=_str(ds, "PatientID"),
        issuer_of_patient_id=_str(ds, "IssuerOfPatientID"),
        patient_name=_str(ds, "PatientName"),
        patient_birth_date=parse_date(_str(ds, "PatientBirthDate")),
        patient_sex=_str(ds, "PatientSex")[:16],
        study_date=parse_date(_str(ds, "StudyDate")),
        study_time=parse_time(_str(ds, "StudyTime")),
        study_description=_str(ds, "StudyDescription"),
        accession_number=_str(ds, "AccessionNumber"),
        study_id=_str(ds, "StudyID"),
        referring_physician_name=_str(ds, "ReferringPhysicianName"),
        modality=_str(ds, "Modality")[:16],
        series_description=_str(ds, "SeriesDescription"),
        series_number=_int(ds, "SeriesNumber"),
        body_part_examined=_str(ds, "BodyPartExamined"),
        series_date=parse_date(_str(ds, "SeriesDate")),
        series_time=parse_time(_str(ds, "SeriesTime")),
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID")[:64],
        instance_number=_int(ds, "InstanceNumber"),
        rows=_int(ds, "Rows") or 0,
        columns=_int(ds, "Columns") or 0,
        number_of_frames=max(1, _int(ds, "NumberOfFrames") or 1),
        samples_per_pixel=_int(ds, "SamplesPerPixel") or 1,
        photometric_interpretation=_str(ds, "PhotometricInterpretation").upper(),
        bits_allocated=_int(ds, "BitsAllocated") or 0,
        bits_stored=_int(ds, "BitsStored") or 0,
        pixel_representation=_int(ds, "PixelRepresentation") or 0,
        slice_thickness=_float(ds, "SliceThickness"),
        has_modality_lut="ModalityLUTSequence" in ds,
        has_voi_lut="VOILUTSequence" in ds,
        image_type="\\".join(_strs(ds, "ImageType")),
        file_size=size,
        encoding_note=note,
    )
    # Counts first: nothing is allocated per frame before they are known to fit the data.
    problem = frames_problem(header, max_frames) or pixel_problem(ds, header)
    if problem:
        return Skipped(name, problem)
    header.frames = _frames(ds, header.number_of_frames)
    if header.modality == "PT":
        header.pet = read_pet_info(ds)
    if transfer_syntax in NATIVE_LITTLE_ENDIAN and "PixelData" in ds:
        header.pixel_offset = _pixel_value_offset(ds)
    return header


MAX_DECODED_BYTES = 1024**3  # decoded pixel bytes per file we are willing to allocate
HARD_MAX_FRAMES = 1_000_000  # frames of a file whatever the caller's cap (a list entry each)
FRAGMENT_ITEM_BYTES = 8  # an encapsulated frame needs at least one fragment: an item tag and length


def frames_problem(header: Header, max_frames: int | None = None) -> str | None:
    """Why a file's NumberOfFrames is refused: more than the cap this server shows per file."""
    limit = min(max_frames or HARD_MAX_FRAMES, HARD_MAX_FRAMES)
    if header.number_of_frames > limit:
        setting = "; INGEST_MAX_FRAMES" if limit == max_frames else ""
        return f"claims {header.number_of_frames:,} frames, more than this server shows per file ({limit:,}{setting})"
    return None


def pixel_problem(ds: Dataset, header: Header) -> str | None:
    """Why the pixel data cannot be what the header says, without reading it."""
    if header.rows <= 0 or header.columns <= 0:
        return "the image has no Rows or Columns (required to read its pixels)"
    if header.bits_allocated not in (1, 8, 16, 32, 64):
        return f"unsupported BitsAllocated ({header.bits_allocated})"
    samples = header.rows * header.columns * header.number_of_frames * header.samples_per_pixel
    decoded = samples * max(2, (header.bits_allocated + 7) // 8)  # decoders return at least 16-bit data
    if decoded > MAX_DECODED_BYTES:
        return (
            f"claims {header.columns} x {header.rows} pixels x {header.number_of_frames} frames "
            f"({decoded / 1024**3:.1f} GiB decoded), more than this server decodes per file (1 GiB)"
        )
    syntax = UID(header.transfer_syntax_uid)
    if "PixelData" not in ds or syntax.is_deflated:
        return None
    if syntax.is_compressed:
        return _fragments_problem(ds, header)
    if header.photometric_interpretation == "YBR_FULL_422":  # native 4:2:2 stores 2 samples per pixel, not 3
        samples = samples * 2 // 3
    needed = (samples * header.bits_allocated + 7) // 8
    available = _pixel_bytes(ds, header.file_size)
    if available is None:
        return None
    if available < needed:
        return (
            f"pixel data is truncated: {header.rows} x {header.columns} x {header.number_of_frames} "
            f"frames need {needed:,} bytes, the file holds {max(available, 0):,}"
        )
    return None


def _fragments_problem(ds: Dataset, header: Header) -> str | None:
    """Encapsulated data: every frame is at least one fragment item after the offset table's item,
    so a file of N bytes holds fewer than N / 8 frames (the fragments themselves are counted by the
    decoder; this bound needs no more of the file than the header reader has)."""
    if header.number_of_frames <= 1:
        return None
    element = ds.get_item("PixelData", keep_deferred=True)
    start = getattr(element, "value_tell", None) or getattr(element, "file_tell", None)
    if not start:
        return None
    room = max(header.file_size - int(start), 0)
    if (header.number_of_frames + 1) * FRAGMENT_ITEM_BYTES > room:
        return (
            f"claims {header.number_of_frames:,} compressed frames, but its pixel data of {room:,} bytes "
            f"has room for at most {max(room // FRAGMENT_ITEM_BYTES - 1, 0):,}"
        )
    return None


NATIVE_LITTLE_ENDIAN = (ImplicitVRLittleEndian, ExplicitVRLittleEndian)


def _pixel_value_offset(ds: Dataset) -> int | None:
    element = ds.get_item("PixelData", keep_deferred=True)
    offset = getattr(element, "value_tell", None) or getattr(element, "file_tell", None)
    return int(offset) if offset else None


def _pixel_bytes(ds: Dataset, file_size: int) -> int | None:
    """Bytes of native Pixel Data in the file: the element's length, or what is left after it."""
    element = ds.get_item("PixelData", keep_deferred=True)
    length = getattr(element, "length", None)  # a raw element still knows its length
    if length is not None:
        if length == 0xFFFFFFFF:
            return None
        return min(length, file_size - (getattr(element, "value_tell", 0) or 0))
    offset = getattr(element, "file_tell", None)  # a deferred element knows where its value starts
    if getattr(element, "is_undefined_length", False) or not offset:
        return None
    return file_size - offset


def _frames(ds: Dataset, count: int) -> list[Frame]:
    """Per-frame geometry: from the functional groups of enhanced objects, else the top level."""
    top = _frame_from(ds, Frame())
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    base = _frame_from_groups(shared, top) if shared is not None else top
    per_frame = _seq(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) == count:
        return [_frame_from_groups(item, base) for item in per_frame]
    if count == 1:
        return [base]
    # Classic multi-frame: one position for the first frame at most; the others are unknown
    # (one shared frozen Frame: a pointer per frame, not an object).
    return [
        Frame(None, base.orientation, base.spacing, base.slope, base.intercept, base.window_center, base.window_width)
    ] * count


def _frame_from_groups(groups: Dataset, base: Frame) -> Frame:
    frame = base
    for seq_name in (
        "PixelMeasuresSequence",
        "PlanePositionSequence",
        "PlaneOrientationSequence",
        "PixelValueTransformationSequence",
        "FrameVOILUTSequence",
    ):
        item = _first(groups, seq_name)
        if item is not None:
            frame = _frame_from(item, frame)
    return frame


def _frame_from(ds: Dataset, base: Frame) -> Frame:
    position = _floats(ds, "ImagePositionPatient", 3)
    orientation = _floats(ds, "ImageOrientationPatient", 6)
    spacing = _floats(ds, "PixelSpacing", 2)
    if spacing is not None and min(spacing) <= 0:
        spacing = None
    if orientation is not None and not _valid_orientation(orientation):
        orientation = None
    slope = _float(ds, "RescaleSlope")
    intercept = _float(ds, "RescaleIntercept")
    center = _float(ds, "WindowCenter")
    width = _float(ds, "WindowWidth")
    return Frame(
        position=tuple(position) if position else base.position,
        orientation=tuple(orientation) if orientation else base.orientation,
        spacing=tuple(spacing) if spacing else base.spacing,
        slope=slope if slope not in (None, 0.0) else base.slope,
        intercept=intercept if intercept is not None else base.intercept,
        window_center=center if center is not None else base.window_center,
        window_width=width if width is not None and width > 0 else base.window_width,
    )


def _valid_orientation(values) -> bool:
    row, col = values[:3], values[3:]
    norm_row = math.sqrt(sum(v * v for v in row))
    norm_col = math.sqrt(sum(v * v for v in col))
    dot = sum(a * b for a, b in zip(row, col, strict=True))
    return abs(norm_row - 1) < 0.05 and abs(norm_col - 1) < 0.05 and abs(dot) < 0.05


# --- tolerant value access --------------------------------------------------------------------


def _raw(ds: Dataset, keyword: str):
    try:
        if FAST_VALUES:
            known = _tag_for(keyword)
            element = ds.get_item(known[0]) if known is not None else None
            if element is None and known is not None:
                return None  # absent: what ds.get answers, after a keyword lookup that costs more than the rest
            if isinstance(element, RawDataElement):
                value = _fast_value(element, known[1])
                if value is not _SLOW:
                    return value
        return ds.get(keyword)
    except Exception:
        return None


# Converting the raw bytes of plain ASCII and binary integer values ourselves is several times
# faster than pydicom's general conversion, which matters when an upload holds thousands of files
# (tests/imaging/test_headers.py holds both to the same headers on every test file).
FAST_VALUES = True
_SLOW = object()
_SPLIT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UI"}
_STRUCT_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}
_PRINTABLE = bytes(range(0x20, 0x7F))
_tags: dict[str, tuple[int, str] | None] = {}


def _tag_for(keyword: str) -> tuple[int, str] | None:
    """The tag of a keyword and its dictionary VR (what an implicit VR file leaves out)."""
    if keyword not in _tags:
        tag = tag_for_keyword(keyword)
        _tags[keyword] = (tag, dictionary_VR(tag)) if tag is not None else None
    return _tags[keyword]


def _fast_value(element: RawDataElement, dictionary_vr: str | None = None):
    """The value of an unconverted element when it is plain ASCII text or a little-endian integer;
    _SLOW for everything else (other VRs, other character sets, big endian)."""
    vr, raw = element.VR or dictionary_vr, element.value
    if raw is None or vr is None or not element.is_little_endian or (dictionary_vr and vr != dictionary_vr):
        return _SLOW  # a VR other than the dictionary's (a DS PatientID, say) reads as pydicom reads it
    if not raw:
        return None
    if vr in _STRUCT_VRS:
        code = _STRUCT_VRS[vr]
        count, extra = divmod(len(raw), struct.calcsize(code))
        if extra:
            return _SLOW
        values = struct.unpack(f"<{count}{code}", raw)
        return values[0] if count == 1 else list(values)
    if vr not in _SPLIT_VRS or raw.rstrip(b" \x00").translate(None, _PRINTABLE) or (vr == "PN" and b"=" in raw):
        # Only printable ASCII before the padding: escape sequences switch character sets (ISO 2022)
        # and pydicom has its own rules for other control characters and NULs, and for the
        # component groups of names (it drops empty ones at the end); it decides those.
        return _SLOW
    text = raw.decode("ascii")
    parts = [part.strip(" \x00") if vr != "PN" else part.rstrip(" \x00") for part in text.split("\\")]
    if vr in ("DS", "IS"):
        try:
            # IS: whole numbers only; pydicom keeps a fraction ("12.5"), and so its range check sees it
            numbers = [float(part) if vr == "DS" else int(part) for part in parts if part]
        except (ValueError, OverflowError):
            return _SLOW
        if len(numbers) != len(parts):
            return _SLOW
        return numbers[0] if len(numbers) == 1 else numbers
    return parts[0] if len(parts) == 1 else parts


def _str(ds: Dataset, keyword: str) -> str:
    value = _raw(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else ""
    return str(value).strip().replace("\x00", "")


def _strs(ds: Dataset, keyword: str) -> list[str]:
    value = _raw(ds, keyword)
    if value is None:
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def _float(ds: Dataset, keyword: str) -> float | None:
    value = _raw(ds, keyword)
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _floats(ds: Dataset, keyword: str, count: int) -> list[float] | None:
    value = _raw(ds, keyword)
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(n) for n in numbers):
        return None
    return numbers


def _int(ds: Dataset, keyword: str) -> int | None:
    number = _float(ds, keyword)
    if number is None or abs(number) > 2**31 - 1:
        return None
    return int(number)


def _seq(ds: Dataset | None, keyword: str):
    if ds is None:
        return None
    value = _raw(ds, keyword)
    return value if isinstance(value, pydicom.sequence.Sequence) else None


def _first(ds: Dataset | None, keyword: str) -> Dataset | None:
    seq = _seq(ds, keyword)
    return seq[0] if seq else None


def parse_date(value: str) -> dt.date | None:
    digits = value.replace(".", "").replace("-", "").strip()[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def parse_time(value: str) -> dt.time | None:
    text = value.replace(":", "").strip()
    whole = text.split(".")[0]
    if len(whole) < 2 or not whole.isdigit():
        return None
    try:
        hour = int(whole[0:2])
        minute = int(whole[2:4]) if len(whole) >= 4 else 0
        second = min(int(whole[4:6]), 59) if len(whole) >= 6 else 0
        return dt.time(hour, minute, second)
    except ValueError:
        return None


def _brief(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
