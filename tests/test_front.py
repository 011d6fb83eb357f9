"""What every request goes through first (dicomviewer/front.py): client addresses from trusted
proxies only, forwarded headers only from them, a request id, /healthz for any Host."""

from __future__ import annotations

import io
import json
import logging
import sys
from urllib.parse import urlencode

import pytest
import requests

from audit.models import AuditEvent
from dicomviewer.front import RequestIdFilter, client_address, trusted_networks
from tests.conftest import PASSWORD
from tests.test_image_urls import volume  # noqa: F401  (a fixture)
from tokens.services import token_create

pytestmark = pytest.mark.django_db(transaction=True)
PROXIES = trusted_networks(("10.0.0.0/8", "203.0.113.10"))


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        ("198.51.100.7", "", ("198.51.100.7", False)),  # no proxy
        ("198.51.100.7", "1.2.3.4", ("198.51.100.7", False)),  # a client's own header: ignored
        ("10.0.0.5", "198.51.100.7", ("198.51.100.7", True)),  # nginx -> the client
        ("10.0.0.5", "6.6.6.6, 198.51.100.7", ("198.51.100.7", True)),  # a forged entry left of it
        ("10.0.0.5", "6.6.6.6, 198.51.100.7, 203.0.113.10", ("198.51.100.7", True)),  # outer proxy, nginx
        ("10.0.0.5", "[2001:db8::7]:4711, 203.0.113.10", ("2001:db8::7", True)),
        ("10.0.0.5", "10.0.0.9", ("10.0.0.9", True)),  # only proxies: the farthest one
        ("10.0.0.5", "not-an-address, 198.51.100.7", ("198.51.100.7", True)),
        ("10.0.0.5", "198.51.100.7, garbage", ("10.0.0.5", True)),  # garbage from a proxy's client
    ],
)
def test_the_client_address_is_the_one_the_nearest_trusted_proxy_saw(peer, forwarded, expected):
    assert client_address(peer, forwarded, PROXIES) == expected


def call(path: str, *, method="GET", peer="127.0.0.1", headers=None, data=None):
    """A request through the deployed WSGI application (dicomviewer.wsgi), as gunicorn makes it."""
    from dicomviewer.wsgi import application

    body = urlencode(data or {}).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": peer,
        "HTTP_HOST": "localhost",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
    }
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in (headers or {}).items()})
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(response_headers)

    content = b"".join(application(environ, start_response))
    return seen["status"], seen["headers"], content, environ


def test_rate_limits_and_the_audit_trail_key_on_the_real_client(user, settings):
    from django.core.cache import cache

    cache.clear()  # the budgets of an earlier run within the hour
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "token": "3/hour"}
    sign_in = {"username": "alice", "password": PASSWORD}
    for client in ("198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"):
        for _ in range(3):  # five clients behind one proxy: each has its own budget
            status, *_ = call("/api/auth/token/", method="POST", headers={"X-Forwarded-For": client}, data=sign_in)
            assert status == 200, client
    assert call("/api/auth/token/", method="POST", headers={"X-Forwarded-For": "198.51.100.1"}, data=sign_in)[0] == 429
    # a client that talks to the app itself cannot buy a new budget with a made-up header
    for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        assert (
            call(
                "/api/auth/token/", method="POST", peer="192.0.2.99", headers={"X-Forwarded-For": forged}, data=sign_in
            )[0]
            == 200
        )
    assert (
        call(
            "/api/auth/token/", method="POST", peer="192.0.2.99", headers={"X-Forwarded-For": "4.4.4.4"}, data=sign_in
        )[0]
        == 429
    )
    addresses = set(AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_CREATE).values_list("ip", flat=True))
    assert addresses == {"198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5", "192.0.2.99"}


def test_forwarded_headers_count_only_from_trusted_proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Request-ID": "abc123"}
    *_, environ = call("/healthz", peer="198.51.100.7", headers=forwarded)
    assert not any(name.startswith("HTTP_X_FORWARDED") for name in environ)
    assert environ["HTTP_X_REQUEST_ID"] != "abc123"  # a client's id is not taken either
    *_, environ = call("/healthz", peer="10.1.2.3", headers={**forwarded, "X-Forwarded-For": "198.51.100.7"})
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https" and environ["REMOTE_ADDR"] == "198.51.100.7"
    assert environ["HTTP_X_REQUEST_ID"] == "abc123"


def test_healthz_answers_for_any_host_with_each_check(settings):
    settings.ALLOWED_HOSTS = ["dicom.example.org"]
    status, headers, content, _ = call("/healthz", headers={"Host": "127.0.0.1:8000"})
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert json.loads(content) == {"status": "ok", "database": "ok", "broker": "ok", "storage": "ok"}
    assert call("/api/studies/", headers={"Host": "127.0.0.1:8000"})[0] == 400  # the rest checks the host


def test_every_log_line_of_a_request_carries_its_id(settings):
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    handler = Keep()
    handler.addFilter(RequestIdFilter())
    logging.getLogger("django").addHandler(handler)
    try:
        status, headers, *_ = call("/api/nothing-here/", headers={"Host": "localhost"})
    finally:
        logging.getLogger("django").removeHandler(handler)
    assert status == 404 and len(headers["X-Request-ID"]) == 32
    assert seen and all(record.request_id == headers["X-Request-ID"] for record in seen)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    RequestIdFilter().filter(outside)
    assert outside.request_id == "-"


def test_dicomweb_uris_take_the_forwarded_host_only_from_a_trusted_proxy(user, volume, settings):  # noqa: F811
    """Through the deployed WSGI stack (dicomviewer.wsgi): Front, then Django, then DICOMweb."""
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "viewer.example.org"]
    settings.DICOMWEB_BULKDATA_THRESHOLD = 16
    _token, key = token_create(user=user, name="viewer")
    study = volume.study.study_instance_uid
    forwarded = {
        "Authorization": f"Bearer {key}",
        "X-Forwarded-Host": "viewer.example.org",
        "X-Forwarded-Proto": "https",
    }

    def uris(peer: str, **more) -> tuple[str, str]:
        status, _headers, content, _ = call("/dicomweb/studies", peer=peer, headers={**forwarded, **more})
        assert status == 200, content
        retrieve = json.loads(content)[0]["00081190"]["Value"][0]
        status, _headers, content, _ = call(f"/dicomweb/studies/{study}/metadata", peer=peer, headers=forwarded)
        assert status == 200, content
        return retrieve, json.loads(content)[0]["7FE00010"]["BulkDataURI"]

    for uri in uris("198.51.100.7"):  # a client's own headers: the Host it sent, plain HTTP
        assert uri.startswith(f"http://localhost/dicomweb/studies/{study}"), uri
    for uri in uris("10.0.0.5", **{"X-Forwarded-For": "198.51.100.7"}):  # nginx's
        assert uri.startswith(f"https://viewer.example.org/dicomweb/studies/{study}"), uri


def test_a_local_client_cannot_forward_a_scheme_or_script_name_through_gunicorn(user, volume, tmp_path, media_root):  # noqa: F811
    """gunicorn itself trusts 127.0.0.1's X-Forwarded-Proto and SCRIPT_NAME unless told not to."""
    from tests.test_slow_clients import web

    _token, key = token_create(user=user, name="viewer")
    server = web(tmp_path, media_root)
    try:
        headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        for more in ({}, {"SCRIPT_NAME": "/evil"}):
            response = requests.get(f"{server.url}/dicomweb/studies", headers={**headers, **more}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()[0]["00081190"]["Value"][0].startswith(f"{server.url}/dicomweb/studies/")
    finally:
        server.stop()
