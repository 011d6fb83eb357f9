"""Who may see a study: owner, shared users and groups, staff; everyone else gets 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from studies import selectors
from studies.models import Study, StudyShare
from tests.conftest import api_client_for, ingest_zip, shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def study(user, tmp_path, eager_celery) -> Study:
    ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))
    return Study.objects.get(owner=user)


@pytest.fixture
def people(django_user_model):
    make = django_user_model.objects.create_user
    return {
        "shared": make("carol", password="x"),
        "member": make("dave", password="x"),
        "stranger": make("erin", password="x"),
        "staff": make("frank", password="x", is_staff=True),
    }


def urls(study: Study) -> list[str]:
    """Every kind of page, API answer, media file and DICOMweb answer about one study."""
    series = study.series.get()
    instance = series.instances.first()
    dw = f"/dicomweb/studies/{study.study_instance_uid}"
    return [
        f"/api/studies/{study.pk}/",
        f"/api/series/{series.pk}/",
        f"/api/series/{series.pk}/planes/stack/0.png",
        f"/api/series/{series.pk}/planes/stack/0.png?wc=500&ww=800",
        f"/api/series/{series.pk}/thumbnail.png",
        f"/api/instances/{instance.pk}/",
        f"/api/instances/{instance.pk}/file",
        f"/api/series/{series.pk}/archive.zip",
        f"/api/studies/{study.pk}/archive.zip",
        f"/api/patients/{study.patient_id}/",
        f"{dw}/metadata",
        f"{dw}/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}",
        f"{dw}/series/{series.series_instance_uid}/thumbnail",
    ]


def pages(study: Study) -> list[str]:
    series = study.series.get()
    return [f"/studies/{study.pk}/", f"/series/{series.pk}/", f"/series/{series.pk}/tags/?plane=stack&index=0"]


def test_access_matrix(study, user, people):
    from django.test import Client

    group = Group.objects.create(name="radiology")
    people["member"].groups.add(group)
    StudyShare.objects.create(study=study, user=people["shared"], created_by=user)
    StudyShare.objects.create(study=study, group=group, created_by=user)
    expected = {"owner": 200, "shared": 200, "member": 200, "staff": 200, "stranger": 404}
    for who, status in expected.items():
        account = user if who == "owner" else people[who]
        client = api_client_for(account)
        for url in urls(study):
            response = client.get(url, HTTP_ACCEPT="*/*")
            assert response.status_code == status, (who, url, response.status_code)
        assert client.get("/api/studies/").json()["count"] == (1 if status == 200 else 0), who
        browser = Client()
        browser.force_login(account)
        for url in pages(study):
            assert browser.get(url).status_code == status, (who, url)
    anonymous = APIClient()
    for url in urls(study):
        assert anonymous.get(url).status_code in (401, 403), url
    for url in pages(study):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_revoking_a_share_hides_the_study_again(study, user, people):
    share = StudyShare.objects.create(study=study, user=people["shared"], created_by=user)
    client = api_client_for(people["shared"])
    assert client.get(urls(study)[0]).status_code == 200
    share.delete()
    for url in urls(study):
        assert client.get(url).status_code == 404, url


def test_only_owner_and_staff_may_edit(study, user, people):
    StudyShare.objects.create(study=study, user=people["shared"], created_by=user)
    assert selectors.can_edit_study(user, study)
    assert selectors.can_edit_study(people["staff"], study)
    assert not selectors.can_edit_study(people["shared"], study)
    assert not selectors.can_edit_study(people["stranger"], study)


def test_inactive_users_see_nothing(study, user):
    user.is_active = False
    user.save()
    assert not selectors.studies_visible_to(user).exists()


def test_a_share_names_a_user_or_a_group_not_both(study, user, people):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        StudyShare.objects.create(study=study, user=people["shared"], group=Group.objects.create(name="g"))


def test_the_image_fast_path_check_agrees_with_the_selectors(study, user, people, tmp_path, django_user_model):
    """selectors.token_image_access states the visibility rules again in one SQL statement (for
    the hottest request): it must answer exactly what series_visible_to answers, for everyone."""
    from tokens.services import hash_key, token_create, token_revoke

    group = Group.objects.create(name="radiology")
    people["member"].groups.add(group)
    StudyShare.objects.create(study=study, user=people["shared"], created_by=user)
    StudyShare.objects.create(study=study, group=group, created_by=user)
    # a study of the stranger's own, shared with nobody, and a group share that goes elsewhere
    ingest_zip(people["stranger"], zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "b.zip"))
    theirs = Study.objects.get(owner=people["stranger"])
    other_group = Group.objects.create(name="cardiology")
    people["shared"].groups.add(other_group)
    StudyShare.objects.create(study=theirs, group=Group.objects.create(name="elsewhere"), created_by=people["stranger"])
    people["inactive"] = django_user_model.objects.create_user("gina", password="x", is_active=False)
    make = django_user_model.objects.create_user
    people["inactive_staff"] = make("hal", password="x", is_staff=True, is_active=False)
    series_ids = [*study.series.values_list("pk", flat=True), *theirs.series.values_list("pk", flat=True), 10**9]
    checked = 0
    for account in [user, *people.values()]:
        _, key = token_create(user=account, name="t")
        revoked, revoked_key = token_create(user=account, name="old")
        token_revoke(revoked)
        for pk in series_ids:
            expected = selectors.series_visible_to(account).filter(pk=pk).exists()
            access = selectors.token_image_access(hash_key(key), pk)
            assert (access is not None) == expected, (account.username, pk)
            if access is not None:
                assert access.user_id == account.pk and access.series_id == pk and access.planes
            assert selectors.token_image_access(hash_key(revoked_key), pk) is None
            checked += expected
    assert checked == 4 + 2  # ours: owner, shared user, group member, staff; theirs: the stranger, staff
    assert selectors.token_image_access(hash_key("no-such-key"), series_ids[0]) is None
