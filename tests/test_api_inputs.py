"""Inputs that used to answer 500 where a clear 4xx is due: an upload announced larger than the
limit, and paging numbers out of range."""

from __future__ import annotations

import pytest
from django.test import Client

from studies.models import Upload
from tests.conftest import PASSWORD
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def multipart(size: int) -> tuple[bytes, str]:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    body += b"PK\x03\x04" + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_upload_announced_larger_than_the_limit_is_a_413(api, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    body, content_type = multipart(1024 * 1024 + 20_000)  # more than the limit and the 1 MiB of slack
    response = api.generic("POST", "/api/uploads/", body, content_type=content_type)
    assert response.status_code == 413, response.content
    assert "limit" in response.json()["detail"]
    assert not Upload.objects.exists()


def test_the_upload_page_posting_to_the_api_gets_the_413_too(user, settings):
    """The upload page sends its file to /api/uploads/ with the session (static/js/upload.js)."""
    settings.MAX_UPLOAD_BYTES = 10_000
    client = Client(enforce_csrf_checks=False)
    assert client.login(username=user.username, password=PASSWORD)
    body, content_type = multipart(2 * 1024 * 1024)
    response = client.generic("POST", "/api/uploads/", body, content_type=content_type)
    assert response.status_code == 413, response.content


@pytest.mark.parametrize(
    "params",
    [
        {"page": ""},  # DRF alone answers page 1
        {"page_size": "²"},
        {"page_size": "9" * 5000},
    ],
)
def test_paging_numbers_out_of_range_are_a_4xx_with_a_detail(api, user, params):
    make_study(user, 1)
    response = api.get("/api/studies/", params)
    assert response.status_code in (400, 404), response.content
    assert response.json()


def test_a_search_of_thousands_of_words_is_a_400_not_a_query_the_database_refuses(api, user):
    make_study(user, 1, name="Doe^Jane")
    response = api.get("/api/studies/", {"search": " ".join(["a"] * 2000)})
    assert response.status_code == 400 and "search" in response.json()
    assert api.get("/api/studies/", {"search": "doe jane"}).json()["count"] == 1
