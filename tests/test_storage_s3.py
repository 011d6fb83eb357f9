"""Storage in an S3-compatible bucket (moto's server): everything kept lives in the bucket, clients
get images from it, and a bucket that cannot be used is a clear error, never a lost file."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import Client

from studies import scratch, storage
from studies.models import Instance, Series, Study, Upload
from studies.services import image_source, ingest
from tests import dicomgen
from tests.conftest import api_client_for, bucket_names, free_port, ingest_zip, make_zip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def study_zip(tmp_path):
    """A 6-slice CT volume and a single secondary capture: both kinds of series."""
    from pydicom.uid import generate_uid

    study_uid = generate_uid()
    voxels = (np.arange(6 * 24 * 20, dtype=np.int16).reshape(6, 24, 20) % 700) - 300
    paths = dicomgen.write_volume(
        tmp_path / "ct", voxels, study_uid=study_uid, Modality="CT", WindowCenter=40, WindowWidth=400
    )
    pixels = np.arange(30 * 40, dtype=np.uint16).reshape(30, 40)
    single = dicomgen.write_image(tmp_path / "sc.dcm", pixels, study_uid=study_uid)
    return make_zip(tmp_path / "study.zip", {p.name: p for p in paths} | {"sc.dcm": single})


def point_storage_at(settings, endpoint: str):
    """Move the storage endpoint (a fresh backend: the old one keeps its connections)."""
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.STORAGES = {**settings.STORAGES}


@pytest.fixture
def stored(user, tmp_path, s3):
    upload = ingest_zip(user, study_zip(tmp_path))
    assert upload.status == Upload.Status.DONE, upload.error
    return upload


def test_an_ingest_keeps_everything_in_the_bucket_and_nothing_on_local_disk(stored, s3, moto, media_root, settings):
    names = bucket_names(moto, s3)
    assert {i.file for i in Instance.objects.all()} <= set(names)
    for series in Series.objects.all():
        derived = storage.derived_prefix(series.pk, series.render_version)
        images = [n for n in names if n.startswith(derived) and n.endswith(".png") and "/thumb" not in n]
        assert len(images) == series.images_total == sum(p["count"] for p in series.planes.values())
        assert derived + "thumb.png" in names and derived + "source.json" in names and derived + "complete" in names
    volume = Series.objects.get(is_volume=True)
    assert storage.volume_name(volume.pk, volume.render_version) in names
    assert not [n for n in names if n.startswith("uploads/")], "the ZIP goes once the upload is done"
    assert not [p for p in media_root.rglob("*") if p.is_file()], "no media on local disk"
    assert not (settings.SCRATCH_DIR / "work").exists() or not any((settings.SCRATCH_DIR / "work").iterdir())
    assert not list((settings.SCRATCH_DIR / "cache").rglob("*.dcm")), "the worker's copies of originals are gone"


def test_images_come_from_the_bucket_through_presigned_urls(stored, user, s3, moto, settings):
    api = api_client_for(user)
    series = Series.objects.get(is_volume=True)
    template = api.get(f"/api/series/{series.pk}/").json()["planes"]["coronal"]["url"]
    signed = Client().get(template.replace("{index}", "2"))
    assert signed.status_code == 302
    presigned = signed["Location"]
    assert presigned.startswith(f"{moto.url}/{s3}/derived/{series.pk}/") and "X-Amz-Signature=" in presigned
    expires_in = int(presigned.split("X-Amz-Expires=")[1].split("&")[0])
    assert 0 < expires_in <= settings.IMAGE_URL_TTL
    reply = requests.get(presigned, timeout=10)
    assert reply.status_code == 200 and reply.content[:4] == b"\x89PNG"
    name = storage.image_name(series.pk, series.render_version, "coronal", 2)
    assert reply.content == moto.client().get_object(Bucket=s3, Key=name)["Body"].read()


def test_other_windows_are_rendered_from_the_stored_volume_on_any_host(stored, user, s3, settings, media_root):
    series = Series.objects.get(is_volume=True)
    scratch.remove_tree(settings.SCRATCH_DIR / "cache")  # a web host that has never seen the series
    image_source.clear()
    template = api_client_for(user).get(f"/api/series/{series.pk}/").json()["planes"]["axial"]["url"]
    response = Client().get(template.replace("{index}", "1") + "?wc=100&ww=300")
    assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
    assert (settings.SCRATCH_DIR / "cache" / storage.volume_name(series.pk, series.render_version)).is_file()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_originals_stream_from_the_bucket(stored, user, s3, moto):
    api = api_client_for(user)
    instance = Instance.objects.first()
    original = moto.client().get_object(Bucket=s3, Key=instance.file)["Body"].read()
    response = api.get(f"/api/instances/{instance.pk}/file", HTTP_ACCEPT="application/dicom")
    assert b"".join(response.streaming_content) == original
    study = Study.objects.get()
    archive = b"".join(api.get(f"/api/studies/{study.pk}/archive.zip").streaming_content)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert len(zf.namelist()) == Instance.objects.count() and zf.testzip() is None
    series = instance.series
    dw = f"/dicomweb/studies/{study.study_instance_uid}/series/{series.series_instance_uid}"
    assert api.get(f"{dw}/metadata", HTTP_ACCEPT="application/dicom+json").status_code == 200
    tags = Client()
    tags.force_login(instance.owner)
    assert tags.get(f"/series/{series.pk}/tags/?plane={next(iter(series.planes))}&index=0").status_code == 200


def test_deleting_a_series_removes_its_objects(stored, user, s3, moto):
    series = Series.objects.get(is_volume=True)
    assert api_client_for(user).delete(f"/api/series/{series.pk}/").status_code == 204
    left = bucket_names(moto, s3)
    assert not [n for n in left if n.startswith((f"originals/{series.pk}/", f"derived/{series.pk}/"))]
    assert [n for n in left if n.startswith("originals/")], "the other series stays"


def test_a_missing_bucket_is_a_clear_error_at_start_and_in_healthz(s3, settings, client):
    settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket"
    settings.STORAGES = {**settings.STORAGES}
    with pytest.raises(storage.StorageUnavailable, match="'no-such-bucket' does not exist"):
        storage.check()
    with pytest.raises(CommandError, match="file storage cannot be used: the bucket 'no-such-bucket' does not exist"):
        call_command("serve", "web")
    response = client.get("/healthz")
    assert response.status_code == 503 and "does not exist" in response.json()["storage"]


def test_refused_credentials_and_an_unreachable_endpoint_say_so():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from studies.storage_backends import StorageUnavailable, translate_s3_error

    refused = ClientError({"Error": {"Code": "InvalidAccessKeyId"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "Put")
    error = translate_s3_error(refused, "storing x", "scans")
    assert isinstance(error, StorageUnavailable) and "refused the credentials" in str(error)
    down = translate_s3_error(EndpointConnectionError(endpoint_url="http://x"), "reading y", "scans")
    assert isinstance(down, StorageUnavailable) and "could not be reached" in str(down)
    missing = ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "Get")
    assert isinstance(translate_s3_error(missing, "reading z", "scans"), FileNotFoundError)


def test_a_storage_outage_during_ingest_fails_the_upload_clearly_and_keeps_nothing(
    user, tmp_path, s3, moto, monkeypatch
):
    from studies.storage_backends import MediaS3Storage, StorageUnavailable

    real_save = MediaS3Storage.save_file
    calls = {"n": 0}

    def flaky(self, name, source, *, move=False):
        calls["n"] += 1
        if name.startswith("originals/") and calls["n"] > 3:
            raise StorageUnavailable("the storage endpoint could not be reached while storing " + name)
        return real_save(self, name, source, move=move)

    monkeypatch.setattr(MediaS3Storage, "save_file", flaky)
    upload = ingest_zip(user, study_zip(tmp_path))
    assert upload.status == Upload.Status.FAILED
    assert upload.error.startswith("The file storage could not be used (the storage endpoint could not be reached")
    assert not Instance.objects.exists() and not Series.objects.exists() and not Study.objects.exists()
    assert not [n for n in bucket_names(moto, s3) if n.startswith(("originals/", "derived/"))]
    assert storage.exists(upload.file), "the archive is kept, to run it again"


def test_an_unreachable_endpoint_fails_the_ingest_and_images_answer_503(
    stored, user, tmp_path, s3, settings, monkeypatch
):
    series = Series.objects.get(is_volume=True)
    template = api_client_for(user).get(f"/api/series/{series.pk}/").json()["planes"]["axial"]["url"]
    monkeypatch.setattr("studies.services.uploads.queue_ingest", lambda upload_id: None)
    queued = ingest_zip(user, study_zip(tmp_path / "again"))
    point_storage_at(settings, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    image_source.clear()
    from studies import image_server

    image_server._complete.clear()
    response = Client().get(template.replace("{index}", "0"))
    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert "storage cannot be reached" in response.json()["detail"]
    ingest.upload_ingest(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Upload.Status.FAILED and "could not be reached" in queued.error


def test_an_outage_while_rendering_fails_the_series_with_the_reason_and_keeps_the_originals(
    user, tmp_path, s3, moto, monkeypatch
):
    from studies.storage_backends import MediaS3Storage, StorageUnavailable

    real_save = MediaS3Storage.save_bytes

    def down_for_chunks(self, name, data):
        if "/coronal/" in name:  # the render chunks of one plane meet the outage
            raise StorageUnavailable("the storage endpoint could not be reached while storing " + name)
        return real_save(self, name, data)

    monkeypatch.setattr(MediaS3Storage, "save_bytes", down_for_chunks)
    upload = ingest_zip(user, study_zip(tmp_path))
    volume = Series.objects.get(is_volume=True)
    assert volume.render_status == Series.Render.FAILED
    assert volume.render_error.startswith("the file storage could not be used (the storage endpoint")
    assert upload.status == Upload.Status.FAILED and "could not be rendered" in upload.error
    originals = {n for n in bucket_names(moto, s3) if n.startswith("originals/")}
    assert {i.file for i in Instance.objects.all()} == originals, "every original is kept, to render again"


def test_a_wiped_scratch_cache_changes_nothing_a_user_sees(stored, user, s3, settings):
    api = api_client_for(user)
    urls = [
        api.get(f"/api/series/{series.pk}/").json()["planes"][plane]["url"].replace("{index}", "0")
        for series in Series.objects.all()
        for plane in series.planes
    ]
    assert all(Client().get(url + "?wc=100&ww=200").status_code == 200 for url in urls)
    scratch.remove_tree(settings.SCRATCH_DIR / "cache")  # trimmed, or wiped by an operator
    assert all(Client().get(url + "?wc=101&ww=200").status_code == 200 for url in urls)
    image_source.clear()  # and a process that starts afresh fetches what it needs again
    assert all(Client().get(url + "?wc=102&ww=200").status_code == 200 for url in urls)
