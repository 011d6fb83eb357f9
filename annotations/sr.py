"""A user's measurements as a DICOM SR Measurement Report (TID 1500), written with highdicom.
Plain Python (no Django).

The structure is the one OHIF's cornerstone-dicom-sr extension reads back (checked against
``extensions/cornerstone-dicom-sr/src/getSopClassHandlerModule.ts`` and the cornerstone3D SR
adapters): one TID 1501 measurement group per measurement, with a tracking identifier (TEXT,
``Cornerstone3DTools@^0.1.0:<tool>``, which names the tool that re-draws it) and a tracking unique
identifier (UIDREF); inside, TID 300 numeric measurements whose first one is INFERRED FROM the
graphic. A measurement drawn on an image as acquired is an SCOORD on that image (image pixel
coordinates, 0.5\\0.5 the centre of the top-left pixel, with ReferencedSOPSequence and, for
multi-frame images, the frame); one drawn on a reconstruction is an SCOORD3D in the series' Frame
of Reference (LPS mm). Every referenced image is listed in the Image Library.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

logging.getLogger("highdicom").setLevel(logging.WARNING)  # its INFO lines name the instances it copies from
# nor may a warning about the form of a patient's name quote it into the server's log
warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the intended person name")

TOOLS = {  # our kind -> cornerstone3D tool type (what OHIF re-creates) and graphic type
    "length": ("Length", "POLYLINE"),
    "angle": ("Angle", "POLYLINE"),
    "ellipse": ("EllipticalROI", "ELLIPSE"),
    "rectangle": ("RectangleROI", "POLYLINE"),
    "probe": ("Probe", "POINT"),
}
TRACKING_PREFIX = "Cornerstone3DTools@^0.1.0"
ON_PLANE_MM = 0.5  # points this close to an acquired slice are on it
PIXEL_VALUE = CodedConcept("stored-value", "99DCMVIEW", "Stored pixel value")


@dataclass
class Item:
    kind: str
    label: str
    values: dict
    outline_pixels: list[list[float]]  # graphic points in the drawn image's pixels
    outline_world: list[list[float]] | None  # the same in LPS mm (None: a stack without geometry)
    plane_size: tuple[int, int]  # width, height of the drawn image
    image: pydicom.Dataset | None  # header of the stored image it was drawn on (or nearest)
    frame: int  # 0-based frame of that image
    acquired: bool  # drawn on that image as acquired (not a reconstruction)


def unit_code(unit: str | None):
    text = (unit or "").strip()
    if text.upper() == "HU":
        return codes.UCUM.HounsfieldUnit
    if text.upper().startswith("SUV"):
        return codes.UCUM.StandardizedUptakeValueBodyWeight
    if text.upper() in ("BQML", "BQ/ML"):
        return codes.UCUM.BecquerelsPerMilliliter
    return codes.UCUM.NoUnits


def value_name(unit: str | None, modality: str):
    code = unit_code(unit)
    if code == codes.UCUM.HounsfieldUnit:
        return codes.DCM.AttenuationCoefficient
    if code == codes.UCUM.StandardizedUptakeValueBodyWeight:
        return codes.DCM.StandardizedUptakeValue
    if code == codes.UCUM.BecquerelsPerMilliliter:
        return codes.DCM.Concentration
    return codes.DCM.MRSignalIntensity if modality == "MR" else PIXEL_VALUE


def _frame_geometry(ds: pydicom.Dataset, frame: int):
    """ImagePositionPatient, ImageOrientationPatient, PixelSpacing of one frame, or None."""
    try:
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and "PixelSpacing" in ds:
            return ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing
        per_frame = ds.PerFrameFunctionalGroupsSequence[frame]
        shared = ds.get("SharedFunctionalGroupsSequence", [pydicom.Dataset()])[0]

        def find(seq, key):
            for group in (per_frame, shared):
                if seq in group:
                    return getattr(group[seq].value[0], key)
            raise AttributeError(key)

        return (
            find("PlanePositionSequence", "ImagePositionPatient"),
            find("PlaneOrientationSequence", "ImageOrientationPatient"),
            find("PixelMeasuresSequence", "PixelSpacing"),
        )
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def image_coordinates(item: Item) -> np.ndarray | None:
    """The graphic in the stored image's pixel coordinates (column, row; 0.5 is a pixel centre),
    if the measurement lies in that image; else None."""
    ds = item.image
    if ds is None or not item.acquired:
        return None
    if item.outline_world is None:  # a stack image: its pixels, scaled to the stored size
        width, height = item.plane_size
        sx = float(ds.get("Columns", width) or width) / width
        sy = float(ds.get("Rows", height) or height) / height
        return np.array([[(c + 0.5) * sx, (r + 0.5) * sy] for c, r in item.outline_pixels], dtype=float)
    geometry = _frame_geometry(ds, item.frame)
    if geometry is None:
        return None
    position, orientation, spacing = (np.asarray([float(v) for v in g]) for g in geometry)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    out = []
    for point in item.outline_world:
        d = np.asarray(point) - position
        if abs(float(np.dot(d, normal))) > ON_PLANE_MM:
            return None
        out.append([np.dot(d, row_dir) / spacing[1] + 0.5, np.dot(d, col_dir) / spacing[0] + 0.5])
    return np.array(out, dtype=float)


def _graphic(item: Item, graphic_type: str):
    """CoordinatesForMeasurement (SCOORD on the image) or CoordinatesForMeasurement3D, or None."""
    coords = image_coordinates(item)
    if coords is not None:
        ds = item.image
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        source = hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=ds.SOPClassUID,
            referenced_sop_instance_uid=ds.SOPInstanceUID,
            referenced_frame_numbers=[item.frame + 1] if frames > 1 else None,
        )
        return hd.sr.CoordinatesForMeasurement(graphic_type, coords, source)
    frame_of_reference = item.image.get("FrameOfReferenceUID") if item.image is not None else None
    if item.outline_world is None or not frame_of_reference:
        return None
    return hd.sr.CoordinatesForMeasurement3D(graphic_type, np.asarray(item.outline_world), frame_of_reference)


def _num(name, value, unit, coordinates=None):
    return hd.sr.Measurement(
        name=name,
        value=float(value),
        unit=unit,
        referenced_coordinates=[coordinates] if coordinates is not None else None,
    )


def measurement_group(item: Item, modality: str):
    tool, graphic_type = TOOLS[item.kind]
    coordinates = _graphic(item, graphic_type)
    values = item.values
    unit = unit_code(values.get("unit"))
    rows = []  # (name, value, unit): the first carries the graphic
    if item.kind == "length" and "length_mm" in values:
        rows.append((codes.SCT.Length, values["length_mm"], codes.UCUM.Millimeter))
    elif item.kind == "angle" and "angle_deg" in values:
        rows.append((codes.SCT.Angle, values["angle_deg"], codes.UCUM.Degree))
    elif item.kind in ("ellipse", "rectangle"):
        if "area_mm2" in values:
            rows.append((codes.SCT.Area, values["area_mm2"], codes.UCUM.SquareMillimeter))
        for key, name in (("mean", codes.SCT.Mean), ("sd", codes.SCT.StandardDeviation)):
            if values.get(key) is not None:
                rows.append((name, values[key], unit))
        for key, name in (("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum)):
            if values.get(key) is not None:
                rows.append((name, values[key], unit))
    elif item.kind == "probe" and values.get("value") is not None:
        rows.append((value_name(values.get("unit"), modality), values["value"], unit))
    if not rows or coordinates is None:
        return None  # nothing measured, or nowhere to show it
    measurements = [_num(*rows[0], coordinates)] + [_num(*row) for row in rows[1:]]
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{TRACKING_PREFIX}:{tool}")
    label = code_meaning(item.label)
    finding = CodedConcept("CORNERSTONEFREETEXT", "CORNERSTONEJS", label) if label else None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, measurements=measurements, finding_type=finding
    )


def measurement_report(items: list[Item], *, evidence: pydicom.Dataset, author: str) -> hd.sr.Comprehensive3DSR:
    """The report; ``evidence`` is a header of the series (patient and study come from it)."""
    modality = str(evidence.get("Modality", ""))
    groups = [group for group in (measurement_group(item, modality) for item in items) if group is not None]
    referenced = {}
    for item in items:
        if item.image is not None:
            referenced.setdefault(str(item.image.SOPInstanceUID), item.image)
    person = hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(author))
    context = hd.sr.ObservationContext(
        observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Person, observer_identifying_attributes=person
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        referenced_images=[ds for ds in referenced.values() if _describable(ds)] or None,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[
            _with_patient_and_study(evidence),
            *[ds for uid, ds in referenced.items() if uid != str(evidence.SOPInstanceUID)],
        ],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=9901,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="dicomviewer",
        series_description="Measurements",
        is_complete=True,
    )


TYPE_2 = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
CHECKED = {"PatientBirthDate": pydicom.valuerep.DA, "StudyDate": pydicom.valuerep.DA, "StudyTime": pydicom.valuerep.TM}


def _with_patient_and_study(ds: pydicom.Dataset) -> pydicom.Dataset:
    """The header the report copies patient and study from, with the Type 2 attributes highdicom
    reads present: empty (unknown) where the file leaves them out or holds a value that is not
    valid (a sex other than M, F, O; an unreadable date), as the standard allows for Type 2."""
    header = pydicom.Dataset()
    header.update(ds)  # a new dataset of the same elements: the caller's is left as it is
    for keyword in TYPE_2:
        value = header.get(keyword)
        if keyword == "PatientName" and value and not set(str(value)) & set("^="):
            value = f"{value}^"  # the same name (trailing empty components may go), said to be a family name
        elif keyword == "PatientSex" and value not in ("M", "F", "O"):
            value = None
        elif keyword in CHECKED and value:
            try:
                CHECKED[keyword](value)
            except (TypeError, ValueError):
                value = None
        setattr(header, keyword, value if value not in ("",) else None)
    return header


def _describable(image: pydicom.Dataset) -> bool:
    """Whether highdicom can list the image in the Image Library: it reads the geometry of
    cross-sectional images (PixelSpacing, SliceThickness...) that some files lack. Those are left
    out of the library; the measurements still reference them."""
    try:
        hd.sr.ImageLibraryEntryDescriptors(image)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        return False
    return True


def code_meaning(text: str) -> str:
    """Free text as a Code Meaning (LO): no backslash or control characters, at most 64 characters."""
    return " ".join("".join(ch if ch.isprintable() and ch != "\\" else " " for ch in text).split())[:64]


def _person_name(username: str) -> str:
    """A user name as a DICOM PN: no component separators, at most 64 characters."""
    return ("".join(ch for ch in username if ch not in "^=\\")[:63] or "unknown") + "^"  # family name only


def _ascii(dataset: pydicom.Dataset) -> bool:
    for element in dataset.iterall():
        if isinstance(element.value, str | pydicom.valuerep.PersonName) and not str(element.value).isascii():
            return False
    return True


def to_bytes(dataset: pydicom.Dataset) -> bytes:
    if not _ascii(dataset):
        dataset.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: labels and user names may be in any language
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
