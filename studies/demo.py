"""A synthetic demo CT: a chest-abdomen phantom written as real DICOM files. No Django imports.

The body is an elliptic cylinder of soft tissue under a layer of fat, with lungs (upper part),
heart and contrast-filled aorta, liver, kidneys, spine (cortical shell, trabecular core, canal)
and ribs, plus noise. Values are Hounsfield units stored with RescaleIntercept -1024, in an
axial stack with proper geometry (patient LPS, ImagePositionPatient per slice, head first),
soft-tissue and lung windows.

    paths = write_demo_ct(folder, slices=64)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLUMNS = 256
PIXEL_MM = 1.5  # 384 mm field of view
INTERCEPT = -1024


def _ellipse(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def phantom_slice(z_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """HU of one axial slice; ``z_fraction`` 0 is the top (apex of the lungs), 1 the bottom."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float32)
    y = (y - ROWS / 2) * PIXEL_MM  # mm, + towards the patient's back (posterior)
    x = (x - COLUMNS / 2) * PIXEL_MM  # mm, + towards the patient's left
    hu = np.full((ROWS, COLUMNS), -1000.0, dtype=np.float32)  # air
    body_rx, body_ry = 165.0 - 10 * z_fraction, 115.0
    hu[_ellipse(x, y, 0, 5, body_rx, body_ry)] = -100.0  # subcutaneous fat
    hu[_ellipse(x, y, 0, 5, body_rx - 14, body_ry - 12)] = 35.0  # muscle and soft tissue
    chest = z_fraction < 0.55
    if chest:
        taper = np.sqrt(max(0.05, min(1.0, z_fraction / 0.12)))  # lungs narrow towards the apex
        for side in (-1, 1):
            lung = _ellipse(x, y, side * 62, 0, 52 * taper, 78 * taper)
            hu[lung] = -850.0
            vessels = lung & (np.sin(x / 6.0 + side) * np.cos(y / 7.0) > 0.93)
            hu[vessels] = -150.0  # pulmonary vessels
        if 0.2 < z_fraction < 0.55:
            hu[_ellipse(x, y, 18, -25, 48, 40)] = 45.0  # heart
            hu[_ellipse(x, y, 18, -25, 22, 18)] = 180.0  # contrast in the ventricles
        for angle in np.linspace(-2.6, 2.6, 11):  # ribs around the chest wall
            cx, cy = (body_rx - 22) * np.sin(angle), 5 - (body_ry - 18) * np.cos(angle)
            hu[_ellipse(x, y, cx, cy, 7, 4)] = 800.0
    else:
        hu[_ellipse(x, y, -55, -5, 75, 60)] = 60.0  # liver (patient's right = image left)
        hu[_ellipse(x, y, 55, -15, 40, 30)] = 40.0  # stomach / bowel
        hu[_ellipse(x, y, 58, -15, 18, 12)] = -900.0  # gas in the stomach
        if z_fraction > 0.7:
            for side in (-1, 1):
                hu[_ellipse(x, y, side * 65, 50, 22, 30)] = 30.0  # kidneys
                hu[_ellipse(x, y, side * 65, 50, 10, 14)] = 150.0  # contrast in the renal pelvis
    hu[_ellipse(x, y, 12, 35, 12, 12)] = 200.0  # aorta with contrast
    hu[_ellipse(x, y, 0, 75, 24, 20)] = 750.0  # vertebral body: cortical shell
    hu[_ellipse(x, y, 0, 75, 19, 15)] = 250.0  # trabecular bone
    hu[_ellipse(x, y, 0, 102, 9, 8)] = 15.0  # spinal canal
    hu[_ellipse(x, y, 0, 112, 5, 10)] = 700.0  # spinous process
    body = hu > -990
    hu[body] += rng.normal(0.0, 12.0, int(body.sum())).astype(np.float32)  # quantum noise
    hu[~body] += rng.normal(0.0, 4.0, int((~body).sum())).astype(np.float32)
    return hu


def write_demo_ct(folder: Path, slices: int = 64, slice_mm: float = 5.0, seed: int = 7) -> list[Path]:
    """Write the phantom as ``slices`` axial CT files in ``folder``; returns their paths."""
    if not 1 <= slices <= 1000:
        raise ValueError("slices must be between 1 and 1000")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    now = dt.datetime.now()
    shared = {
        "study": generate_uid(),
        "series": generate_uid(),
        "frame": generate_uid(),
        "date": now.strftime("%Y%m%d"),
        "time": now.strftime("%H%M%S"),
    }
    top_z = (slices - 1) * slice_mm / 2
    paths = []
    for k in range(slices):
        hu = phantom_slice(k / max(slices - 1, 1), rng)
        stored = np.clip(np.rint(hu) - INTERCEPT, 0, 4095).astype(np.uint16)
        ds = _dataset(stored, k, top_z - k * slice_mm, slice_mm, shared)
        path = folder / f"CT{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _dataset(stored: np.ndarray, index: int, z_mm: float, slice_mm: float, shared: dict) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = shared["date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = shared["time"]
    ds.AccessionNumber = "DEMO0001"
    ds.Modality = "CT"
    ds.Manufacturer = "dicomviewer"
    ds.InstitutionName = "Demo"
    ds.ReferringPhysicianName = "Demo^Referrer"
    ds.StudyDescription = "Demo CT chest-abdomen (synthetic phantom)"
    ds.SeriesDescription = f"Axial {slice_mm:g} mm soft tissue"
    ds.PatientName = "Demo^Phantom"
    ds.PatientID = "DEMO-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = f"{slice_mm:g}"
    ds.SpacingBetweenSlices = f"{slice_mm:g}"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = shared["study"]
    ds.SeriesInstanceUID = shared["series"]
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = index + 1
    half = (COLUMNS - 1) * PIXEL_MM / 2
    ds.ImagePositionPatient = [f"{-half:.2f}", f"{-half:.2f}", f"{z_mm:.2f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = shared["frame"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = f"{z_mm:.2f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.PixelSpacing = [f"{PIXEL_MM:g}", f"{PIXEL_MM:g}"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    ds.RescaleIntercept = str(INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds
