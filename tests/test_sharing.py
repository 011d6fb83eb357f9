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
            # the API's image paths answer with a redirect to a signed URL
            expected_status = (
                302
                if status == 200 and url.startswith(f"/api/series/{study.series.get().pk}/") and (".png" in url)
                else status
            )
            assert response.status_code == expected_status, (who, url, response.status_code)
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
