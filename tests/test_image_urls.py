"""Signed image URLs: handed out where visibility is decided, checked with the key alone."""

from __future__ import annotations

import io
import logging
import sys
import time

import cv2
import numpy as np
import pytest
from django.test import Client

from audit.models import AuditEvent
from studies import signing, storage
from studies.image_server import answer
from studies.models import Series, StudyShare
from studies.services.image_access import signing_key
from tests import dicomgen
from tests.conftest import api_client_for, get_image, ingest_zip, make_zip

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def volume(user, tmp_path, eager_celery) -> Series:
    """A generated 6-slice CT volume (no real data needed), ingested for ``user``."""
    voxels = (np.arange(6 * 24 * 20, dtype=np.int16).reshape(6, 24, 20) % 700) - 300
    paths = dicomgen.write_volume(
        tmp_path / "ct", voxels, Modality="CT", PatientName="Secret^Patient", WindowCenter=40, WindowWidth=400
    )
    ingest_zip(user, make_zip(tmp_path / "ct.zip", {p.name: p for p in paths}))
    series = Series.objects.get(study__owner=user)
    assert series.render_status == Series.Render.DONE, series.render_error
    return series


def png(response) -> np.ndarray:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def templates(api, series: Series) -> dict:
    return {name: info["url"] for name, info in api.get(f"/api/series/{series.pk}/").json()["planes"].items()}


def test_series_json_hands_out_one_template_per_plane_and_images_need_no_query(api, volume, django_assert_num_queries):
    urls = templates(api, volume)
    assert set(urls) == {"axial", "coronal", "sagittal"}
    anyone = Client()  # a signed URL is all it takes: no session, no token
    for plane, template in urls.items():
        info = volume.planes[plane]
        for index in (0, info["count"] - 1):
            with django_assert_num_queries(0):
                response = anyone.get(template.replace("{index}", str(index)))
            assert response.status_code == 200 and response["Content-Type"] == "image/png"
            assert png(response).shape == (info["height"], info["width"])
            assert response["Cache-Control"].startswith("private, max-age=")
    with django_assert_num_queries(0):
        windowed = anyone.get(urls["axial"].replace("{index}", "2") + "?wc=-600&ww=1500")
    assert windowed.status_code == 200
    assert not np.array_equal(png(windowed), png(anyone.get(urls["axial"].replace("{index}", "2"))))


def test_series_json_says_until_when_its_urls_are_valid(api, volume, settings):
    body = api.get(f"/api/series/{volume.pk}/").json()
    assert (
        time.time() + settings.IMAGE_URL_TTL / 2 - 2
        <= body["image_urls_expire"]
        <= time.time() + settings.IMAGE_URL_TTL
    )
    assert f"/{body['image_urls_expire']}/" in body["planes"]["axial"]["url"]
    assert body["thumbnail_url"].startswith(f"/images/{volume.pk}/{volume.render_version}/thumbnail/")
    assert png(Client().get(body["thumbnail_url"])).shape[0] <= 160


def test_tampered_foreign_and_expired_urls_are_403_without_a_query(api, volume, django_assert_num_queries, caplog):
    good = templates(api, volume)["axial"].replace("{index}", "1")
    parts = good.split("/")  # ['', 'images', series, version, plane, expires, signature, '1.png']
    flipped = parts[6][:-1] + ("A" if parts[6][-1] != "A" else "B")
    forged = {
        "signature": "/".join(parts[:6] + [flipped] + parts[7:]),
        "other series": "/".join(parts[:2] + [str(volume.pk + 1)] + parts[3:]),
        "other version": "/".join(parts[:3] + [str(volume.render_version + 1)] + parts[4:]),
        "other plane": "/".join(parts[:4] + ["coronal"] + parts[5:]),
        "longer life": "/".join(parts[:5] + [str(int(parts[5]) + 3600)] + parts[6:]),
    }
    forged["expired"] = signing.url(signing_key(), volume.pk, volume.render_version, "axial", 1_000_000_000, 1)
    caplog.set_level(logging.DEBUG)
    for what, url in forged.items():
        with django_assert_num_queries(0):
            response = Client().get(url)
        assert response.status_code == 403, what
        assert response.json()["detail"].startswith("This image link is not valid")
    assert "Secret" not in caplog.text


def test_expiry_is_bucketed_so_urls_repeat_and_never_outlive_the_ttl():
    for ttl in (2, 300, 3600):
        seen = set()
        for now in range(1_800_000_000, 1_800_000_000 + 3 * ttl):
            expires = signing.expiry(now, ttl)
            assert now + ttl / 2 - 1 <= expires <= now + ttl
            seen.add(expires)
        assert len(seen) <= 7  # one URL per half lifetime, not one per second
    assert signing.expiry(1_800_000_000, 300) == signing.expiry(1_800_000_149, 300)


def test_a_taken_back_share_stops_working_within_the_url_lifetime(volume, user, django_user_model):
    reader = django_user_model.objects.create_user("carol", password="x")
    share = StudyShare.objects.create(study=volume.study, user=reader, created_by=user)
    client = api_client_for(reader)
    url = templates(client, volume)["sagittal"].replace("{index}", "0")
    share.delete()
    assert client.get(f"/api/series/{volume.pk}/").status_code == 404  # no new URLs from now on
    expires = int(url.split("/")[5])
    assert answer(url, "", None, now=expires - 1).status == 200  # the one handed out lasts its lifetime...
    assert answer(url, "", None, now=expires + 1).status == 403  # ...and not a second more


def test_handing_out_urls_is_the_audited_image_access(api, volume):
    templates(api, volume)
    templates(api, volume)
    (event,) = AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW)
    assert event.object_id == str(volume.pk) and event.event_code == "110103"


def test_images_not_decoded_yet_answer_503_with_retry_after(api, volume):
    from studies.services import image_source

    url = templates(api, volume)["coronal"].replace("{index}", "3")
    storage.delete_prefix(storage.derived_prefix(volume.pk, volume.render_version) + "coronal/")
    volume_file = storage.local_path(storage.volume_name(volume.pk, volume.render_version))
    volume_file.rename(volume_file.with_suffix(".hidden"))
    image_source.clear()
    response = Client().get(url)
    assert response.status_code == 503 and response["Retry-After"] == "1"
    volume_file.with_suffix(".hidden").rename(volume_file)
    assert Client().get(url).status_code == 200  # rendered on request, from the stored volume


def test_behind_nginx_the_bytes_are_sent_by_nginx(api, volume, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    url = templates(api, volume)["axial"].replace("{index}", "4")
    response = Client().get(url)
    assert response.status_code == 200 and response.content == b""
    name = storage.image_name(volume.pk, volume.render_version, "axial", 4)
    assert response["X-Accel-Redirect"] == f"/protected-media/{name}"
    assert (storage.local_path(name).stat().st_mode & 0o777) == 0o600  # MEDIA_FILE_MODE: see test_file_modes


def wsgi_get(path: str, host: str = "localhost", https: bool = False, method: str = "GET"):
    from dicomviewer.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.split("?")[1] if "?" in path else "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if https else "80",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "https" if https else "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(application(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_wsgi_front_checks_the_host_and_sends_the_security_headers(api, volume, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    url = templates(api, volume)["axial"].replace("{index}", "0")
    status, headers, body = wsgi_get(url, https=True)
    assert status == 200 and body[:4] == b"\x89PNG" and int(headers["Content-Length"]) == len(body)
    assert headers["Strict-Transport-Security"] == "max-age=3600"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"] == "default-src 'none'"
    assert "Strict-Transport-Security" not in wsgi_get(url)[1]  # HSTS on HTTPS only
    assert wsgi_get(url, host="evil.example")[0] == 400  # ALLOWED_HOSTS, as Django checks it
    status, headers, body = wsgi_get(url, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert wsgi_get(url, method="POST")[0] == 405
    etag = wsgi_get(url)[1]["ETag"]
    assert etag and get_image(Client(), url, HTTP_IF_NONE_MATCH=etag).status_code == 304
