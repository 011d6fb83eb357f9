"""The audit trail: which actions write which events, and that nobody can change them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent
from tests.conftest import PASSWORD, api_client_for, get_image, ingest_zip, shared_path, zip_folder

A = AuditEvent.Action
pytestmark = pytest.mark.django_db(transaction=True)


def events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


def test_login_logout_and_failed_login_are_recorded(client, user):
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/logout/")
    recorded = [(e.action, e.event_code, e.outcome, e.username) for e in events()]
    assert recorded == [
        (A.LOGIN_FAILED, "110114", "failure", "alice"),
        (A.LOGIN, "110114", "success", "alice"),
        (A.LOGOUT, "110114", "success", "alice"),
    ]
    assert all(e.ip == "127.0.0.1" for e in events())


@pytest.fixture
def study_upload(user, tmp_path, eager_celery):
    return ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))


def test_ingest_end_is_recorded_as_an_import(study_upload):
    (event,) = events(action=A.INGEST_FINISHED)
    assert event.event_code == "110107" and event.object_type == "upload"
    assert event.object_id == str(study_upload.pk) and event.username == "alice"


def test_study_list_search_and_views_are_recorded_without_patient_names(user, study_upload):
    api = api_client_for(user)
    study = study_upload.studies.get()
    series = study.series.get()
    api.get("/api/studies/")
    api.get("/api/studies/", {"search": study.patient.name or "Doe"})
    api.get(f"/api/studies/{study.pk}/")
    api.get(f"/api/series/{series.pk}/")
    viewed = [e.action for e in events(user=user) if e.action != A.INGEST_FINISHED]
    # the series' JSON hands out its image URLs: that is image access, recorded there
    assert viewed == [A.STUDY_LIST, A.STUDY_SEARCH, A.STUDY_VIEW, A.SERIES_VIEW, A.IMAGES_VIEW]
    search = events(action=A.STUDY_SEARCH)[0]
    assert search.event_code == "110112" and search.detail["filters"] == ["search"]
    view = events(action=A.STUDY_VIEW)[0]
    assert view.event_code == "110103" and view.object_uid == study.study_instance_uid
    dump = " ".join(str(e.detail) + e.object_uid + e.object_id for e in events())
    if study.patient.name:
        assert study.patient.name not in dump


def test_image_access_is_recorded_once_per_series_when_urls_are_handed_out(user, study_upload):
    api = api_client_for(user)
    series = study_upload.series.get()
    for index in range(series.planes["stack"]["count"]):
        assert get_image(api, f"/api/series/{series.pk}/planes/stack/{index}.png").status_code == 200
    for _ in range(3):
        get_image(api, f"/api/series/{series.pk}/thumbnail.png")
    templates = api.get(f"/api/series/{series.pk}/").json()["planes"]["stack"]["url"]
    assert api.get(templates.replace("{index}", "0")).status_code == 200
    (event,) = events(action=A.IMAGES_VIEW)
    assert event.object_type == "series" and event.object_id == str(series.pk)


def test_pages_that_show_thumbnails_name_the_series_in_their_event(user, study_upload, client):
    client.force_login(user)
    study = study_upload.studies.get()
    series = study.series.get()
    assert client.get("/").status_code == 200
    assert client.get(f"/studies/{study.pk}/").status_code == 200
    assert events(action=A.STUDY_LIST)[0].detail["thumbnails"] == [series.pk]
    assert events(action=A.STUDY_VIEW)[0].detail["thumbnails"] == [series.pk]


def test_events_cannot_be_changed_or_deleted(user):
    event = AuditEvent.objects.create(
        user=user, username="alice", action=A.LOGIN, event_code="110114", event_action="E"
    )
    event.detail = {"tampered": True}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(username="mallory")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).username == "alice"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="database trigger exists on PostgreSQL only")
def test_database_refuses_raw_updates_and_deletes(user):
    event = AuditEvent.objects.create(
        user=user, username="alice", action=A.LOGIN, event_code="110114", event_action="E"
    )
    for sql in (
        "UPDATE audit_auditevent SET username = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk, username="alice").exists()


def test_prune_removes_only_events_past_retention(user):
    old = AuditEvent.objects.create(
        username="a", action=A.LOGIN, event_code="110114", event_action="E", time=timezone.now() - timedelta(days=400)
    )
    recent = AuditEvent.objects.create(username="a", action=A.LOGIN, event_code="110114", event_action="E")
    call_command("prune_audit", days=365)
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()


def test_deleting_a_user_keeps_their_events_and_username(client, user):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    user.delete()
    (event,) = events(action=A.LOGIN)
    assert event.username == "alice"


def test_admin_changes_name_the_client_address_and_user_agent(admin_client, user):
    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        {"username": "alice", "is_active": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"},
        REMOTE_ADDR="10.1.2.3",
        HTTP_USER_AGENT="admin-browser/1.0",
    )
    assert response.status_code == 302, response.content[:2000]
    [event] = events(action=A.ADMIN_CHANGE)
    assert (event.username, event.object_type, event.object_id) == ("admin", "user", str(user.pk))
    assert (event.ip, event.user_agent) == ("10.1.2.3", "admin-browser/1.0")


def test_a_password_change_is_recorded_once_without_the_password(client, user):
    client.force_login(user)
    new = "yet-another-password-99"
    client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
        HTTP_USER_AGENT="browser/2",
    )
    [event] = events(action=A.PASSWORD_CHANGE)
    assert (event.event_code, event.event_action, event.outcome) == ("110113", "U", "success")
    assert (event.username, event.object_type, event.object_id) == ("alice", "user", str(user.pk))
    assert (event.ip, event.user_agent) == ("127.0.0.1", "browser/2")
    assert new not in str(event.detail) and PASSWORD not in str(event.detail)
