"""The API of the core platform: token auth, uploads, studies, series, images, health."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from rest_framework.test import APIClient

from studies.models import Series, Upload
from tests.conftest import PASSWORD, api_client_for, get_image, ingest_zip, make_zip, shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_study(user, tmp_path, eager_celery):
    """The nine-encodings MR slice, ingested for ``user``."""
    folder = shared_path("mr-transfer-syntaxes-dcmqats")
    upload = ingest_zip(user, zip_folder(folder, tmp_path / "ts.zip"))
    assert upload.status == Upload.Status.DONE, upload.error
    return upload


@pytest.fixture
def ct_volume(user, tmp_path, eager_celery):
    """A small real CT volume: 12 consecutive slices of the LIDC chest."""
    import zipfile

    import pydicom

    source = shared_path("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
    with zipfile.ZipFile(source) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        height = {n: float(pydicom.dcmread(zf.open(n), stop_before_pixels=True).ImagePositionPatient[2]) for n in names}
        names.sort(key=height.get)  # file names do not follow position: pick 12 neighbouring slices
        members = {name: zf.read(name) for name in names[130:142]}
    upload = ingest_zip(user, make_zip(tmp_path / "ct12.zip", members))
    assert upload.status == Upload.Status.DONE, upload.error
    return Series.objects.get(study__owner=user)


def test_token_from_username_and_password(user):
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/studies/").status_code == 200
    bad = APIClient().post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 400


def test_session_login_works_too(client, user):
    assert client.login(username="alice", password=PASSWORD)
    assert client.get("/api/studies/").status_code == 200


@pytest.mark.parametrize("path", ["/api/studies/", "/api/uploads/", "/api/series/1/", "/api/series/1/thumbnail.png"])
def test_anonymous_requests_are_refused_with_json(path):
    response = APIClient().get(path)
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")


def test_upload_answers_202_and_queues_instead_of_ingesting(api, monkeypatch, tmp_path):
    queued = []
    monkeypatch.setattr("studies.services.uploads.queue_ingest", queued.append)
    archive = make_zip(tmp_path / "x.zip", {"a.txt": b"hello"})
    with open(archive, "rb") as fp:
        response = api.post("/api/uploads/", {"file": fp}, format="multipart")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "url"} and body["status"] == "queued"
    assert queued == [body["id"]]
    upload = Upload.objects.get(pk=body["id"])
    assert upload.status == "queued" and upload.files_total == 0  # nothing was ingested in the request


def test_upload_of_a_non_zip_is_a_400_with_a_message(api, tmp_path):
    path = tmp_path / "scan.zip"
    path.write_bytes(b"%PDF-1.4 this is not a zip")
    with open(path, "rb") as fp:
        response = api.post("/api/uploads/", {"file": fp}, format="multipart")
    assert response.status_code == 400
    assert "not a ZIP" in response.json()["detail"]
    assert not Upload.objects.exists()


def test_upload_without_file_field_is_a_400(api):
    response = api.post("/api/uploads/", {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


def test_upload_over_the_size_limit_is_a_413(api, settings, tmp_path):
    settings.MAX_UPLOAD_BYTES = 10_000
    archive = make_zip(tmp_path / "big.zip", {"noise.bin": np.random.default_rng(1).bytes(50_000)})
    with open(archive, "rb") as fp:
        response = api.post("/api/uploads/", {"file": fp}, format="multipart")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert not Upload.objects.exists()


def test_upload_status_shape(api, small_study):
    response = api.get(f"/api/uploads/{small_study.pk}/")
    assert response.status_code == 200
    body = response.json()
    for key in (
        "id",
        "status",
        "progress",
        "stage",
        "error",
        "files_total",
        "files_dicom",
        "files_skipped",
        "skipped",
        "studies",
    ):
        assert key in body
    assert body["status"] == "done" and body["progress"] == 100 and body["files_dicom"] == 9
    assert body["studies"] == [small_study.studies.get().pk]


def test_study_list_and_detail(api, small_study):
    listing = api.get("/api/studies/").json()
    assert set(listing) >= {"count", "next", "previous", "results"} and listing["count"] == 1
    study = listing["results"][0]
    assert set(study) >= {
        "id",
        "study_instance_uid",
        "patient",
        "study_date",
        "description",
        "accession_number",
        "modalities",
    }
    assert set(study["patient"]) >= {"id", "patient_id", "name", "birth_date", "sex"}
    assert study["modalities"] == ["MR"]
    detail = api.get(f"/api/studies/{study['id']}/").json()
    assert len(detail["series"]) == 1 and "id" in detail["series"][0]


def test_series_detail_lists_planes_and_window(api, ct_volume):
    body = api.get(f"/api/series/{ct_volume.pk}/").json()
    assert body["is_volume"] is True
    assert set(body["planes"]) == {"axial", "coronal", "sagittal"}
    assert body["planes"]["axial"]["count"] == 12
    assert {"count", "width", "height"} <= set(body["planes"]["coronal"])
    assert body["window"] == {"center": -450.0, "width": 2000.0}
    for key in ("id", "series_instance_uid", "study", "modality", "description", "series_number", "num_instances"):
        assert key in body


def decode(response) -> np.ndarray:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_plane_images_are_pngs_of_the_planned_size(api, ct_volume):
    for plane, info in ct_volume.planes.items():
        response = get_image(api, f"/api/series/{ct_volume.pk}/planes/{plane}/{info['count'] - 1}.png")
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert decode(response).shape == (info["height"], info["width"])
        assert "private" in response["Cache-Control"]


def test_the_api_image_path_redirects_to_a_signed_url(api, ct_volume):
    response = api.get(f"/api/series/{ct_volume.pk}/planes/coronal/3.png?wc=-600&ww=1500")
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    assert location.startswith(f"/images/{ct_volume.pk}/{ct_volume.render_version}/coronal/")
    assert location.endswith("/3.png?wc=-600&ww=1500")


def test_window_parameters_change_the_pixels_and_are_cached_on_this_host(api, ct_volume, media_root, settings):
    url = f"/api/series/{ct_volume.pk}/planes/axial/5.png"
    default = decode(get_image(api, url))
    lung = decode(get_image(api, url + "?wc=-600&ww=1500"))
    bone = decode(get_image(api, url + "?wc=480&ww=2500"))
    assert not np.array_equal(default, lung) and not np.array_equal(lung, bone)
    cached = list((settings.SCRATCH_DIR / "cache" / "windows").rglob("*.png"))
    assert {path.parent.parent.name for path in cached} == {"m600_1500", "480_2500"}
    assert not list(media_root.rglob("*600_1500*")), "windowed images are not stored"


def test_bad_window_is_a_400(api, ct_volume):
    for query in ("?wc=abc&ww=10", "?wc=40&ww=0", "?wc=40&ww=-5", "?wc=nan&ww=5"):
        response = api.get(f"/api/series/{ct_volume.pk}/planes/axial/0.png{query}")
        assert response.status_code == 400, query
        assert response["Content-Type"].startswith("application/json")


def test_unknown_plane_or_index_is_a_404_with_json(api, ct_volume):
    assert api.get(f"/api/series/{ct_volume.pk}/planes/axial/12.png").status_code == 404
    response = api.get(f"/api/series/{ct_volume.pk}/planes/stack/0.png")
    assert response.status_code == 404 and "axial" in response.json()["detail"]


def test_thumbnail_and_etag_revalidation(api, ct_volume):
    response = get_image(api, f"/api/series/{ct_volume.pk}/thumbnail.png")
    assert response.status_code == 200 and max(decode(response).shape) <= 160
    etag = response["ETag"]
    again = get_image(api, f"/api/series/{ct_volume.pk}/thumbnail.png", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304


def test_another_users_ids_answer_404(ct_volume, other_user):
    stranger = api_client_for(other_user)
    upload = Upload.objects.get()
    for path in (
        f"/api/studies/{ct_volume.study_id}/",
        f"/api/series/{ct_volume.pk}/",
        f"/api/series/{ct_volume.pk}/planes/axial/0.png",
        f"/api/series/{ct_volume.pk}/thumbnail.png",
        f"/api/uploads/{upload.pk}/",
    ):
        assert stranger.get(path).status_code == 404, path
    assert stranger.get("/api/studies/").json()["count"] == 0


def test_unknown_api_path_is_json_404(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_healthz_reports_database_broker_and_storage(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok", "storage": "ok"}
