"""Credentials: a password change, a reset or a deactivation revokes every API token of that user
(one audited event per act); only the project's own hashed tokens exist."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from tests.conftest import PASSWORD
from tokens.services import token_create

A = AuditEvent.Action
pytestmark = pytest.mark.django_db(transaction=True)
NEW_PASSWORD = "another-long-password-77"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def works(key: str) -> bool:
    """Whether the key opens the REST API and DICOMweb (the same authentication)."""
    client = key_client(key)
    rest = client.get("/api/studies/").status_code
    dicomweb = client.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json").status_code
    assert (rest == 200) == (dicomweb in (200, 204)), (rest, dicomweb)
    return rest == 200


@pytest.fixture
def keys(user):
    """Two active tokens of alice."""
    keys = [token_create(user=user, name=name)[1] for name in ("script", "export")]
    assert all(works(key) for key in keys)
    return keys


def revocations(user):
    return list(AuditEvent.objects.filter(action=A.TOKEN_REVOKE, object_type="user", object_id=str(user.pk)))


def test_changing_the_password_on_the_page_revokes_every_token(user, keys):
    browser = Client(HTTP_USER_AGENT="pytest-browser")
    browser.force_login(user)
    response = browser.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    assert not any(works(key) for key in keys)
    [event] = revocations(user)
    assert (event.event_code, event.event_action) == ("110113", "D")
    assert event.detail == {"reason": "password_change", "tokens": 2}
    assert (event.ip, event.user_agent, event.username) == ("127.0.0.1", "pytest-browser", "alice")
    [changed] = AuditEvent.objects.filter(action=A.PASSWORD_CHANGE)
    assert (changed.object_id, changed.username, changed.ip) == (str(user.pk), "alice", "127.0.0.1")
    assert browser.get("/").status_code == 200  # this session goes on; a new token works
    assert works(token_create(user=user, name="new")[1])


def test_a_password_reset_through_the_mailed_link_revokes_every_token(user, keys):
    user.email = "alice@example.org"
    user.save()
    assert all(works(key) for key in keys)  # saving other fields changes nothing
    anonymous = Client()
    assert anonymous.post("/accounts/password_reset/", {"email": "alice@example.org"}).status_code == 302
    link = re.search(r"/accounts/reset/[^/\s]+/[^/\s]+/", mail.outbox[-1].body).group(0)
    form = anonymous.get(link, follow=True)
    response = anonymous.post(
        form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/reset/done/"
    assert not any(works(key) for key in keys)
    [event] = revocations(user)
    assert event.detail == {"reason": "password_reset", "tokens": 2}
    [reset] = AuditEvent.objects.filter(action=A.PASSWORD_RESET)
    assert (reset.object_id, reset.username, reset.ip) == (str(user.pk), "alice", "127.0.0.1")


def test_an_administrator_setting_the_password_revokes_every_token(admin_client, user, keys):
    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
        HTTP_USER_AGENT="admin-browser",
    )
    assert response.status_code == 302
    assert not any(works(key) for key in keys)
    [event] = revocations(user)
    assert event.detail == {"reason": "password_change", "tokens": 2}
    assert (event.username, event.user_agent) == ("admin", "admin-browser")  # who did it


def test_set_password_anywhere_revokes_every_token(user, keys):
    """The changepassword command, the shell and any other code go through the model."""
    user.set_password(NEW_PASSWORD)
    user.save()
    assert not any(works(key) for key in keys)
    [event] = revocations(user)
    assert event.detail == {"reason": "password_change", "tokens": 2} and event.ip is None


def test_deactivating_revokes_and_reactivating_brings_no_token_back(user, keys):
    user.is_active = False
    user.save()
    user.is_active = True
    user.save()
    assert not any(works(key) for key in keys)
    assert [e.detail for e in revocations(user)] == [{"reason": "deactivated", "tokens": 2}]


def test_signing_in_keeps_the_tokens(user, keys):
    browser = Client()
    assert browser.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    token = APIClient().post("/api/auth/token/", {"username": "alice", "password": PASSWORD}).json()["token"]
    assert all(works(key) for key in [*keys, token])
    assert not revocations(user)


def test_only_the_projects_own_tokens_exist(admin_client):
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS
    auth = settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    assert auth == [
        "tokens.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ]
    assert admin_client.get("/admin/authtoken/token/").status_code == 404
