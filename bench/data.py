"""Benchmark inputs, built with pydicom.

``ct_zip``: a CT of N slices of real anatomy and noise, from the LIDC chest CT in
../shared/dicom: its 275 slices in position order, then mirrored back and forth to reach N,
each written as a new instance of one new series at 1 mm spacing (the pixel data of every file
is a real slice, so compression and rendering costs are real). ``small_images_zip``: many
64x64 instances in one ZIP, in one or several series.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

REPO = Path(__file__).resolve().parent.parent
CT_SOURCE = REPO.parent / "shared" / "dicom" / "ct-chest-lidc0314-fnndsc" / "LIDC-IDRI-0314_CT_275slices.zip"


def ct_source() -> Path:
    """The shared 275-slice LIDC CT's ZIP; exits saying so when ../shared is not there."""
    if not CT_SOURCE.is_file():
        raise SystemExit(f"benchmark data missing: {CT_SOURCE}")
    return CT_SOURCE


def _source_slices() -> list[pydicom.Dataset]:
    with zipfile.ZipFile(ct_source()) as zf:
        datasets = [pydicom.dcmread(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".dcm")]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    return datasets


def ct_zip(target: Path, slices: int) -> Path:
    """A ZIP of ``slices`` CT files (deflated, as people upload them); cached by name."""
    if target.is_file():
        return target
    source = _source_slices()
    cycle = source + source[-2:0:-1]  # there and back again: continuous anatomy
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    z0 = float(source[0].ImagePositionPatient[2])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for k in range(slices):
            ds = cycle[k % len(cycle)].copy()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.FrameOfReferenceUID = frame_of_reference
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = k + 1
            ds.PatientID, ds.PatientName = "BENCH-CT", "Bench^Chest"
            x, y = (float(v) for v in ds.ImagePositionPatient[:2])
            ds.ImagePositionPatient = [x, y, z0 + k * 1.0]
            ds.SliceLocation = z0 + k * 1.0
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            zf.writestr(f"BENCH/{k:05d}.dcm", buffer.getvalue())
    tmp.replace(target)
    return target


def small_images_zip(target: Path, count: int, series: int = 1) -> Path:
    """``count`` 64x64 MR images (noise over a disc) in ``series`` series of one study."""
    if target.is_file():
        return target
    rng = np.random.default_rng(7)
    study, series_uids = generate_uid(), [generate_uid() for _ in range(series)]
    per_series = -(-count // series)
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 26**2) * 800
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for k in range(count):
            pixels = (disc + rng.normal(0, 40, (64, 64))).clip(0, 4095).astype(np.uint16)
            number = k // per_series + 1
            data = mr_file(pixels, study, series_uids[k // per_series], number, k % per_series + 1, "SMALL")
            zf.writestr(f"SMALL/{k:05d}.dcm", data)
    tmp.replace(target)
    return target


def mr_file(
    pixels: np.ndarray, study: str, series: str, series_number: int, number: int, name: str, window=None
) -> bytes:
    """A 12-bit MONOCHROME2 MR file (Explicit VR Little Endian, no geometry) of ``pixels``."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName, ds.Modality = f"BENCH-{name}", f"Bench^{name.title()}", "MR"
    ds.SeriesNumber, ds.InstanceNumber = series_number, number
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
