"""Owners share studies (API and page); rate limits on sign-in, tokens and uploads; sign-up."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from audit.models import AuditEvent
from studies.models import Study, StudyShare
from tests.conftest import PASSWORD, api_client_for, ingest_zip, make_zip, shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def study(user, tmp_path, eager_celery) -> Study:
    ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))
    return Study.objects.get(owner=user)


@pytest.fixture
def colleagues(user, other_user):
    """alice and bob work in one group: each may share with the other."""
    Group.objects.create(name="ward").user_set.add(user, other_user)


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


def test_owner_shares_and_takes_back_through_the_api(study, user, other_user, colleagues):
    owner, friend = api_client_for(user), api_client_for(other_user)
    assert friend.get(f"/api/studies/{study.pk}/").status_code == 404
    created = owner.post(f"/api/studies/{study.pk}/shares/", {"username": "bob"}, format="json")
    assert created.status_code == 201 and created.json()["username"] == "bob"
    assert friend.get(f"/api/studies/{study.pk}/").status_code == 200
    # read-only: the friend may neither delete nor re-share
    assert friend.delete(f"/api/studies/{study.pk}/").status_code == 403
    assert friend.post(f"/api/studies/{study.pk}/shares/", {"username": "alice"}, format="json").status_code == 403
    listing = owner.get(f"/api/studies/{study.pk}/shares/").json()
    assert [s["username"] for s in listing] == ["bob"]
    assert owner.delete(f"/api/studies/{study.pk}/shares/{listing[0]['id']}/").status_code == 204
    assert friend.get(f"/api/studies/{study.pk}/").status_code == 404
    actions = list(AuditEvent.objects.filter(object_type="study").values_list("action", flat=True))
    assert AuditEvent.Action.SHARE_ADD in actions and AuditEvent.Action.SHARE_REMOVE in actions


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"username": "nobody"}, 404, "no active user"),
        ({"group": "nogroup"}, 404, "no group"),
        ({}, 400, "one user or one group"),
        ({"username": "bob", "group": "radiology"}, 400, "one user or one group"),
        ({"username": "alice"}, 409, "owner already sees"),
    ],
)
def test_bad_shares_are_refused_with_a_reason(study, user, other_user, colleagues, body, status, message):
    response = api_client_for(user).post(f"/api/studies/{study.pk}/shares/", body, format="json")
    assert response.status_code == status and message in response.json()["detail"]


def test_sharing_twice_is_refused(study, user, other_user, colleagues):
    owner = api_client_for(user)
    assert owner.post(f"/api/studies/{study.pk}/shares/", {"username": "bob"}, format="json").status_code == 201
    again = owner.post(f"/api/studies/{study.pk}/shares/", {"username": "bob"}, format="json")
    assert again.status_code == 409 and "already shared" in again.json()["detail"]


def test_strangers_cannot_learn_about_shares(study, other_user):
    assert api_client_for(other_user).get(f"/api/studies/{study.pk}/shares/").status_code == 404


def test_sharing_does_not_tell_which_usernames_exist(study, user, other_user, django_user_model, settings):
    """bob has an account but shares no group with alice: she may not name him, and the answer is
    the one an unknown name gets. Members of her groups she may name; groups only her own."""
    owner = api_client_for(user)
    Group.objects.create(name="pathology")

    def answer(**body):
        response = owner.post(f"/api/studies/{study.pk}/shares/", body, format="json")
        return response.status_code, response.json()["detail"].replace("bob", "X").replace("nobody", "X")

    assert (
        answer(username="bob") == answer(username="nobody") == (404, "There is no active user 'X' you can share with.")
    )
    assert answer(group="pathology")[0] == 404 and "you can share with" in answer(group="pathology")[1]
    assert not StudyShare.objects.exists()
    carol = django_user_model.objects.create_user("carol", password=PASSWORD)
    Group.objects.create(name="ward").user_set.add(user, carol)
    assert owner.post(f"/api/studies/{study.pk}/shares/", {"username": "carol"}, format="json").status_code == 201
    assert owner.post(f"/api/studies/{study.pk}/shares/", {"group": "ward"}, format="json").status_code == 201
    settings.SHARE_WITH_ANY_USER = True
    assert owner.post(f"/api/studies/{study.pk}/shares/", {"username": "bob"}, format="json").status_code == 201


def test_owner_shares_with_a_group_on_the_study_page(study, user, django_user_model):
    member = django_user_model.objects.create_user("carol", password=PASSWORD)
    Group.objects.create(name="radiology").user_set.add(member, user)
    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/studies/{study.pk}/")
    assert b"Sharing" in page.content
    response = owner.post(f"/studies/{study.pk}/shares/", {"kind": "group", "target": "radiology"}, follow=True)
    assert b"Shared (read-only) with group radiology" in response.content
    reader = Client()
    reader.force_login(member)
    seen = reader.get(f"/studies/{study.pk}/")
    assert seen.status_code == 200 and b"Sharing" not in seen.content  # readers do not manage shares
    share = StudyShare.objects.get()
    assert reader.post(f"/studies/{study.pk}/shares/{share.pk}/remove/").status_code == 403
    owner.post(f"/studies/{study.pk}/shares/{share.pk}/remove/")
    assert reader.get(f"/studies/{study.pk}/").status_code == 404


def test_token_creation_is_rate_limited(user, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "token": "2/day"}
    api = api_client_for(user)
    assert [api.post("/api/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(3)] == [201, 201, 429]
    limited = api.post("/api/tokens/", {"name": "t4"}, format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["detail"]
    assert api.get("/api/tokens/").status_code == 200  # reads are never limited


def test_uploads_are_rate_limited_per_user(user, other_user, settings, tmp_path, monkeypatch):
    monkeypatch.setattr("studies.services.uploads.queue_ingest", lambda upload_id: None)
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "upload": "1/day"}
    archive = make_zip(tmp_path / "a.zip", {"a.txt": b"x"})

    def post(client):
        with open(archive, "rb") as fp:
            return client.post("/api/uploads/", {"file": fp}, format="multipart").status_code

    mine = api_client_for(user)
    assert [post(mine), post(mine)] == [202, 429]
    assert post(api_client_for(other_user)) == 202


def test_sign_in_posts_are_rate_limited_per_address(user, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": "3/day"}
    browser = Client()
    codes = [browser.post("/accounts/login/", {"username": f"x{i}", "password": "y"}).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    assert (
        Client(REMOTE_ADDR="10.0.0.9").post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )


def test_admin_sign_in_posts_share_the_per_address_limit(user, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": "3/day"}
    sprayer = Client()
    codes = [sprayer.post("/admin/login/", {"username": f"u{i}", "password": "Winter26"}).status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = sprayer.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert b"Too many sign-in attempts from your address" in limited.content
    # one budget for both sign-in forms
    assert sprayer.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 429


def test_sign_in_limits_hold_under_a_url_prefix(user, settings):
    """Behind a proxy that mounts the site under a prefix (SCRIPT_NAME), request.path carries it:
    the limits go by view, not by path."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login": "2/day"}
    client = Client(SCRIPT_NAME="/dicomviewer")
    codes = [client.post("/admin/login/", {"username": f"u{i}", "password": "x"}).status_code for i in range(3)]
    assert codes == [200, 200, 429]


def test_password_reset_posts_are_limited_per_address_and_per_account(user, settings):
    from django.core import mail

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "password_reset": "3/day", "password_reset_account": "2/day"}
    user.email = "alice@example.org"
    user.save()
    one = Client()
    codes = [one.post("/accounts/password_reset/", {"email": f"x{i}@example.org"}).status_code for i in range(4)]
    assert codes == [302, 302, 302, 429]
    limited = one.post("/accounts/password_reset/", {"email": "alice@example.org"})
    assert limited.status_code == 429 and b"Too many password reset requests from your address" in limited.content
    # many addresses, one person: at most two mails to alice
    codes = [
        Client(REMOTE_ADDR=f"10.0.1.{i}").post("/accounts/password_reset/", {"email": " Alice@Example.org"}).status_code
        for i in range(4)
    ]
    assert codes == [302, 302, 429, 429]
    assert len([m for m in mail.outbox if "alice@example.org" in m.to]) == 2
    limited = Client(REMOTE_ADDR="10.0.2.1").post("/accounts/password_reset/", {"email": "ALICE@example.org"})
    assert b"Too many password reset requests for this account" in limited.content
    # other people are not held up by it
    other = Client(REMOTE_ADDR="10.0.2.2").post("/accounts/password_reset/", {"email": "bob@example.org"})
    assert other.status_code == 302


def test_sign_up_is_off_by_default(client):
    assert client.get("/accounts/signup/").status_code == 404
    assert b"Create an account" not in client.get("/accounts/login/").content


def test_sign_up_when_allowed_creates_and_signs_in(client, settings, django_user_model):
    settings.ALLOW_SIGNUP = True
    assert b"Create an account" in client.get("/accounts/login/").content
    response = client.post(
        "/accounts/signup/", {"username": "newbie", "password1": "a-long-pass-9876", "password2": "a-long-pass-9876"}
    )
    assert response.status_code == 302
    assert django_user_model.objects.filter(username="newbie", is_staff=False).exists()
    assert client.get("/").status_code == 200
