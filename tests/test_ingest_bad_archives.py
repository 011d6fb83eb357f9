"""Bad archives end in a clear status, with nothing half-written and the good files kept."""

from __future__ import annotations

import zipfile

import pytest

from studies import scratch, storage
from studies.models import Instance, Series, Study, Upload
from tests.conftest import ingest_zip, make_zip, shared_path, stored_names

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def good_dicom() -> bytes:
    return shared_path("mr-transfer-syntaxes-dcmqats", "1.dcm").read_bytes()


def assert_nothing_left_behind(upload: Upload):
    assert not scratch.work_dir(upload.pk).exists(), "extraction folder removed"
    if upload.status == Upload.Status.DONE:
        assert not stored_names(storage.upload_prefix(upload.pk)) and upload.file == "", "ZIP removed once done"
    else:
        assert storage.exists(upload.file), "a failed upload keeps its ZIP, to run it again"


def assert_failed_cleanly(upload: Upload, fragment: str):
    assert upload.status == Upload.Status.FAILED
    assert fragment in upload.error
    assert not Instance.objects.exists() and not Series.objects.exists() and not Study.objects.exists()
    assert not stored_names("originals/")
    assert_nothing_left_behind(upload)


def test_traversal_member_is_refused_and_the_rest_stored(user, tmp_path):
    archive = make_zip(tmp_path / "t.zip", {"../../etc/evil.dcm": good_dicom(), "ok/1.dcm": good_dicom()})
    upload = ingest_zip(user, archive)
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1
    assert [item["name"] for item in upload.skipped] == ["../../etc/evil.dcm"]
    assert "outside the archive" in upload.skipped[0]["reason"]
    assert not (tmp_path.parent / "etc").exists()
    assert_nothing_left_behind(upload)


def test_only_traversal_members_fail_cleanly(user, tmp_path):
    archive = make_zip(tmp_path / "t.zip", {"/abs/evil.dcm": good_dicom(), "..\\..\\win.dcm": good_dicom()})
    assert_failed_cleanly(ingest_zip(user, archive), "No DICOM images")


def test_zip_bomb_is_never_inflated_when_it_is_not_dicom(user, tmp_path, settings):
    settings.INGEST_MAX_RATIO = 100
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.dcm": b"\0" * (30 * 1024 * 1024)})
    upload = ingest_zip(user, archive)
    assert_failed_cleanly(upload, "No DICOM images")
    assert upload.skipped == [{"name": "zeros.dcm", "reason": "not a DICOM file"}]


def test_zip_bomb_with_a_dicom_header_is_stopped_while_extracting(user, tmp_path, settings):
    import numpy as np

    from tests.dicomgen import write_image

    settings.INGEST_MAX_RATIO = 100
    bomb = write_image(tmp_path / "bomb.dcm", np.zeros((4000, 4000), np.uint16))  # 32 MB of zeros
    upload = ingest_zip(user, make_zip(tmp_path / "bomb.zip", {"bomb.dcm": bomb, "ok.dcm": good_dicom()}))
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1
    assert [item["name"] for item in upload.skipped] == ["bomb.dcm"]
    assert "zip bomb" in upload.skipped[0]["reason"]
    assert Instance.objects.count() == 1
    assert len(stored_names("originals/")) == 1


def test_archive_larger_than_the_total_limit_fails_with_the_limit(user, tmp_path, settings):
    settings.INGEST_MAX_TOTAL_BYTES = 1024 * 1024
    archive = make_zip(tmp_path / "big.zip", {f"{i}.dcm": good_dicom() for i in range(6)})
    assert_failed_cleanly(ingest_zip(user, archive), "GiB")


def test_too_many_members_fails_before_extracting(user, tmp_path, settings):
    settings.INGEST_MAX_MEMBERS = 10
    archive = make_zip(tmp_path / "many.zip", {f"{i}.txt": b"x" for i in range(11)})
    assert_failed_cleanly(ingest_zip(user, archive), "at most 10")


def test_corrupt_member_is_skipped_and_the_rest_stored(user, tmp_path):
    archive = tmp_path / "corrupt.zip"
    dicom = good_dicom()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/broken.dcm", dicom)
        zf.writestr("b/fine.dcm", dicom.replace(b"1.3.12.2.1107", b"1.3.12.2.1108", 1))
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("a/broken.dcm")
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start : start + 8] = b"\xff" * 8
    archive.write_bytes(bytes(data))
    upload = ingest_zip(user, archive)
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.files_dicom == 1
    assert upload.skipped[0]["name"] == "a/broken.dcm" and "corrupt" in upload.skipped[0]["reason"]


def test_truncated_zip_is_refused_at_upload(api, tmp_path):
    archive = make_zip(tmp_path / "whole.zip", {"1.dcm": good_dicom()})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with open(cut, "rb") as fp:
        response = api.post("/api/uploads/", {"file": fp}, format="multipart")
    assert response.status_code == 400 and "truncated" in response.json()["detail"]


def test_empty_zip_fails_cleanly(user, tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w"):
        pass
    assert_failed_cleanly(ingest_zip(user, archive), "empty")


def test_zip_without_dicom_lists_every_skipped_file(user, tmp_path):
    archive = make_zip(
        tmp_path / "docs.zip",
        {
            "notes.txt": b"hello",
            "__MACOSX/._x.dcm": b"\0\5\0\0",
            "scan/.DS_Store": b"\0" * 10,
            "photo.jpg": b"\xff\xd8\xff",
        },
    )
    upload = ingest_zip(user, archive)
    assert_failed_cleanly(upload, "No DICOM images")
    reasons = {item["name"]: item["reason"] for item in upload.skipped}
    assert reasons["notes.txt"] == "not a DICOM file" and reasons["photo.jpg"] == "not a DICOM file"
    assert "operating-system file" in reasons["__MACOSX/._x.dcm"]
    assert upload.files_total == 4 and upload.files_skipped == 4


def test_truncated_dicom_is_skipped_and_the_rest_stored(user, tmp_path):
    dicom = good_dicom()
    other = dicom.replace(b"1.3.12.2.1107", b"1.3.12.2.1109", 1)
    archive = make_zip(tmp_path / "t.zip", {"cut.dcm": dicom[: len(dicom) - 5000], "whole.dcm": other})
    upload = ingest_zip(user, archive)
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1
    assert "truncated" in upload.skipped[0]["reason"]


def test_files_are_recognised_by_content_not_name(user, tmp_path):
    archive = make_zip(tmp_path / "n.zip", {"deep/er/and/deeper/IMAGE_WITHOUT_EXTENSION": good_dicom()})
    upload = ingest_zip(user, archive)
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1


def test_failed_upload_can_run_again_once_the_cause_is_fixed(user, tmp_path, settings):
    from studies.services.uploads import upload_rerun

    settings.INGEST_MAX_MEMBERS = 1
    archive = make_zip(tmp_path / "two.zip", {"a.txt": b"x", "1.dcm": good_dicom()})
    upload = ingest_zip(user, archive)
    assert upload.status == Upload.Status.FAILED and "at most 1" in upload.error
    settings.INGEST_MAX_MEMBERS = 100
    upload_rerun(upload)
    upload.refresh_from_db()
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1 and upload.error == ""
    assert_nothing_left_behind(upload)


def test_done_upload_runs_again_by_rebuilding_its_series(user, tmp_path):
    from studies.services.uploads import UploadBusy, upload_rerun

    upload = ingest_zip(user, make_zip(tmp_path / "one.zip", {"1.dcm": good_dicom()}))
    series = Series.objects.get()
    assert series.render_version == 1
    upload_rerun(upload)
    series.refresh_from_db()
    upload.refresh_from_db()
    assert series.render_version == 2 and series.render_status == Series.Render.DONE
    assert upload.status == Upload.Status.DONE
    assert storage.exists(storage.image_name(series.pk, 2, "stack", 0))
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING)
    upload.refresh_from_db()
    with pytest.raises(UploadBusy):
        upload_rerun(upload)
