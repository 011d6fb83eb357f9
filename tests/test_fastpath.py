"""The image fast path in front of Django answers exactly what the full stack would."""

from __future__ import annotations

import io

import pytest

from audit.models import AuditEvent
from dicomviewer.wsgi import application
from studies import storage
from studies.models import Series
from tests.conftest import ingest_zip, shared_path, zip_folder
from tokens.services import token_create, token_revoke

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def series(user, tmp_path, eager_celery) -> Series:
    ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))
    return Series.objects.get()


def call(path: str, key: str | None = None, query: str = "", **headers) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        **headers,
    }
    if key:
        environ["HTTP_AUTHORIZATION"] = f"Token {key}"
    answer = {}
    body = application(environ, lambda status, head: answer.update(status=status, headers=dict(head)))
    data = b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return answer["status"], answer["headers"], data


def url(series, index=0):
    return f"/api/series/{series.pk}/planes/stack/{index}.png"


def test_owner_gets_the_stored_png_with_the_full_stacks_headers(series, user):
    token, key = token_create(user=user, name="t")
    status, headers, data = call(url(series), key, f"v={series.render_version}")
    assert status == "200 OK"
    token.refresh_from_db()
    assert token.last_used_at is not None  # the tokens page shows when a token was last used
    assert data == storage.image_path(series.pk, series.render_version, "stack", 0).read_bytes()
    assert headers["Content-Type"] == "image/png" and headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "private, max-age=86400"
    assert "Allow" not in headers  # answered by the fast path (DRF adds Allow to every answer)
    etag = headers["ETag"]
    status, headers, data = call(url(series), key, HTTP_IF_NONE_MATCH=etag)
    assert status.startswith("304") and data == b"" and headers["Cache-Control"] == "private, no-cache"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, user=user).count() == 1


def test_others_and_bad_tokens_get_the_full_stacks_refusals(series, other_user, user):
    _, stranger = token_create(user=other_user, name="t")
    status, headers, _ = call(url(series), stranger)
    assert status.startswith("404") and headers["Content-Type"].startswith("application/json")
    token, key = token_create(user=user, name="gone")
    token_revoke(token)
    assert call(url(series), key)[0].startswith("401")
    assert call(url(series))[0].startswith(("401", "403"))
    assert call(url(series), "not-a-real-key-at-all")[0].startswith("401")


def test_windows_and_unrendered_images_go_through_django(series, user):
    _, key = token_create(user=user, name="t")
    default = call(url(series, 1), key)[2]
    windowed = call(url(series, 1), key, "wc=300&ww=200")
    assert windowed[0] == "200 OK" and windowed[2] != default and "Allow" in windowed[1]
    storage.image_path(series.pk, series.render_version, "stack", 2).unlink()
    status, _, data = call(url(series, 2), key)
    assert status == "200 OK" and data[:4] == b"\x89PNG"  # rendered on demand by the full stack
    assert call(url(series, 99), key)[0].startswith("404")


def test_a_new_database_connection_is_prepared_again(series, user):
    # on PostgreSQL the check is a prepared statement, which lives as long as its connection
    from django.db import connection

    _, key = token_create(user=user, name="t")
    assert call(url(series), key)[0] == "200 OK"
    connection.close()
    status, headers, _ = call(url(series), key)
    assert status == "200 OK" and "Allow" not in headers  # still the fast path
