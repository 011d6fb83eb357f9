"""Synthetic DICOM files for tests, written with pydicom.

Patient coordinates are DICOM's (LPS, mm): +x the patient's left, +y posterior, +z superior.

    paths = write_volume(tmp_path, voxels, orientation=AXIAL, spacing=(0.8, 0.8), slice_step=2.0)
    path = write_image(tmp_path / "one.dcm", pixels, modality="MR", window=(40, 400))

``voxels`` is (slices, rows, columns) of stored values; slice k is written at
``origin + k * slice_step`` (or at ``positions[k]``). Every other keyword goes to ``make_dataset``:
``rescale=(slope, intercept)``, ``window=(center, width)``, ``photometric``, ``modality``,
``bits_stored``, ``pixel_representation``, or any DICOM keyword (``SeriesDescription="x"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import DSfloat

# ImageOrientationPatient: row direction (along a row, increasing column), then column direction.
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # normal +z
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # normal +y
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal -x

SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


def normal_of(orientation: Sequence[float]) -> np.ndarray:
    """The slice normal (row direction x column direction) of an ImageOrientationPatient."""
    return np.cross(np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:], dtype=float))


def slice_positions(count: int, origin=(0.0, 0.0, 0.0), slice_step=1.0, orientation=AXIAL) -> np.ndarray:
    """ImagePositionPatient of ``count`` slices: ``origin + k * step``.

    ``slice_step`` is a distance along the slice normal (mm) or a 3-vector (e.g. a gantry-tilt shear).
    """
    step = np.asarray(slice_step, dtype=float)
    if step.ndim == 0:
        step = float(step) * normal_of(orientation)
    return np.asarray(origin, dtype=float) + np.arange(count)[:, None] * step


def voxel_centres(shape, positions, orientation=AXIAL, spacing=(1.0, 1.0)) -> np.ndarray:
    """World coordinates (slices, rows, columns, 3) of every voxel centre of a stack of slices."""
    slices, rows, cols = shape
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:], dtype=float)
    r = np.arange(rows)[:, None, None] * spacing[0] * col_dir
    c = np.arange(cols)[None, :, None] * spacing[1] * row_dir
    return np.asarray(positions, dtype=float)[:, None, None, :] + (r + c)[None]


def write_volume(
    folder: Path,
    voxels: np.ndarray,
    *,
    orientation: Sequence[float] = AXIAL,
    spacing: Sequence[float] = (1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    slice_step=1.0,
    positions: Sequence[Sequence[float]] | None = None,
    instance_numbers: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    **attrs,
) -> list[Path]:
    """One file per slice of ``voxels`` (slices, rows, columns); returns their paths in slice order.

    ``instance_numbers`` and ``names`` default to 1..n and ``slice_0001.dcm``...; pass a permutation
    to make acquisition or file order differ from the order in space.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = len(voxels)
    if positions is None:
        positions = slice_positions(count, origin, slice_step, orientation)
    instance_numbers = list(instance_numbers) if instance_numbers is not None else list(range(1, count + 1))
    names = list(names) if names is not None else [f"slice_{k + 1:04d}.dcm" for k in range(count)]
    if not (len(positions) == len(instance_numbers) == len(names) == count):
        raise ValueError("positions, instance_numbers and names need one entry per slice")
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    attrs.setdefault("FrameOfReferenceUID", generate_uid())
    paths = []
    for k in range(count):
        ds = make_dataset(
            voxels[k],
            position=positions[k],
            orientation=orientation,
            spacing=spacing,
            instance_number=instance_numbers[k],
            study_uid=study_uid,
            series_uid=series_uid,
            **attrs,
        )
        paths.append(save(ds, folder / names[k]))
    return paths


def write_image(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    """One single-frame image (2-D greyscale, or (rows, columns, 3) uint8 RGB) at ``path``."""
    return save(make_dataset(pixels, **kwargs), Path(path))


def make_dataset(
    pixels: np.ndarray,
    *,
    modality: str = "CT",
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    photometric: str | None = None,
    bits_stored: int | None = None,
    pixel_representation: int | None = None,
    instance_number: int | None = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    **keywords,
) -> Dataset:
    """A complete image dataset (with file meta) around ``pixels``; ``keywords`` are DICOM keywords."""
    pixels = np.asarray(pixels)
    colour = pixels.ndim == 3
    if colour and (pixels.shape[2] != 3 or pixels.dtype != np.uint8):
        raise ValueError("colour images are (rows, columns, 3) uint8 RGB")
    if pixels.dtype not in (np.int16, np.uint16, np.uint8):
        raise ValueError(f"pixels must be int16, uint16 or uint8, not {pixels.dtype}")
    sop_class = SecondaryCaptureImageStorage if colour else SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "PHANTOM-1"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.SeriesNumber = 1
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if position is not None:
        ds.ImagePositionPatient = _ds(position)
    if orientation is not None:
        ds.ImageOrientationPatient = _ds(orientation)
    if spacing is not None:
        ds.PixelSpacing = _ds(spacing)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(rescale)
        ds.RescaleType = "HU" if modality == "CT" else "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = _ds(window)

    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric or ("RGB" if colour else "MONOCHROME2")
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = pixel_representation if pixel_representation is not None else int(pixels.dtype == np.int16)
    ds.PixelData = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<"))).tobytes()

    for keyword, value in keywords.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{keyword} is not a DICOM keyword")
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _ds(values) -> list[DSfloat]:
    return [DSfloat(float(v), auto_format=True) for v in values]
