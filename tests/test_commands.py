"""Operator commands: import_dicom (ZIP or folder, through the upload pipeline) and make_demo_study."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command

from studies.demo import phantom_slice, write_demo_ct
from studies.models import Series, Study, Upload
from tests.conftest import shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_a_folder_waits_and_reports(user, eager_celery):
    output = run("import_dicom", str(shared_path("mr-transfer-syntaxes-dcmqats")), "--user", "alice")
    upload = Upload.objects.get()
    assert f"upload {upload.pk} queued" in output
    assert f"upload {upload.pk} done: 9 file(s) stored" in output
    assert upload.owner == user and upload.status == Upload.Status.DONE
    from studies import scratch

    assert not list(scratch.tmp_dir().glob("import-*")), "the staged ZIP was moved, not left behind"


def test_import_a_zip(user, eager_celery, tmp_path):
    archive = zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip")
    output = run("import_dicom", str(archive), "--user", "alice")
    assert "done: 9 file(s) stored" in output
    assert archive.exists(), "the operator's file is copied, not moved"


def test_import_without_waiting_only_queues(user, monkeypatch):
    queued = []
    monkeypatch.setattr("studies.services.uploads.queue_ingest", queued.append)
    output = run("import_dicom", str(shared_path("mr-transfer-syntaxes-dcmqats")), "--user", "alice", "--no-wait")
    upload = Upload.objects.get()
    assert queued == [upload.pk] and upload.status == Upload.Status.QUEUED
    assert "/api/uploads/" in output


def test_import_errors(user, tmp_path):
    with pytest.raises(CommandError, match="No user"):
        run("import_dicom", str(tmp_path), "--user", "nobody")
    with pytest.raises(CommandError, match="does not exist"):
        run("import_dicom", str(tmp_path / "missing.zip"), "--user", "alice")
    text = tmp_path / "notes.zip"
    text.write_text("not a zip")
    with pytest.raises(CommandError, match="not a ZIP"):
        run("import_dicom", str(text), "--user", "alice")


def test_import_that_fails_is_an_error(user, eager_celery, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images")
    with pytest.raises(CommandError, match="No DICOM images"):
        run("import_dicom", str(folder), "--user", "alice")


def test_demo_study_is_a_ct_volume_with_planes(user, eager_celery):
    output = run("make_demo_study", "--user", "alice", "--slices", "24")
    assert "done: 24 file(s) stored" in output
    study = Study.objects.get(owner=user)
    assert study.modalities == "CT" and "Demo" in study.description
    series = Series.objects.get(study=study)
    assert series.is_volume and set(series.planes) == {"axial", "coronal", "sagittal"}
    assert series.planes["axial"]["count"] == 24
    assert series.window == {"center": 40.0, "width": 400.0}


def test_demo_phantom_has_anatomy_in_hounsfield_units(tmp_path):
    rng = np.random.default_rng(0)
    chest, abdomen = phantom_slice(0.35, rng), phantom_slice(0.85, rng)
    assert (chest < -700).sum() > 5000 and (chest[100:160, 60:200] < -700).any(), "lungs"
    assert (chest > 600).sum() > 200, "bone: spine and ribs"
    assert chest[0, 0] < -900, "air outside the body"
    assert (abdomen < -700).sum() < (chest < -700).sum(), "no lungs below the diaphragm"
    assert ((abdomen > 40) & (abdomen < 80)).sum() > 5000, "liver"
    paths = write_demo_ct(tmp_path, slices=3)
    ds = pydicom.dcmread(paths[1])
    assert ds.Modality == "CT" and ds.RescaleIntercept == -1024 and ds.RescaleType == "HU"
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    z = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in paths]
    assert z[0] > z[1] > z[2], "head first, positions descend"
    hu = ds.pixel_array.astype(float) + float(ds.RescaleIntercept)
    assert hu.min() >= -1024 and hu.max() < 3072
