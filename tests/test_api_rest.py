"""The full REST API: resources, filters, nesting without N+1, downloads, deletes, re-run, tokens,
error statuses and access (anonymous, another user, a shared read-only user, a revoked token)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from studies import storage
from studies.models import Instance, Patient, Series, Study, StudyShare, Upload
from tests import dicomgen
from tests.conftest import PASSWORD, api_client_for, get_image, ingest_zip, make_zip, stored_bytes, stored_names

pytestmark = pytest.mark.django_db(transaction=True)
A = AuditEvent.Action


def write_study(folder, *, patient_id, modality, date, accession, description, series=1, slices=3):
    study_uid = dicomgen.generate_uid()
    paths = []
    for number in range(1, series + 1):
        voxels = np.random.default_rng(number).integers(0, 1000, (slices, 16, 16)).astype(np.int16)
        paths += dicomgen.write_volume(
            folder / f"{accession}-{number}",
            voxels,
            study_uid=study_uid,
            modality=modality,
            PatientID=patient_id,
            PatientName=f"Test^{patient_id}",
            StudyDate=date,
            AccessionNumber=accession,
            StudyDescription=description,
            SeriesNumber=number,
        )
    return paths


@pytest.fixture
def library(user, tmp_path, eager_celery):
    """Three studies of two patients: CT (2 series), MR, CT."""
    files = {}
    for spec in (
        dict(patient_id="P1", modality="CT", date="20230105", accession="ACC1", description="Chest CT", series=2),
        dict(patient_id="P1", modality="MR", date="20240210", accession="ACC2", description="Brain MR"),
        dict(patient_id="P2", modality="CT", date="20250301", accession="ACC3", description="Abdomen CT"),
    ):
        for path in write_study(tmp_path / "src", **spec):
            files[str(path.relative_to(tmp_path / "src"))] = path
    upload = ingest_zip(user, make_zip(tmp_path / "lib.zip", files))
    assert upload.status == Upload.Status.DONE, upload.error
    return upload


def ids(response) -> list:
    return [row["id"] for row in response.json()["results"]]


def study(accession: str) -> Study:
    return Study.objects.get(accession_number=accession)


# --- resources, filters, ordering ----------------------------------------------------------------


def test_patients_list_and_detail(api, library):
    listing = api.get("/api/patients/").json()
    assert listing["count"] == 2
    p1 = next(p for p in listing["results"] if p["patient_id"] == "P1")
    assert p1["num_studies"] == 2
    detail = api.get(f"/api/patients/{p1['id']}/").json()
    assert {s["accession_number"] for s in detail["studies"]} == {"ACC1", "ACC2"}
    assert api.get("/api/patients/", {"patient_id": "p2"}).json()["count"] == 1
    assert api.get("/api/patients/", {"search": "Test^P2"}).json()["count"] == 1


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"patient_id": "P1"}, {"ACC1", "ACC2"}),
        ({"modality": "CT"}, {"ACC1", "ACC3"}),
        ({"modality": "mr"}, {"ACC2"}),
        ({"study_date_after": "2024-01-01"}, {"ACC2", "ACC3"}),
        ({"study_date_after": "2024-01-01", "study_date_before": "2024-12-31"}, {"ACC2"}),
        ({"accession_number": "acc3"}, {"ACC3"}),
        ({"description": "brain"}, {"ACC2"}),
        ({"search": "Abdomen"}, {"ACC3"}),
        ({"search": "ACC1"}, {"ACC1"}),
    ],
)
def test_study_filters(api, library, params, expected):
    found = api.get("/api/studies/", params).json()["results"]
    assert {s["accession_number"] for s in found} == expected


def test_study_ordering_and_pagination(api, library):
    newest_first = [s["accession_number"] for s in api.get("/api/studies/").json()["results"]]
    assert newest_first == ["ACC3", "ACC2", "ACC1"]
    oldest_first = [
        s["accession_number"] for s in api.get("/api/studies/", {"ordering": "study_date"}).json()["results"]
    ]
    assert oldest_first == ["ACC1", "ACC2", "ACC3"]
    page = api.get("/api/studies/", {"page_size": 2, "page": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 1 and page["previous"]
    assert api.get("/api/studies/", {"page": 9}).status_code == 404


def test_invalid_filter_values_are_400_with_json(api, library):
    for params in ({"study_date_after": "yesterday"}, {"series": "abc"}, {"series": "99999999999999999999"}):
        url = "/api/instances/" if "series" in params else "/api/studies/"
        response = api.get(url, params)
        assert response.status_code == 400, params
        assert response["Content-Type"].startswith("application/json") and response.json()["detail"]


def test_series_and_instance_lists(api, library):
    chest = study("ACC1")
    series = api.get("/api/series/", {"study": chest.pk}).json()
    assert series["count"] == 2 and all(s["study"] == chest.pk for s in series["results"])
    assert api.get("/api/series/", {"modality": "MR"}).json()["count"] == 1
    one = Series.objects.filter(study=chest).first()
    instances = api.get("/api/instances/", {"series": one.pk}).json()
    assert instances["count"] == 3
    first = instances["results"][0]
    assert first["series"] == one.pk and first["study"] == chest.pk
    detail = api.get(f"/api/instances/{first['id']}/").json()
    assert detail["sop_instance_uid"] == first["sop_instance_uid"] and len(detail["image_position"]) == 3
    assert api.get("/api/instances/", {"study": chest.pk}).json()["count"] == 6


def test_details_nest_without_n_plus_1(api, library, django_assert_max_num_queries):
    chest = study("ACC1")
    series = chest.series.first()
    patient = chest.patient
    for url in ("/api/studies/", "/api/patients/", "/api/series/", "/api/instances/", "/api/uploads/"):
        with django_assert_max_num_queries(12):
            assert api.get(url).status_code == 200, url
    with django_assert_max_num_queries(10):
        body = api.get(f"/api/studies/{chest.pk}/").json()
    assert len(body["series"]) == 2 and body["patient"]["patient_id"] == "P1"
    with django_assert_max_num_queries(10):
        body = api.get(f"/api/series/{series.pk}/").json()
    assert len(body["instances"]) == 3
    with django_assert_max_num_queries(10):
        assert len(api.get(f"/api/patients/{patient.pk}/").json()["studies"]) == 2


# --- downloads ------------------------------------------------------------------------------------


def test_instance_file_is_byte_identical(api, library):
    instance = Instance.objects.first()
    response = api.get(f"/api/instances/{instance.pk}/file", HTTP_ACCEPT="application/dicom")
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    assert b"".join(response.streaming_content) == stored_bytes(instance.file)
    assert "attachment" in response["Content-Disposition"]
    assert AuditEvent.objects.filter(action=A.DOWNLOAD, event_code="110106", object_type="instance").exists()


@pytest.mark.parametrize("level", ["series", "studies"])
def test_archives_are_streamed_zips_of_the_originals(api, library, level):
    chest = study("ACC1")
    obj = chest if level == "studies" else chest.series.first()
    response = api.get(f"/api/{level}/{obj.pk}/archive.zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response.streaming, "the archive is streamed, not built in memory"
    data = b"".join(response.streaming_content)
    instances = Instance.objects.filter(series__study=chest) if level == "studies" else obj.instances.all()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert len(names) == instances.count()
        for instance in instances:
            name = f"{instance.series.series_instance_uid}/{instance.sop_instance_uid}.dcm"
            assert archive.read(name) == stored_bytes(instance.file)
    assert AuditEvent.objects.filter(action=A.DOWNLOAD, detail__format="zip").count() == 1


# --- deletes ----------------------------------------------------------------------------------------


def test_deleting_a_series_updates_the_study_and_removes_files(api, library):
    chest = study("ACC1")
    series, remaining = list(chest.series.order_by("series_number"))
    originals = storage.series_originals_prefix(series.pk)
    derived = storage.series_derived_prefix(series.pk)
    assert stored_names(originals) and stored_names(derived)
    response = api.delete(f"/api/series/{series.pk}/")
    assert response.status_code == 204
    assert not stored_names(originals) and not stored_names(derived)
    chest.refresh_from_db()
    assert chest.num_series == 1 and chest.num_instances == remaining.num_instances
    assert AuditEvent.objects.filter(action=A.SERIES_DELETE, object_id=str(series.pk)).exists()
    # the last series takes the study with it
    assert api.delete(f"/api/series/{remaining.pk}/").status_code == 204
    assert not Study.objects.filter(pk=chest.pk).exists()
    assert api.get(f"/api/studies/{chest.pk}/").status_code == 404


def test_deleting_a_study_removes_everything_and_orphan_patients(api, library):
    abdomen = study("ACC3")
    series_ids = list(abdomen.series.values_list("pk", flat=True))
    assert api.delete(f"/api/studies/{abdomen.pk}/").status_code == 204
    assert not Series.objects.filter(pk__in=series_ids).exists()
    assert not Patient.objects.filter(patient_id="P2").exists()
    assert not any(stored_names(storage.series_originals_prefix(pk)) for pk in series_ids)
    assert AuditEvent.objects.filter(action=A.STUDY_DELETE, event_code="110105").exists()
    assert api.delete(f"/api/studies/{abdomen.pk}/").status_code == 404


def test_shared_users_may_read_but_not_delete(library, other_user, user):
    brain = study("ACC2")
    StudyShare.objects.create(study=brain, user=other_user, created_by=user)
    reader = api_client_for(other_user)
    assert reader.get(f"/api/studies/{brain.pk}/").status_code == 200
    response = reader.delete(f"/api/studies/{brain.pk}/")
    assert response.status_code == 403 and "owner" in response.json()["detail"]
    response = reader.delete(f"/api/series/{brain.series.first().pk}/")
    assert response.status_code == 403
    # a study not shared with them is simply not there
    assert reader.delete(f"/api/studies/{study('ACC1').pk}/").status_code == 404
    assert Study.objects.count() == 3


# --- re-run ------------------------------------------------------------------------------------------


def test_rerun_rebuilds_a_done_upload_and_refuses_a_busy_one(api, library):
    response = api.post(f"/api/uploads/{library.pk}/rerun/")
    assert response.status_code == 202, response.content
    assert response.json()["id"] == library.pk
    Upload.objects.filter(pk=library.pk).update(status=Upload.Status.PROCESSING)
    busy = api.post(f"/api/uploads/{library.pk}/rerun/")
    assert busy.status_code == 409 and "processed" in busy.json()["detail"]


# --- tokens -----------------------------------------------------------------------------------------


def test_tokens_are_created_listed_and_revoked(user):
    session = APIClient()
    assert session.login(username="alice", password=PASSWORD)
    created = session.post("/api/tokens/", {"name": "nightly export"}, format="json")
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert body["name"] == "nightly export" and key.startswith(body["prefix"])
    listing = session.get("/api/tokens/").json()["results"]
    assert [t["name"] for t in listing] == ["nightly export"] and "key" not in listing[0]
    for scheme in ("Token", "Bearer"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
        assert client.get("/api/studies/").status_code == 200
    assert session.delete(f"/api/tokens/{body['id']}/").status_code == 204
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = revoked.get("/api/studies/")
    assert response.status_code == 401 and response["Content-Type"].startswith("application/json")
    assert session.get("/api/tokens/").json()["count"] == 0
    actions = list(
        AuditEvent.objects.filter(action__in=[A.TOKEN_CREATE, A.TOKEN_REVOKE]).values_list("action", flat=True)
    )
    assert actions == [A.TOKEN_REVOKE, A.TOKEN_CREATE]
    from tokens.models import ApiToken

    assert not ApiToken.objects.filter(key_hash=key).exists(), "keys are stored hashed"


def test_login_tokens_are_revocable_too(user):
    key = APIClient().post("/api/auth/token/", {"username": "alice", "password": PASSWORD}).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    (token,) = client.get("/api/tokens/").json()["results"]
    assert token["name"] == "login"
    assert client.delete(f"/api/tokens/{token['id']}/").status_code == 204
    assert client.get("/api/studies/").status_code == 401


def test_another_users_token_cannot_be_revoked(user, other_user):
    from tokens.services import token_create

    theirs, _ = token_create(user=other_user, name="theirs")
    assert api_client_for(user).delete(f"/api/tokens/{theirs.pk}/").status_code == 404


# --- errors and access ------------------------------------------------------------------------------


def test_error_statuses_are_json(api, library, tmp_path):
    chest = study("ACC1")
    cases = [
        (api.put(f"/api/studies/{chest.pk}/", {}, format="json"), 405),
        (api.patch(f"/api/series/{chest.series.first().pk}/", {}, format="json"), 405),
        (api.post("/api/uploads/", {"file": "x"}, format="json"), 415),
        (api.post("/api/tokens/", {}, format="json"), 400),
        (api.get("/api/studies/99999999999999999999/"), 404),
        (api.get("/api/instances/123456789/file"), 404),
        (APIClient().get("/api/patients/"), 401),
        (APIClient().get(f"/api/studies/{chest.pk}/archive.zip"), 401),
        (APIClient().post("/api/auth/token/", {"username": "alice", "password": "no"}), 400),
    ]
    for response, expected in cases:
        assert response.status_code == expected, (response.request["PATH_INFO"], response.status_code)
        assert response["Content-Type"].startswith("application/json"), response.request["PATH_INFO"]
        assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/patients/{patient}/",
        "/api/studies/{study}/",
        "/api/studies/{study}/archive.zip",
        "/api/series/{series}/",
        "/api/series/{series}/archive.zip",
        "/api/instances/{instance}/",
        "/api/instances/{instance}/file",
        "/api/uploads/{upload}/",
    ],
)
def test_another_user_gets_404_everywhere(library, other_user, path):
    chest = study("ACC1")
    values = {
        "patient": chest.patient_id,
        "study": chest.pk,
        "series": chest.series.first().pk,
        "instance": Instance.objects.filter(series__study=chest).first().pk,
        "upload": library.pk,
    }
    stranger = api_client_for(other_user)
    assert stranger.get(path.format(**values)).status_code == 404
    if path.endswith("}/") and ("studies" in path or "series" in path):
        assert stranger.delete(path.format(**values)).status_code == 404
    if "uploads" in path:
        assert stranger.post(path.format(**values) + "rerun/").status_code == 404


def test_schema_and_docs_are_served_without_a_cdn(client, user):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    spec = schema.json()
    assert spec["openapi"].startswith("3.")
    assert "/api/instances/{id}/file" in spec["paths"] and not any(p.startswith("/dicomweb") for p in spec["paths"])
    archive = spec["paths"]["/api/studies/{id}/archive.zip"]["get"]["responses"]
    assert "application/zip" in archive["200"]["content"] and "404" in archive
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "/static/drf_spectacular_sidecar/" in html
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


def test_searches_record_the_names_of_known_filters_only(api, library):
    response = api.get("/api/studies/", {"modality": "CT", "Doe^Jane": "1", "study_date_after": "2020-01-01"})
    assert response.status_code == 200
    event = AuditEvent.objects.filter(action=A.STUDY_SEARCH).latest("id")
    assert event.detail["filters"] == ["modality", "study_date_after"]
    # a parameter name the database could not even store (NUL) is ignored, not a server error
    assert api.get("/api/instances/?a%00b=1").status_code == 200
    assert AuditEvent.objects.filter(action=A.STUDY_LIST, detail__resource="instances").exists()


def test_one_window_parameter_takes_the_other_from_the_series(api, library):
    series = study("ACC2").series.get()
    url = f"/api/series/{series.pk}/planes/axial/1.png"
    alone = api.get(url, {"wc": 300})
    both = api.get(url, {"wc": 300, "ww": series.window_width})
    assert alone.status_code == both.status_code == 302
    assert alone["Location"] == both["Location"]
    assert alone["Location"].endswith(f"?wc=300&ww={round(series.window_width, 2):g}")
    assert get_image(api, alone["Location"]).content[:4] == b"\x89PNG"


@pytest.mark.parametrize("params", [{"status": ""}, {"study_date_after": ""}, {"series": ""}])
def test_filters_given_empty_are_400_unless_free_text(api, library, params):
    url = {"status": "/api/uploads/", "study_date_after": "/api/studies/", "series": "/api/instances/"}[
        next(iter(params))
    ]
    assert api.get(url, params).status_code == 400
    assert api.get("/api/studies/", {"description": ""}).status_code == 200


def test_token_endpoint_is_locked_out_after_repeated_failures(user, settings):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}).status_code == 400
    assert client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}).status_code == 429
    locked = client.post("/api/auth/token/", {"username": "alice", "password": PASSWORD})  # even the right one
    assert locked.status_code == 429 and locked["Content-Type"].startswith("application/json")
