"""DICOMweb in-process: QIDO matching, the exact OHIF v3 calls, WADO metadata/frames/rendered,
STOW answers and failure reasons, auth and visibility."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pydicom
import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from studies.models import Instance, Study, Upload
from tests.conftest import api_client_for, ingest_zip, make_zip, shared_path, stored_bytes
from tests.dicomgen import make_dataset
from tokens.services import token_create, token_revoke

pytestmark = pytest.mark.django_db(transaction=True)

MR = "mr-transfer-syntaxes-dcmqats"
OCTET_ANY = "multipart/related; type=application/octet-stream; transfer-syntax=*"


@pytest.fixture
def archive(user, tmp_path, eager_celery):
    """The nine-encodings MR slice (one series), a palette colour image and a JPEG colour US."""
    folder = shared_path(MR)
    files = {f"mr/{p.name}": p for p in sorted(folder.glob("*.dcm"))}
    files["pal/face.dcm"] = shared_path("secondary-capture", "OT-PAL-8-face.dcm")
    files["us/ybr.dcm"] = shared_path("us-color-and-cine", "examples_ybr_color.dcm")
    upload = ingest_zip(user, make_zip(tmp_path / "dw.zip", files))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    return upload


def mr_study() -> Study:
    return Study.objects.get(series__modality="MR")


def parts(response) -> list[tuple[dict, bytes]]:
    """The parts of a multipart/related answer: (headers, body)."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    content_type = response["Content-Type"]
    boundary = [p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")]
    assert content_type.startswith("multipart/related") and boundary, content_type
    out = []
    for chunk in body.split(b"--" + boundary[0].encode())[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.decode().split("\r\n") if line.strip())
        )
        out.append((headers, data[:-2]))
    return out


def value(obj: dict, tag: str):
    return obj.get(tag, {}).get("Value", [None])[0]


# --- QIDO ------------------------------------------------------------------------------------------


def test_ohif_study_list_call_exactly_as_sent(api, archive):
    url = "/dicomweb/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
    response = api.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom+json"
    studies = response.json()
    assert len(studies) == 3
    mr = next(s for s in studies if value(s, "00080061") == "MR")
    assert mr["0020000D"]["vr"] == "UI" and mr["00100010"]["vr"] == "PN"
    assert set(mr["00100010"]["Value"][0]) == {"Alphabetic"}
    assert value(mr, "00201206") == 1 and value(mr, "00201208") == 9
    assert value(mr, "00081190").endswith(f"/dicomweb/studies/{value(mr, '0020000D')}")
    assert "00081030" in mr and "00100030" in mr and "00080090" in mr


def test_ohif_study_by_uid_and_by_patient_id_with_percent_encoding(api, archive):
    study = mr_study()
    uid = study.study_instance_uid
    base = "/dicomweb/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
    by_uid = api.get(f"{base}&StudyInstanceUID={uid}").json()
    assert [value(s, "0020000D") for s in by_uid] == [uid]
    # a comma list, percent-encoded as OHIF sends it
    other = Study.objects.exclude(pk=study.pk).first().study_instance_uid
    both = api.get(f"{base}&StudyInstanceUID={uid}%2C{other}").json()
    assert {value(s, "0020000D") for s in both} == {uid, other}
    backslash = api.get(f"{base}&StudyInstanceUID={uid}%5C{other}").json()
    assert len(backslash) == 2
    patient_id = study.patient.patient_id
    encoded = "".join(f"%{b:02X}" for b in patient_id.encode())  # every character percent-encoded
    by_patient = api.get(f"{base}&00100020={encoded}").json()
    assert by_patient and all(value(s, "00100020") == patient_id for s in by_patient)


def test_study_matching(api, archive):
    study = mr_study()
    name = study.patient.name
    assert api.get("/dicomweb/studies", {"PatientName": name.lower()}).json()  # case-insensitive
    assert api.get("/dicomweb/studies", {"PatientName": name[:2] + "*"}).json()
    assert api.get("/dicomweb/studies", {"PatientName": "?" + name[1:]}).json()
    assert not api.get("/dicomweb/studies", {"PatientName": "nobody*"}).json()
    date = study.study_date.strftime("%Y%m%d")
    for query in (date, f"{date}-{date}", f"-{date}", f"{date}-", "19000101-"):
        found = api.get("/dicomweb/studies", {"StudyDate": query, "ModalitiesInStudy": "MR"}).json()
        assert [value(s, "0020000D") for s in found] == [study.study_instance_uid], query
    assert not api.get("/dicomweb/studies", {"StudyDate": "-19000101"}).json()
    assert api.get("/dicomweb/studies", {"ModalitiesInStudy": "CT,MR"}).json()
    assert not api.get("/dicomweb/studies", {"ModalitiesInStudy": "PT"}).json()
    limited = api.get("/dicomweb/studies", {"limit": 1, "offset": 1}).json()
    assert len(limited) == 1
    everything = api.get("/dicomweb/studies", {"includefield": "all"}).json()
    assert all("00100040" in s for s in everything)
    assert api.get("/dicomweb/studies", {"StudyDate": "2024"}).status_code == 400
    assert api.get("/dicomweb/studies", {"limit": "-1"}).status_code == 400
    assert api.get("/dicomweb/studies", {"includefield": "NotAKeyword"}).status_code == 400
    assert api.get("/dicomweb/studies?PatientName=a%00b").status_code == 400
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_SEARCH, detail__filters=["PatientName"])[:1]
    assert name not in json.dumps(event.detail)


def test_series_and_instance_queries_at_every_root(api, archive):
    study = mr_study()
    series = study.series.get()
    url = f"/dicomweb/studies/{study.study_instance_uid}/series?includefield=00080021,00080031,0008103E"
    found = api.get(url).json()
    assert [value(s, "0020000E") for s in found] == [series.series_instance_uid]
    assert value(found[0], "00080060") == "MR" and value(found[0], "00201209") == 9
    assert api.get("/dicomweb/series", {"Modality": "MR"}).json()[0]["0020000E"]["Value"] == [
        series.series_instance_uid
    ]
    assert (
        len(
            api.get(
                f"/dicomweb/studies/{study.study_instance_uid}/series/{series.series_instance_uid}/instances"
            ).json()
        )
        == 9
    )
    assert len(api.get(f"/dicomweb/studies/{study.study_instance_uid}/instances").json()) == 9
    one = Instance.objects.filter(series=series).first()
    hits = api.get("/dicomweb/instances", {"SOPInstanceUID": one.sop_instance_uid}).json()
    assert len(hits) == 1 and value(hits[0], "00083002") == one.transfer_syntax_uid
    assert value(hits[0], "0020000D") == study.study_instance_uid


# --- WADO: metadata, bulk data ---------------------------------------------------------------------


def test_ohif_series_metadata_with_bulk_data_uris(api, archive):
    study = mr_study()
    series = study.series.get()
    url = f"/dicomweb/studies/{study.study_instance_uid}/series/{series.series_instance_uid}/metadata"
    response = api.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom+json"
    body = response.json()
    assert len(body) == 9
    first = body[0]
    assert first["00100010"]["vr"] == "PN" and "Alphabetic" in first["00100010"]["Value"][0]
    assert first["7FE00010"]["BulkDataURI"].startswith("http://testserver/dicomweb/studies/")
    assert "InlineBinary" not in json.dumps(first["7FE00010"])
    assert value(first, "00083002")
    # the round trip through pydicom's own DICOM JSON reader
    ds = pydicom.Dataset.from_json(first, bulk_data_uri_handler=lambda *args: b"")
    assert ds.SeriesInstanceUID == series.series_instance_uid


def test_bulk_data_uris_follow_the_forwarded_host(api, archive, settings):
    """(From a trusted proxy: dicomviewer.front removes these headers from anyone else, and the
    host must be one of ALLOWED_HOSTS.)"""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "viewer.example.org"]
    study = mr_study()
    url = f"/dicomweb/studies/{study.study_instance_uid}/metadata"
    body = api.get(url, HTTP_X_FORWARDED_HOST="viewer.example.org", HTTP_X_FORWARDED_PROTO="https").json()
    assert body[0]["7FE00010"]["BulkDataURI"].startswith("https://viewer.example.org/dicomweb/studies/")


def test_relative_bulk_data_uris(api, archive, settings):
    settings.DICOMWEB_RELATIVE_URIS = True
    study = mr_study()
    body = api.get(f"/dicomweb/studies/{study.study_instance_uid}/metadata").json()
    assert body[0]["7FE00010"]["BulkDataURI"].startswith(f"studies/{study.study_instance_uid}/series/")


def test_palette_lookup_tables_are_bulk_data_that_can_be_fetched(api, archive):
    instance = Instance.objects.get(photometric_interpretation="PALETTE COLOR")
    series = instance.series
    base = f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
    (meta,) = api.get(f"{base}/instances/{instance.sop_instance_uid}/metadata").json()
    uri = meta["00281201"]["BulkDataURI"]
    path = uri.split("http://testserver", 1)[1]
    response = api.get(path, HTTP_ACCEPT="multipart/related; type=application/octet-stream")
    assert response.status_code == 200
    ((headers, data),) = parts(response)
    original = pydicom.dcmread(shared_path("secondary-capture", "OT-PAL-8-face.dcm"), force=True)
    assert data == bytes(original.RedPaletteColorLookupTableData)
    assert api.get(path + "0").status_code == 404


# --- WADO: instances and frames ----------------------------------------------------------------------


def test_instance_retrieve_is_byte_identical(api, archive):
    for instance in Instance.objects.all()[:4]:
        series = instance.series
        url = (
            f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
            f"/instances/{instance.sop_instance_uid}"
        )
        response = api.get(url, HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*')
        ((headers, data),) = parts(response)
        assert headers["content-type"].startswith("application/dicom")

        assert data == stored_bytes(instance.file)
    assert api.get(url, HTTP_ACCEPT="text/html").status_code == 406


def frame_url(instance, frames="1") -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/{frames}"
    )


def test_ohif_frames_call_answers_compressed_frames_with_their_syntax(api, archive):
    from studies import storage

    jpeg_ls = Instance.objects.filter(transfer_syntax_uid="1.2.840.10008.1.2.4.80").first()
    response = api.get(frame_url(jpeg_ls), HTTP_ACCEPT=OCTET_ANY)
    assert response.status_code == 200
    assert response["Content-Type"].startswith('multipart/related; type="application/octet-stream"')
    ((headers, data),) = parts(response)
    assert headers["content-type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.80"
    ds = pydicom.dcmread(storage.local_copy(jpeg_ls.file))
    assert data == pydicom.encaps.get_frame(ds.PixelData, 0, number_of_frames=1)


def test_frames_natively_are_pydicoms_pixels_little_endian(api, archive):
    from studies import storage

    for instance in Instance.objects.filter(series__modality="MR"):
        for accept in (
            OCTET_ANY,
            "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
        ):
            response = api.get(frame_url(instance), HTTP_ACCEPT=accept)
            assert response.status_code == 200, (instance.transfer_syntax_uid, response.content[:200])
            ((headers, data),) = parts(response)
            syntax = headers["content-type"].split("transfer-syntax=")[1]
            if syntax != "1.2.840.10008.1.2.1":
                assert accept == OCTET_ANY and syntax == instance.transfer_syntax_uid
                continue
            expected = pydicom.dcmread(storage.local_copy(instance.file)).pixel_array
            assert data == expected.astype(expected.dtype.newbyteorder("<")).tobytes(), instance.transfer_syntax_uid


def test_frame_errors(api, archive):
    instance = Instance.objects.filter(transfer_syntax_uid="1.2.840.10008.1.2.4.80").first()
    assert api.get(frame_url(instance, "2"), HTTP_ACCEPT=OCTET_ANY).status_code == 404
    assert api.get(frame_url(instance, "0"), HTTP_ACCEPT=OCTET_ANY).status_code == 400
    wrong = "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50"
    response = api.get(frame_url(instance), HTTP_ACCEPT=wrong)
    assert response.status_code == 406 and response["Content-Type"].startswith("application/json")
    assert api.get(frame_url(instance), HTTP_ACCEPT="image/png").status_code == 406


# --- WADO: rendered -----------------------------------------------------------------------------------


def decode_image(response) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)


def test_rendered_and_thumbnails_at_every_level(api, archive, user):
    study = mr_study()
    series = study.series.get()
    instance = series.instances.first()
    base = f"/dicomweb/studies/{study.study_instance_uid}"
    urls = [
        base,
        f"{base}/series/{series.series_instance_uid}",
        f"{base}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}",
        f"{base}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}/frames/1",
    ]
    for url in urls:
        jpeg = api.get(url + "/rendered", HTTP_ACCEPT="image/jpeg")
        assert jpeg.status_code == 200 and jpeg["Content-Type"] == "image/jpeg", url
        assert decode_image(jpeg).shape == (384, 384)
        png = api.get(url + "/rendered", HTTP_ACCEPT="image/png")
        assert png["Content-Type"] == "image/png" and decode_image(png).shape == (384, 384)
        thumb = api.get(url + "/thumbnail", HTTP_ACCEPT="image/png")
        assert max(decode_image(thumb).shape) <= 160
    rendered = urls[2] + "/rendered"
    dark = decode_image(api.get(rendered, {"window": "5000,100"}, HTTP_ACCEPT="image/png"))
    bright = decode_image(api.get(rendered, {"window": "0,100,linear"}, HTTP_ACCEPT="image/png"))
    assert dark.mean() < bright.mean()
    assert api.get(rendered, {"window": "1,2,sigmoidish"}).status_code == 400
    assert api.get(rendered, HTTP_ACCEPT="text/html").status_code == 406
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, object_id=str(series.pk)).exists()


def test_colour_images_render_in_colour(api, archive):
    instance = Instance.objects.get(transfer_syntax_uid="1.2.840.10008.1.2.4.50")
    url = frame_url(instance).rsplit("/frames", 1)[0] + "/rendered"
    image = decode_image(api.get(url, HTTP_ACCEPT="image/png"))
    assert image.ndim == 3 and image.shape[2] == 3


# --- STOW -----------------------------------------------------------------------------------------------


def multipart_body(files: list[bytes], boundary: str = "stow-boundary") -> tuple[bytes, str]:
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n" for data in files
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow(client, url: str, files: list[bytes]):
    body, content_type = multipart_body(files)
    return client.generic("POST", url, body, content_type=content_type, HTTP_ACCEPT="application/dicom+json")


def mr_files(count: int = 9) -> list[bytes]:
    return [p.read_bytes() for p in sorted(shared_path(MR).glob("*.dcm"))[:count]]


def test_stow_stores_and_answers_referenced_sops(user, eager_celery):
    api = api_client_for(user)
    files = mr_files(3)
    response = stow(api, "/dicomweb/studies", files)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    body = pydicom.Dataset.from_json(response.json())
    assert len(body.ReferencedSOPSequence) == 3 and "FailedSOPSequence" not in body or not body.FailedSOPSequence
    item = body.ReferencedSOPSequence[0]
    assert Instance.objects.filter(sop_instance_uid=item.ReferencedSOPInstanceUID, owner=user).exists()
    assert item.RetrieveURL.startswith("http://testserver/dicomweb/studies/")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.UPLOAD_RECEIVED, detail__dicomweb=True).exists()
    # the same again: already stored, which is success with a warning
    again = stow(api, "/dicomweb/studies", files)
    assert again.status_code == 202 and "already stored" in again["Warning"]
    assert len(pydicom.Dataset.from_json(again.json()).ReferencedSOPSequence) == 3


def test_stow_to_a_study_rejects_other_studies_parts(user, eager_celery):
    api = api_client_for(user)
    mr = mr_files(1)[0]
    other = io.BytesIO()  # an image of another study (GDCM's CT-MONO2-8-abdo has no valid UIDs: now a 0xC000)
    make_dataset(np.zeros((8, 8), dtype=np.uint16)).save_as(other, enforce_file_format=True)
    other = other.getvalue()
    study_uid = pydicom.dcmread(io.BytesIO(mr), stop_before_pixels=True).StudyInstanceUID
    response = stow(api, f"/dicomweb/studies/{study_uid}", [mr, other, b"not dicom at all"])
    assert response.status_code == 202
    body = pydicom.Dataset.from_json(response.json())
    assert len(body.ReferencedSOPSequence) == 1
    reasons = sorted(item.FailureReason for item in body.FailedSOPSequence)
    assert reasons == [0xA900, 0xC000]
    mismatch = stow(api, f"/dicomweb/studies/{study_uid}.9", [mr])
    assert mismatch.status_code == 409
    assert pydicom.Dataset.from_json(mismatch.json()).FailedSOPSequence[0].FailureReason == 0xA900


def test_stow_request_errors(user, eager_celery, settings):
    api = api_client_for(user)
    wrong_type = api.generic("POST", "/dicomweb/studies", b"{}", content_type="application/json")
    assert wrong_type.status_code == 415 and wrong_type["Content-Type"].startswith("application/json")
    no_boundary = api.generic(
        "POST", "/dicomweb/studies", b"x", content_type='multipart/related; type="application/dicom"'
    )
    assert no_boundary.status_code == 400
    body, content_type = multipart_body([])
    assert api.generic("POST", "/dicomweb/studies", body, content_type=content_type).status_code == 400
    settings.MAX_UPLOAD_BYTES = 1000
    assert stow(api, "/dicomweb/studies", mr_files(1)).status_code == 413
    assert not Upload.objects.exists()


def test_stow_non_image_objects_fail_with_sop_class_not_supported(user, eager_celery):
    sr = pydicom.data.get_testdata_file("test-SR.dcm", download=False)
    if sr is None:
        pytest.skip("pydicom's test SR is not installed")
    response = stow(api_client_for(user), "/dicomweb/studies", [open(sr, "rb").read()])
    assert response.status_code == 409
    assert pydicom.Dataset.from_json(response.json()).FailedSOPSequence[0].FailureReason == 0x0122


# --- auth and visibility -----------------------------------------------------------------------------


def test_bearer_tokens_work_and_revoked_ones_do_not(user, archive):
    token, key = token_create(user=user, name="viewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/dicomweb/studies").status_code == 200
    token_revoke(token)
    response = client.get("/dicomweb/studies")
    assert response.status_code == 401 and response["Content-Type"].startswith("application/json")


def test_anonymous_and_other_users(archive, other_user):
    assert APIClient().get("/dicomweb/studies").status_code == 401
    study = mr_study()
    series = study.series.get()
    instance = series.instances.first()
    stranger = api_client_for(other_user)
    assert stranger.get("/dicomweb/studies").json() == []
    base = f"/dicomweb/studies/{study.study_instance_uid}"
    for path in (
        base,
        base + "/metadata",
        base + "/series",
        f"{base}/series/{series.series_instance_uid}/metadata",
        f"{base}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}/frames/1",
        f"{base}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}/rendered",
    ):
        response = stranger.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/json")


def test_unknown_dicomweb_path_and_method_are_json(api):
    response = api.get("/dicomweb/nothing")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    response = api.delete("/dicomweb/studies")
    assert response.status_code == 405 and response["Content-Type"].startswith("application/json")


def chunked(data: bytes, size: int = 1000) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize("server", ["de-chunked by the server (gunicorn)", "passed through (runserver)"])
def test_chunked_request_bodies_are_read_whole(rf, server):
    from dicomweb import stow

    body = bytes(range(256)) * 40
    request = rf.post("/dicomweb/studies", data=b"", content_type="multipart/related")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    if server.startswith("de-chunked"):
        request.META["wsgi.input_terminated"] = True
        request.META["wsgi.input"] = io.BytesIO(body)
    else:
        request.META["wsgi.input"] = io.BytesIO(chunked(body) + b"next request on the connection")
    path = stow.body_to_file(request, limit=10**6)
    assert path.read_bytes() == body
    path.unlink()
    with pytest.raises(stow.TooLarge):
        request.META["wsgi.input"] = io.BytesIO(body if server.startswith("de-chunked") else chunked(body))
        stow.body_to_file(request, limit=1000)


def test_retrieves_are_audited_and_frame_fetches_aggregated(api, archive):
    instance = Instance.objects.filter(transfer_syntax_uid="1.2.840.10008.1.2.4.80").first()
    series = instance.series
    api.get(frame_url(instance).rsplit("/frames", 1)[0], HTTP_ACCEPT="multipart/related; type=application/dicom")
    for _ in range(3):
        api.get(frame_url(instance), HTTP_ACCEPT=OCTET_ANY)
    downloads = AuditEvent.objects.filter(action=AuditEvent.Action.DOWNLOAD, event_code="110106")
    assert downloads.filter(object_type="instance", object_id=str(instance.pk)).count() == 1
    assert downloads.filter(object_type="series", object_id=str(series.pk), detail__what="frames").count() == 1
