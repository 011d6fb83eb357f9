"""Opt-in CORS for /dicomweb/ (CORS_ORIGINS): an OHIF served from another origin can query and
read with a bearer token; nothing else on the site answers other origins, and no cookies ride along."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.conftest import REPO
from tokens.services import token_create

pytestmark = pytest.mark.django_db

OHIF = "https://ohif.example.org"
CORS = "corsheaders.middleware.CorsMiddleware"
PREFLIGHT = {
    "HTTP_ORIGIN": OHIF,
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "GET",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization",
}


def cors_headers(response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.items() if name.lower().startswith("access-control-")}


@pytest.fixture
def bearer(user) -> dict[str, str]:
    _token, key = token_create(user=user, name="ohif")
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def cors_on():
    """The settings CORS_ORIGINS=https://ohif.example.org gives (read from the environment at start)."""
    middleware = list(settings.MIDDLEWARE)
    assert CORS not in middleware, "off by default"
    middleware.insert(1, CORS)  # where the settings put it (test_cors_origins_from_the_environment)
    with override_settings(CORS_ALLOWED_ORIGINS=[OHIF], MIDDLEWARE=middleware):
        yield Client()


def test_without_cors_origins_no_answer_carries_cors_headers(user, bearer):
    client = Client()
    answers = [
        client.options("/dicomweb/studies", **PREFLIGHT),
        client.get("/dicomweb/studies", HTTP_ORIGIN=OHIF, **bearer),
        client.get("/dicomweb/studies", HTTP_ORIGIN=OHIF),
        client.get("/api/studies/", HTTP_ORIGIN=OHIF, **bearer),
        client.get("/accounts/login/", HTTP_ORIGIN=OHIF),
    ]
    for response in answers:
        assert cors_headers(response) == {}, (response.status_code, cors_headers(response))


def test_a_listed_origin_gets_preflight_and_reads_with_a_token(cors_on, bearer):
    preflight = cors_on.options("/dicomweb/studies", **PREFLIGHT)
    assert preflight.status_code == 200
    allowed = cors_headers(preflight)
    assert allowed["access-control-allow-origin"] == OHIF
    assert "authorization" in allowed["access-control-allow-headers"].split(", ")
    assert set(allowed["access-control-allow-methods"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert "access-control-allow-credentials" not in allowed

    response = cors_on.get("/dicomweb/studies", HTTP_ORIGIN=OHIF, **bearer)
    assert response.status_code == 200 and response.json() == []
    got = cors_headers(response)
    assert got["access-control-allow-origin"] == OHIF
    assert "access-control-allow-credentials" not in got
    assert "Content-Type" in got["access-control-expose-headers"]
    assert "origin" in response["Vary"].lower(), "caches keep one answer per origin"

    missing = cors_on.get("/dicomweb/studies/1.2.3.4", HTTP_ORIGIN=OHIF, **bearer)
    assert missing.status_code == 404 and cors_headers(missing)["access-control-allow-origin"] == OHIF


def test_a_401_is_readable_by_the_listed_origin(cors_on):
    response = cors_on.get("/dicomweb/studies", HTTP_ORIGIN=OHIF)
    assert response.status_code == 401 and "detail" in response.json()
    assert cors_headers(response)["access-control-allow-origin"] == OHIF


def test_other_origins_and_the_rest_of_the_site_get_nothing(cors_on, bearer):
    stranger = "https://evil.example.net"
    preflight = cors_on.options("/dicomweb/studies", **{**PREFLIGHT, "HTTP_ORIGIN": stranger})
    assert cors_headers(preflight) == {}
    assert cors_headers(cors_on.get("/dicomweb/studies", HTTP_ORIGIN=stranger, **bearer)) == {}
    assert cors_headers(cors_on.get("/dicomweb/studies", HTTP_ORIGIN=OHIF + ":8443", **bearer)) == {}
    for path in ("/api/studies/", "/api/auth/token/"):
        assert cors_headers(cors_on.options(path, **PREFLIGHT)) == {}, path
        assert cors_headers(cors_on.get(path, HTTP_ORIGIN=OHIF, **bearer)) == {}, path
    assert cors_headers(cors_on.get("/accounts/login/", HTTP_ORIGIN=OHIF)) == {}
    assert cors_headers(cors_on.get("/", HTTP_ORIGIN=OHIF)) == {}


def settings_from(tmp_path, **env) -> subprocess.CompletedProcess:
    """The CORS settings a fresh process reads from exactly this environment."""
    code = (
        "import os, json, django; os.environ['DJANGO_SETTINGS_MODULE']='dicomviewer.settings'; django.setup()\n"
        "from django.conf import settings as s\n"
        "print(json.dumps([s.CORS_ALLOWED_ORIGINS, s.MIDDLEWARE]))"
    )
    base = {"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 40}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True, text=True)


def test_cors_origins_from_the_environment(tmp_path):
    origins, middleware = json.loads(settings_from(tmp_path).stdout)
    assert origins == [] and CORS not in middleware
    listed = settings_from(tmp_path, CORS_ORIGINS=f"{OHIF}/, http://localhost:3000")
    origins, middleware = json.loads(listed.stdout)
    assert origins == [OHIF, "http://localhost:3000"]
    # before sessions, CSRF, authentication and the rate limits: preflights never reach them
    assert middleware[1] == CORS and middleware[0] == "dicomviewer.metrics.RequestMetricsMiddleware"

    star = settings_from(tmp_path, CORS_ORIGINS="*")
    assert star.returncode != 0 and "CORS_ORIGINS" in star.stderr.strip().splitlines()[-1]

    production = {
        "PRODUCTION": "1",
        "DATABASE_URL": "postgres://app:Zq8-not-a-placeholder@db.internal/dicomviewer",
        "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    }
    plain = settings_from(tmp_path, **production, CORS_ORIGINS="http://ohif.example.org")
    last = plain.stderr.strip().splitlines()[-1]
    assert plain.returncode != 0 and "CORS_ORIGINS lists origins that are not https://" in last
    fine = settings_from(tmp_path, **production, CORS_ORIGINS=f"{OHIF},http://127.0.0.1:3000")
    assert fine.returncode == 0, fine.stderr[-500:]


@pytest.mark.django_db(transaction=True)
def test_a_foreign_ohif_lists_and_reads_a_real_ct(small_ct, cors_on, bearer):
    """The calls OHIF v3 makes to open a study, from its own origin, each readable there."""
    study_uid = small_ct.study.study_instance_uid
    base = f"/dicomweb/studies/{study_uid}/series/{small_ct.series_instance_uid}"
    listed = cors_on.get("/dicomweb/studies", {"limit": "101", "offset": "0"}, HTTP_ORIGIN=OHIF, **bearer)
    assert listed.status_code == 200 and len(listed.json()) == 1
    metadata = cors_on.get(base + "/metadata", HTTP_ORIGIN=OHIF, HTTP_ACCEPT="application/dicom+json", **bearer)
    assert metadata.status_code == 200 and len(metadata.json()) == 8
    instance = metadata.json()[0]["00080018"]["Value"][0]
    frame = cors_on.get(
        f"{base}/instances/{instance}/frames/1",
        HTTP_ORIGIN=OHIF,
        HTTP_ACCEPT='multipart/related; type="application/octet-stream"; transfer-syntax=*',
        **bearer,
    )
    assert frame.status_code == 200 and frame["Content-Type"].startswith("multipart/related")
    for response in (listed, metadata, frame):
        headers = cors_headers(response)
        assert headers["access-control-allow-origin"] == OHIF and "access-control-allow-credentials" not in headers
