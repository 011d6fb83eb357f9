"""Hostile and broken DICOM files: each is skipped with a reason (or stored safely) and the
rest of the upload is stored."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid

from studies.models import Instance, Series, Upload
from tests.conftest import ingest_zip, make_zip
from tests.dicomgen import make_dataset, save

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def good_image(tmp_path):
    return save(make_dataset(np.full((32, 32), 100, np.uint16), modality="MR"), tmp_path / "good.dcm")


def ingest_with_good(user, tmp_path, hostile: dict):
    files = {"good.dcm": good_image(tmp_path), **hostile}
    upload = ingest_zip(user, make_zip(tmp_path / "hostile.zip", files))
    assert upload.status == Upload.Status.DONE, upload.error
    return upload


def reasons(upload) -> dict:
    return {item["name"]: item["reason"] for item in upload.skipped}


def compressed_dataset(syntax, rows, columns, frames, fragment: bytes) -> Dataset:
    ds = make_dataset(np.zeros((2, 2), np.uint16), modality="CT")
    ds.file_meta.TransferSyntaxUID = syntax
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = encapsulate([fragment] * frames if frames <= 4 else [fragment])
    ds["PixelData"].VR = "OB"
    return ds


def test_huge_claimed_dimensions_are_refused_before_decoding(user, tmp_path):
    huge = save(compressed_dataset(JPEGLSLossless, 65535, 65535, 1000, b"\xff\xd8\xff\xd9"), tmp_path / "huge.dcm")
    upload = ingest_with_good(user, tmp_path, {"huge.dcm": huge})
    assert "more than this server decodes" in reasons(upload)["huge.dcm"]
    assert upload.files_dicom == 1


def test_dimensions_larger_than_the_pixel_data_are_refused(user, tmp_path):
    ds = make_dataset(np.zeros((64, 64), np.uint16))
    ds.Rows = ds.Columns = 4096  # claims 32 MB, holds 8 KB
    upload = ingest_with_good(user, tmp_path, {"liar.dcm": save(ds, tmp_path / "liar.dcm")})
    assert "truncated" in reasons(upload)["liar.dcm"]


def test_undecodable_compressed_data_is_skipped_with_its_reason(user, tmp_path):
    garbage = save(compressed_dataset(JPEG2000Lossless, 64, 64, 1, b"\x00" * 500), tmp_path / "j2k.dcm")
    upload = ingest_with_good(user, tmp_path, {"j2k.dcm": garbage})
    assert "could not be decoded" in reasons(upload)["j2k.dcm"]
    assert Instance.objects.count() == 1


def test_bad_values_in_geometry_do_not_stop_the_file(user, tmp_path):
    ds = make_dataset(np.full((16, 16), 7, np.uint16), modality="MR", position=(111, 222, 333), spacing=(4, 5))
    path = save(ds, tmp_path / "odd.dcm")
    data = path.read_bytes()
    assert b"111.0\\222.0\\333.0" in data and b"4.0\\5.0" in data
    data = data.replace(b"111.0\\222.0\\333.0", b"abc.0\\def.0\\ghi.0").replace(b"4.0\\5.0", b"x.0\\y.0")
    path.write_bytes(data)  # ImagePositionPatient and PixelSpacing that are not numbers
    upload = ingest_with_good(user, tmp_path, {"odd.dcm": path})
    assert upload.files_dicom == 2 and upload.skipped == []
    odd = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert odd.image_position is None and odd.pixel_spacing is None


def test_garbage_after_the_dicm_marker_is_skipped(user, tmp_path):
    data = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00ZZ\xff\xff" + np.random.default_rng(1).bytes(5000)
    upload = ingest_with_good(user, tmp_path, {"garbage.dcm": data})
    assert upload.skipped[0]["name"] == "garbage.dcm"
    assert upload.files_dicom == 1


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uids_are_skipped_with_a_reason(user, tmp_path, missing):
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    delattr(ds, missing)
    upload = ingest_with_good(user, tmp_path, {"nouid.dcm": save(ds, tmp_path / "nouid.dcm")})
    assert reasons(upload)["nouid.dcm"] == f"no {missing}: the image cannot be placed in a study"


def test_uids_longer_than_64_characters_are_skipped(user, tmp_path):
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    ds.SeriesInstanceUID = "1.2." + "3" * 70
    upload = ingest_with_good(user, tmp_path, {"long.dcm": save(ds, tmp_path / "long.dcm")})
    assert "longer than 64 characters" in reasons(upload)["long.dcm"]


def test_palette_indices_beyond_the_table_do_not_crash(user, tmp_path):
    indices = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ds = make_dataset(indices, modality="OT", photometric="PALETTE COLOR")
    for colour in ("Red", "Green", "Blue"):  # a 16-entry palette for 256 possible indices
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [16, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", (np.arange(16, dtype="<u2") * 4096).tobytes())
    upload = ingest_zip(
        user,
        make_zip(
            tmp_path / "p.zip", {"palette.dcm": save(ds, tmp_path / "palette.dcm"), "good.dcm": good_image(tmp_path)}
        ),
    )
    assert upload.status == Upload.Status.DONE
    stored_or_skipped = upload.files_dicom + upload.files_skipped
    assert stored_or_skipped == 2 and Series.objects.filter(render_status="done").count() == upload.files_dicom


def non_image(sop_class: str, tmp_path, name: str):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "RTSTRUCT" if "481" in sop_class else "ECG"
    return save(ds, tmp_path / name)


def test_non_image_objects_are_skipped_with_their_kind(user, tmp_path):
    rt = non_image("1.2.840.10008.5.1.4.1.1.481.3", tmp_path, "rt.dcm")  # RT Structure Set Storage
    ecg = non_image("1.2.840.10008.5.1.4.1.1.9.1.1", tmp_path, "ecg.dcm")  # 12-lead ECG Waveform Storage
    upload = ingest_with_good(user, tmp_path, {"rt.dcm": rt, "ecg.dcm": ecg})
    found = reasons(upload)
    assert "not an image (RT Structure Set Storage)" in found["rt.dcm"]
    assert "not an image (12-lead ECG Waveform Storage)" in found["ecg.dcm"]
    assert upload.files_dicom == 1
