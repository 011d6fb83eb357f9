"""Every real case in ../shared/dicom goes through the whole ingest (in-process tasks).

Each case must produce the right series and planes, or be skipped with a stated reason.
"""

from __future__ import annotations

import hashlib
import zipfile

import cv2
import numpy as np
import pytest

from studies import storage
from studies.models import Instance, Patient, Series, Study, Upload
from tests.conftest import SHARED_DICOM, ingest_zip, shared_path, stored_bytes, stored_names, zip_folder

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]

CT = "ct-chest-lidc0314-fnndsc/LIDC-IDRI-0314_CT_275slices.zip"
MR = "mr-brain-4series-fnndsc/adi_brain_MR_4series.zip"
PET = "pt-wholebody-qinheadneck-fnndsc/QIN-HEADNECK-01-0024_PET_299slices_SEG.zip"


def case_zip(tmp_path, case: str):
    path = shared_path(case)
    if path.is_file():
        return path
    return zip_folder(path, tmp_path / f"{path.name}.zip")


def plane_shapes(series: Series) -> dict:
    return {name: (p["count"], p["width"], p["height"]) for name, p in series.planes.items()}


def assert_fully_rendered(series: Series):
    assert series.render_status == Series.Render.DONE, series.render_error
    assert series.images_done == series.images_total == sum(p["count"] for p in series.planes.values())
    folder = storage.derived_prefix(series.pk, series.render_version)
    for name, plane in series.planes.items():
        files = [n for n in stored_names(f"{folder}{name}/") if n.endswith(".png")]
        assert len(files) == plane["count"], name
    assert storage.exists(storage.thumbnail_name(series.pk, series.render_version))
    assert storage.exists(storage.complete_name(series.pk, series.render_version))


def png(series: Series, plane: str, index: int) -> np.ndarray:
    data = stored_bytes(storage.image_name(series.pk, series.render_version, plane, index))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_ct_chest_becomes_one_volume_with_three_planes(user, tmp_path):
    upload = ingest_zip(user, case_zip(tmp_path, CT))
    assert upload.status == Upload.Status.DONE, upload.error
    assert (upload.files_total, upload.files_dicom, upload.files_skipped) == (275, 275, 0)
    series = Series.objects.get(study__owner=user)
    assert series.is_volume and series.num_instances == 275
    # 0.78125 mm pixels, 274 mm of slices: coronal/sagittal are 512 wide and 274/0.78125+1 high
    assert plane_shapes(series) == {"axial": (275, 512, 512), "coronal": (512, 512, 352), "sagittal": (512, 512, 352)}
    assert series.window == {"center": -450.0, "width": 2000.0}
    assert_fully_rendered(series)
    assert png(series, "coronal", 256).shape == (352, 512)
    assert upload.studies.get().patient.patient_id == "LIDC-IDRI-0314"


def test_originals_are_kept_byte_for_byte(user, tmp_path):
    upload = ingest_zip(user, case_zip(tmp_path, CT))
    with zipfile.ZipFile(shared_path(CT)) as zf:
        member = zf.getinfo("LIDC-IDRI-0314/000001.dcm")
        expected = hashlib.sha256(zf.read(member)).hexdigest()
    from studies.imaging.headers import read_header

    stored = {hashlib.sha256(stored_bytes(i.file)).hexdigest() for i in Instance.objects.filter(upload=upload)}
    assert expected in stored
    assert all(read_header(storage.local_copy(i.file)).rows == 512 for i in Instance.objects.all()[:5])


def test_mr_study_with_oblique_volumes_and_single_images(user, tmp_path):
    upload = ingest_zip(user, case_zip(tmp_path, MR))
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.files_dicom == 232
    study = Study.objects.get(owner=user)
    assert study.num_series == 4 and study.num_instances == 232 and study.modality_list == ["MR"]
    by_number = {s.series_number: s for s in study.series.all()}
    assert by_number[5].is_volume and by_number[6].is_volume
    assert not by_number[17].is_volume and plane_shapes(by_number[17]) == {"stack": (1, 256, 256)}
    # the missing slice in each volume leaves a double gap: still a volume, with a note
    assert any("irregular slice spacing" in note for note in by_number[5].layout["notes"])
    for series in by_number.values():
        assert_fully_rendered(series)


def test_pet_volume_and_segmentation_in_one_study(user, tmp_path):
    upload = ingest_zip(user, case_zip(tmp_path, PET))
    assert upload.status == Upload.Status.DONE, upload.error
    pet = Series.objects.get(modality="PT")
    assert pet.series_number is None and pet.is_volume
    assert plane_shapes(pet)["axial"] == (299, 128, 128)
    seg = Series.objects.get(modality="SEG")
    assert plane_shapes(seg)["stack"][0] == 13
    assert Study.objects.count() == 1


@pytest.mark.parametrize(
    "case, expected_status, stored, skipped_reasons",
    [
        ("mr-transfer-syntaxes-dcmqats", "done", 9, []),
        ("compressed-clinical-nema-wg04", "done", 7, ["12-bit samples cannot be decoded"]),
        ("sc-rgb-htj2k-pydicomdata", "failed", 0, ["no StudyInstanceUID"]),
        ("mr-enhanced-multiframe-dcmqaenh", "done", 5, []),
        ("ct-enhanced-multiframe-nema-pydicomdata", "done", 1, []),
        ("cr-monochrome1", "done", 2, []),
        ("us-color-and-cine", "done", 4, []),
        (
            "secondary-capture",
            "done",
            1,
            ["SeriesInstanceUID is not a valid UID"],
        ),  # GDCM's CT-MONO2-8-abdo: "REM SAMPLES 1"
        ("deflate-sc-pydicom", "done", 1, []),
        ("dicomdir-pydicom", "done", 31, ["DICOMDIR index file"]),
        ("non-image-sr-seg-rwvm-dcmqi", "done", 1, ["not an image (Comprehensive SR", "not an image (Real World"]),
        (
            "odd-tags",
            "done",
            2,
            ["no Rows or Columns", "same SOPInstanceUID", "same SOPInstanceUID", "SOPInstanceUID is not a valid UID"],
        ),
        ("mr-multiframe-classic-dwv", "done", 1, []),
        ("lut-modality-voi-pydicomdata", "done", 2, []),
    ],
)
def test_small_cases_are_stored_or_skipped_with_a_reason(
    user, tmp_path, case, expected_status, stored, skipped_reasons
):
    upload = ingest_zip(user, case_zip(tmp_path, case))
    assert upload.status == expected_status, upload.error
    assert upload.files_dicom == stored
    assert upload.files_total == upload.files_dicom + upload.files_skipped
    reasons = sorted(item["reason"] for item in upload.skipped)
    assert len(reasons) == len(skipped_reasons), reasons
    for fragment in skipped_reasons:
        assert any(fragment in reason for reason in reasons), (fragment, reasons)
    for series in Series.objects.filter(uploads=upload):
        assert_fully_rendered(series)
    if expected_status == "failed":
        assert upload.error and not Instance.objects.exists()


def test_colour_images_are_rendered_in_colour(user, tmp_path):
    ingest_zip(user, case_zip(tmp_path, "us-color-and-cine"))
    cine = Series.objects.get(num_frames=30)
    assert plane_shapes(cine) == {"stack": (30, 320, 240)}
    image = png(cine, "stack", 10)
    assert image.shape == (240, 320, 3)
    assert np.abs(image[..., 0].astype(int) - image[..., 2]).max() > 20  # not grey


def test_monochrome1_is_inverted_after_the_window(user, tmp_path):
    import pydicom

    source = shared_path("cr-monochrome1", "gdcm-CR-MONO1-10-chest.dcm")
    folder = tmp_path / "cr"
    folder.mkdir()
    (folder / "chest.dcm").write_bytes(source.read_bytes())
    ingest_zip(user, zip_folder(folder, tmp_path / "cr.zip"))
    series = Series.objects.get()
    values = pydicom.dcmread(source).pixel_array.astype(float)
    c, w = 550.0, 1024.0
    expected = 255 - np.rint(np.clip(((values - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255))
    assert np.abs(png(series, "stack", 0).astype(float) - expected).max() <= 1


def test_dicomdir_upload_reads_every_patient_and_study(user, tmp_path):
    ingest_zip(user, case_zip(tmp_path, "dicomdir-pydicom"))
    assert Patient.objects.filter(owner=user).count() == 2
    assert Study.objects.filter(owner=user).count() == 6
    assert Series.objects.filter(study__owner=user).count() == 13


def test_same_zip_twice_stores_nothing_twice(user, tmp_path):
    zip_path = case_zip(tmp_path, "mr-transfer-syntaxes-dcmqats")
    first = ingest_zip(user, zip_path)
    second = ingest_zip(user, zip_path)
    assert second.status == Upload.Status.DONE
    assert second.files_dicom == 0 and second.files_skipped == 9
    assert all("already stored" in item["reason"] for item in second.skipped)
    assert list(second.studies.all()) == list(first.studies.all())
    assert Instance.objects.count() == 9 and Series.objects.count() == 1


def test_second_upload_adds_series_and_slices_to_the_same_study(user, tmp_path):
    source = shared_path(MR)
    with zipfile.ZipFile(source) as zf:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
        first_half, second_half = names[::2], names[1::2]
        zip_a = tmp_path / "a.zip"
        zip_b = tmp_path / "b.zip"
        for target, members in ((zip_a, first_half), (zip_b, second_half)):
            with zipfile.ZipFile(target, "w") as out:
                for name in members:
                    out.writestr(name, zf.read(name))
    ingest_zip(user, zip_a)
    volume = Series.objects.get(series_number=5)
    assert volume.num_instances < 175
    ingest_zip(user, zip_b)
    study = Study.objects.get()
    assert study.num_series == 4 and study.num_instances == 232
    volume.refresh_from_db()
    assert volume.num_instances == 175 and volume.render_version == 2
    assert_fully_rendered(volume)
    # the superseded version's images are gone
    assert not stored_names(storage.derived_prefix(volume.pk, 1))


def test_other_users_upload_of_the_same_study_stays_separate(user, other_user, tmp_path):
    zip_path = case_zip(tmp_path, "mr-transfer-syntaxes-dcmqats")
    ingest_zip(user, zip_path)
    theirs = ingest_zip(other_user, zip_path)
    assert theirs.status == Upload.Status.DONE and theirs.files_dicom == 9
    assert Study.objects.filter(owner=user).count() == Study.objects.filter(owner=other_user).count() == 1


def test_real_data_folder_is_present_in_ci():
    """CI has ../shared/dicom; say so loudly if it is missing there rather than skipping silently."""
    import os

    if os.environ.get("CI") and not SHARED_DICOM.is_dir():
        pytest.fail(f"CI must provide the real DICOM cases at {SHARED_DICOM}")
