"""UIDs are checked against the DICOM grammar at every entrance (ZIP upload, import command,
STOW-RS), and ZIP downloads name their members only from checked values."""

from __future__ import annotations

import io
import zipfile
from io import StringIO

import numpy as np
import pydicom
import pytest
from django.core.management import call_command

from studies.imaging.uids import is_valid_uid, uid_problem
from studies.models import Instance, Series, Upload
from studies.services.archives import safe_member_name
from tests.conftest import api_client_for, ingest_zip, make_zip
from tests.dicomgen import make_dataset, save

pytestmark = pytest.mark.django_db(transaction=True)

BAD = {
    "SeriesInstanceUID": "../../../../tmp/x",
    "SOPInstanceUID": "1.2.3\r\n4",
    "StudyInstanceUID": "1.2.<script>",
    "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7/x",
}


@pytest.mark.parametrize(
    "value,valid",
    [
        ("1.2.840.10008.1.2", True),
        ("0", True),
        ("0.1.20", True),
        ("1" * 64, True),
        ("1" * 65, False),
        ("", False),
        ("1.2.3\n", False),  # pydicom's UID.is_valid says True
        ("1.02", True),  # against PS3.5's letter, but written by real scanners: kept
        ("072495.0449", True),
        ("1..2", False),
        (".1", False),
        ("1.", False),
        ("1.2.3a", False),
        ("1.2.٣", False),  # a digit, but not an ASCII one
        ("../../x", False),
        ("1 .2", False),
    ],
)
def test_the_uid_grammar(value, valid):
    assert is_valid_uid(value) is valid


def test_the_reason_never_carries_control_characters():
    reason = uid_problem("SOPInstanceUID", "1.2\r\n<b>")
    assert "not a valid UID" in reason and "\r" not in reason and "\n" not in reason


def image(tmp_path, name: str, **uids) -> bytes:
    ds = make_dataset(np.full((8, 8), 7, dtype=np.uint16), modality="OT")
    for keyword, value in uids.items():
        ds[keyword].value = value  # set as is: pydicom would warn but keep it
    return save(ds, tmp_path / name).read_bytes()


@pytest.fixture
def bad_files(tmp_path) -> dict[str, bytes]:
    files = {"good.dcm": image(tmp_path, "good.dcm")}
    for keyword, value in BAD.items():
        files[f"bad-{keyword}.dcm"] = image(tmp_path, f"bad-{keyword}.dcm", **{keyword: value})
    return files


def assert_only_the_good_one_stored(upload: Upload):
    assert upload.status == Upload.Status.DONE, upload.error
    assert Instance.objects.count() == 1
    reasons = {item["name"]: item["reason"] for item in upload.skipped}
    for keyword in BAD:
        assert f"{keyword} is not a valid UID" in reasons[f"bad-{keyword}.dcm"], reasons
    for value in BAD.values():
        assert not Instance.objects.filter(sop_instance_uid=value).exists()
        assert not Series.objects.filter(series_instance_uid=value).exists()


def test_a_zip_upload_skips_files_with_bad_uids(user, tmp_path, eager_celery, bad_files):
    assert_only_the_good_one_stored(ingest_zip(user, make_zip(tmp_path / "u.zip", bad_files)))


def test_the_import_command_skips_files_with_bad_uids(user, tmp_path, eager_celery, bad_files):
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in bad_files.items():
        (folder / name).write_bytes(data)
    out = StringIO()
    call_command("import_dicom", str(folder), "--user", user.username, stdout=out)
    assert "1 file(s) stored" in out.getvalue()
    assert_only_the_good_one_stored(Upload.objects.get())


def test_stow_fails_parts_with_bad_uids_and_a_second_stow_too(user, tmp_path, eager_celery, bad_files):
    from tests.test_dicomweb import stow

    api = api_client_for(user)
    files = list(bad_files.values())
    for _ in range(2):  # the second time used to answer 500 (the CR/LF UID went into a Warning header)
        response = stow(api, "/dicomweb/studies", files)
        assert response.status_code in (200, 202), response.content
        body = pydicom.Dataset.from_json(response.json())
        assert sorted(item.FailureReason for item in body.FailedSOPSequence) == [0xC000] * len(BAD)
        echoed = [str(item.get("ReferencedSOPInstanceUID", "") or "") for item in body.FailedSOPSequence]
        assert all(is_valid_uid(uid) for uid in echoed if uid), echoed
        assert len(body.ReferencedSOPSequence) == 1
    assert Instance.objects.count() == 1


def test_zip_downloads_name_members_from_checked_values_only(user, tmp_path, eager_celery):
    """Rows stored before UIDs were checked (made here by hand) never name a member outside the archive."""
    upload = ingest_zip(user, make_zip(tmp_path / "u.zip", {"a.dcm": image(tmp_path, "a.dcm")}))
    assert upload.status == Upload.Status.DONE
    instance = Instance.objects.get()
    Series.objects.update(series_instance_uid="../../../../tmp/x")
    Instance.objects.update(sop_instance_uid="..\\..\\evil\r\n<")
    api = api_client_for(user)
    study, series = instance.series.study_id, instance.series_id
    for url in (f"/api/studies/{study}/archive.zip", f"/api/series/{series}/archive.zip"):
        response = api.get(url)
        assert response.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
        assert names == [f"series-{instance.series_id}/instance-{instance.pk}.dcm"]


@pytest.mark.parametrize(
    "name,safe",
    [
        ("1.2/3.4.dcm", "1.2/3.4.dcm"),
        ("../../../../tmp/x/1.dcm", "tmp/x/1.dcm"),
        ("/etc/passwd", "etc/passwd"),
        ("..\\..\\x", "x"),
        ("a\r\nb/<c>.dcm", "a__b/_c_.dcm"),
        ("./.../", "unnamed"),
    ],
)
def test_the_archive_writer_keeps_member_names_inside_the_archive(name, safe):
    assert safe_member_name(name) == safe
