"""Who may see a study: owner, shared users and groups, staff; everyone else gets 404. Who may
change it: only its owner shares; deleting and re-running someone else's need a permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from studies import selectors
from studies.models import Study, StudyShare, Upload
from tests.conftest import api_client_for, ingest_zip, shared_path, zip_folder
from tests.factories import make_study

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


def test_inactive_users_see_nothing(study, user):
    user.is_active = False
    user.save()
    assert not selectors.studies_visible_to(user).exists()


def test_a_share_names_a_user_or_a_group_not_both(study, user, people):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        StudyShare.objects.create(study=study, user=people["shared"], group=Group.objects.create(name="g"))


# --- staff rights: staff read everything; only owners share; re-run and delete need a permission


@pytest.fixture
def alices(user):
    """A study of alice (rows only) and a finished upload of hers with nothing left to re-run."""
    study = make_study(user, 1, series_count=2)
    upload = Upload.objects.create(owner=user, original_name="a.zip", status=Upload.Status.DONE)
    return study, upload


def grant(user, *codenames):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="studies", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per object


def attempts(client, study, upload) -> dict:
    series = study.series.order_by("pk")
    return {
        "read": client.get(f"/api/studies/{study.pk}/").status_code,
        "share": client.post(f"/api/studies/{study.pk}/shares/", {"username": "erin"}, format="json").status_code,
        "shares": client.get(f"/api/studies/{study.pk}/shares/").status_code,
        "rerun": client.post(f"/api/uploads/{upload.pk}/rerun/").status_code,
        "delete series": client.delete(f"/api/series/{series[0].pk}/").status_code,
        "delete study": client.delete(f"/api/studies/{study.pk}/").status_code,
    }


def test_staff_read_everything_but_change_nothing_without_a_permission(alices, people):
    study, upload = alices
    assert attempts(api_client_for(people["staff"]), study, upload) == {
        "read": 200,
        "share": 403,
        "shares": 403,
        "rerun": 403,
        "delete series": 403,
        "delete study": 403,
    }
    assert not StudyShare.objects.exists() and Study.objects.filter(pk=study.pk, num_series=2).exists()
    staff = Client()
    staff.force_login(people["staff"])
    page = staff.get(f"/studies/{study.pk}/")
    assert page.status_code == 200 and b"Sharing" not in page.content
    assert staff.post(f"/studies/{study.pk}/shares/", {"kind": "user", "target": "erin"}).status_code == 403


def test_permissions_let_staff_re_run_and_delete_but_never_share(alices, people):
    study, upload = alices
    staff = grant(people["staff"], "rerun_upload", "delete_series", "delete_study")
    assert attempts(api_client_for(staff), study, upload) == {
        "read": 200,
        "share": 403,
        "shares": 403,
        "rerun": 409,  # allowed: nothing is left to re-run
        "delete series": 204,
        "delete study": 204,
    }


def test_superusers_have_every_permission_but_share_only_their_own(alices, django_user_model):
    study, upload = alices
    root = django_user_model.objects.create_superuser("root", password="x")
    result = attempts(api_client_for(root), study, upload)
    assert result == {"read": 200, "share": 403, "shares": 403, "rerun": 409, "delete series": 204, "delete study": 204}


def test_owners_share_re_run_and_delete_their_own(alices, user, people):
    study, upload = alices
    Group.objects.create(name="ward").user_set.add(user, people["stranger"])  # erin is a colleague
    result = attempts(api_client_for(user), study, upload)
    assert result == {"read": 200, "share": 201, "shares": 200, "rerun": 409, "delete series": 204, "delete study": 204}


def test_the_rules_live_in_the_selectors(alices, user, people):
    study, upload = alices
    staff, stranger = people["staff"], people["stranger"]
    assert selectors.can_share_study(user, study) and not selectors.can_share_study(staff, study)
    assert selectors.can_delete_study(user, study) and not selectors.can_delete_study(staff, study)
    assert selectors.can_rerun_upload(user, upload) and not selectors.can_rerun_upload(staff, upload)
    assert not selectors.can_delete_study(stranger, study) and not selectors.can_rerun_upload(stranger, upload)
    staff = grant(staff, "rerun_upload", "delete_study")
    assert selectors.can_delete_study(staff, study) and selectors.can_rerun_upload(staff, upload)
    assert not selectors.can_share_study(staff, study)


def test_the_share_form_suggests_only_names_the_owner_may_share_with(user, people, settings):
    study = make_study(user, 1)
    Group.objects.create(name="ward").user_set.add(user, people["member"])
    Group.objects.create(name="elsewhere").user_set.add(people["stranger"])
    client = Client()
    client.force_login(user)
    page = client.get(f"/studies/{study.pk}/").content.decode()
    suggested = page[page.index('<datalist id="share-names">') : page.index("</datalist>")]
    assert 'value="dave"' in suggested and 'value="ward"' in suggested
    assert "erin" not in suggested and "elsewhere" not in suggested and 'value="alice"' not in suggested
    assert "You can share with the members of your groups" in page
    settings.SHARE_WITH_ANY_USER = True
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'value="erin"' in page and "You can share with the members" not in page
