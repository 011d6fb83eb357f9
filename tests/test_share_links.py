"""Share links: the owner makes an expiring, revocable link; whoever holds it sees that one study
read-only, without an account, and nothing else; expired and revoked links say so; de-identified
links show no patient identifiers; every act is audited with the link id."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pydicom
import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from studies.models import ShareLink, Study
from studies.services import links
from tests.conftest import api_client_for, get_image, ingest_zip, make_zip
from tests.factories import make_study

pytestmark = pytest.mark.django_db

NAME = "Doe1^Jane"


@pytest.fixture
def study(user) -> Study:
    return make_study(
        user, 1, series_count=2, name=NAME, accession_number="ACC777", referring_physician_name="Ref^Erence"
    )


@pytest.fixture
def ct(user, tmp_path, eager_celery) -> Study:
    """pydicom's CT_small, ingested and rendered (a real image, a real header)."""
    source = pydicom.data.get_testdata_file("CT_small.dcm", download=False)
    ingest_zip(user, make_zip(tmp_path / "ct.zip", {"ct.dcm": open(source, "rb").read()}))
    return Study.objects.get(owner=user)


def make_link(api, study, **body) -> dict:
    response = api.post(f"/api/studies/{study.pk}/links/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def opened(url: str) -> tuple[Client, object]:
    """An anonymous browser that opened the link: the client and the answer."""
    client = Client()
    return client, client.get(url)


def series_endpoints(link_id: int, series_id: int) -> list[str]:
    """The JSON endpoints the viewer uses through a link, for one series."""
    base = f"/shared/{link_id}/series/{series_id}"
    return [f"{base}/config/", f"{base}/status/", f"{base}/tags/?plane=stack&index=0"]


# --- the API --------------------------------------------------------------------------------------


def test_owner_makes_a_link_and_the_url_is_absolute_and_shown_once(api, study):
    made = make_link(api, study, label="for Dr Who", expires_in_hours=5)
    assert set(made) == {"id", "url", "expires", "deidentified", "label"}
    assert made["url"].startswith("http://testserver/s/") and made["label"] == "for Dr Who"
    link = ShareLink.objects.get(pk=made["id"])
    token = made["url"].rstrip("/").rsplit("/", 1)[1]
    assert len(token) >= 43 and token not in link.token_hash and link.token_hash == links.token_hash(token)
    assert abs((link.expires_at - timezone.now()) - timedelta(hours=5)) < timedelta(minutes=1)
    listed = api.get(f"/api/studies/{study.pk}/links/").json()
    assert [row["id"] for row in listed] == [made["id"]] and listed[0]["state"] == "active"
    assert token not in json.dumps(listed) and "url" not in listed[0]


def test_link_url_follows_the_trusted_proxy_scheme_and_host(api, study, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1/32"]
    settings.ALLOWED_HOSTS = ["viewer.example.org", "testserver"]
    response = api.post(
        f"/api/studies/{study.pk}/links/",
        {},
        format="json",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="viewer.example.org",
        REMOTE_ADDR="127.0.0.1",
    )
    assert response.status_code == 201
    assert response.json()["url"].startswith("https://viewer.example.org/s/")


def test_default_and_maximum_lifetime_come_from_settings(api, study, settings):
    settings.SHARE_LINK_DEFAULT_HOURS = 7
    settings.SHARE_LINK_MAX_DAYS = 2
    link = ShareLink.objects.get(pk=make_link(api, study)["id"])
    assert abs((link.expires_at - timezone.now()) - timedelta(hours=7)) < timedelta(minutes=1)
    for hours in (0, -3, 49, "soon"):
        answer = api.post(f"/api/studies/{study.pk}/links/", {"expires_in_hours": hours}, format="json")
        assert answer.status_code == 400, hours
    assert api.post(f"/api/studies/{study.pk}/links/", {"expires_in_hours": 48}, format="json").status_code == 201
    assert api.post(f"/api/studies/{study.pk}/links/", {"label": "x" * 101}, format="json").status_code == 400


def test_non_owner_cannot_make_list_or_revoke_links(api, study, other_user, django_user_model):
    made = make_link(api, study)
    from studies.models import StudyShare

    StudyShare.objects.create(study=study, user=other_user)
    stranger = django_user_model.objects.create_user("erin", password="x")
    for who, code in ((other_user, 403), (stranger, 404)):
        client = api_client_for(who)
        assert client.get(f"/api/studies/{study.pk}/links/").status_code == code
        assert client.post(f"/api/studies/{study.pk}/links/", {}, format="json").status_code == code
        assert client.delete(f"/api/studies/{study.pk}/links/{made['id']}/").status_code == code
        page = Client()
        page.force_login(who)
        assert page.post(f"/studies/{study.pk}/links/{made['id']}/revoke/").status_code == code
    assert ShareLink.objects.get(pk=made["id"]).revoked_at is None
    assert ShareLink.objects.count() == 1
    assert Client().get(f"/api/studies/{study.pk}/links/").status_code in (401, 403)


def test_links_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"get", "post"} <= set(schema["paths"]["/api/studies/{id}/links/"])
    assert "delete" in schema["paths"]["/api/studies/{id}/links/{link_id}/"]


# --- the link's pages -----------------------------------------------------------------------------


def test_anonymous_holder_sees_the_study_read_only(api, study):
    made = make_link(api, study)
    client, page = opened(made["url"])
    assert page.status_code == 200
    html = page.content.decode()
    series = list(study.series.all())
    for one in series:
        assert f"/shared/{made['id']}/series/{one.pk}/" in html
    for absent in ("/upload/", "Delete study", 'id="links"', "Sharing", f"/studies/{study.pk}/"):
        assert absent not in html, absent
    assert "Doe1" in html  # not de-identified
    viewer = client.get(f"/shared/{made['id']}/series/{series[0].pk}/")
    assert viewer.status_code == 200
    html = viewer.content.decode()
    assert 'id="measure-tools"' not in html and "annotations" not in html and "/upload/" not in html
    config = json.loads(re.search(r'id="viewer-config" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert config["readOnly"] is True and config["urls"]["api"] is None
    assert config["urls"]["status"] == f"/shared/{made['id']}/series/{series[0].pk}/status/"
    assert client.get(config["urls"]["status"]).json()["images"]["planes"]["stack"].startswith("/images/")
    other = config["urls"]["seriesConfig"].replace("{id}", str(series[1].pk))
    assert client.get(other).json()["series"]["id"] == series[1].pk
    assert client.get(f"/shared/{made['id']}/status/").status_code == 200


def test_an_unknown_token_is_a_404(api, study):
    make_link(api, study)
    for token in ("nope", "x" * 43, "y" * 300):
        assert Client().get(f"/s/{token}/").status_code == 404


def test_link_endpoints_need_the_link_opened_in_this_session(api, study):
    made = make_link(api, study)
    series = study.series.first()
    stranger = Client()  # knows the link id, not its secret
    pages = [f"/shared/{made['id']}/", f"/shared/{made['id']}/status/", f"/shared/{made['id']}/series/{series.pk}/"]
    for url in pages + series_endpoints(made["id"], series.pk):
        assert stranger.get(url).status_code == 404, url


def test_a_link_to_study_a_gives_nothing_of_study_b(api, user, other_user, study):
    made = make_link(api, study)
    mine = make_study(user, 2, name="Other^Patient")
    theirs = make_study(other_user, 3, name="Third^Party")
    client, _ = opened(made["url"])
    for other in (mine, theirs):
        series = other.series.get()
        for url in [f"/shared/{made['id']}/series/{series.pk}/", *series_endpoints(made["id"], series.pk)]:
            answer = client.get(url)
            assert answer.status_code == 404, url
            assert b"Other" not in answer.content and b"Third" not in answer.content
        # the signed-in pages and the API stay closed to an anonymous link holder
        assert client.get(f"/series/{series.pk}/config/").status_code == 302
        assert client.get(f"/api/series/{series.pk}/").status_code in (401, 403)
    assert client.get(f"/studies/{study.pk}/").status_code == 302
    assert client.get(f"/api/studies/{study.pk}/").status_code in (401, 403)


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_revoked_or_expired_link_says_so_and_its_endpoints_refuse(api, study, how):
    made = make_link(api, study)
    series = study.series.first()
    client, first = opened(made["url"])
    assert first.status_code == 200
    if how == "revoked":
        assert api.delete(f"/api/studies/{study.pk}/links/{made['id']}/").status_code == 204
        assert api.get(f"/api/studies/{study.pk}/links/").json()[0]["state"] == "revoked"
    else:
        ShareLink.objects.filter(pk=made["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = client.get(made["url"])
    assert again.status_code == 410
    assert ("revoked" if how == "revoked" else "expired") in again.content.decode()
    assert b"Doe1" not in again.content
    page = client.get(f"/shared/{made['id']}/series/{series.pk}/")
    assert page.status_code == 410 and b"Doe1" not in page.content
    for url in [f"/shared/{made['id']}/status/", *series_endpoints(made["id"], series.pk)]:
        answer = client.get(url)
        assert answer.status_code == 403, url
        assert how in answer.json()["detail"]
    assert Client().get(made["url"]).status_code == 410  # a fresh browser too


def test_revoking_twice_writes_one_event_and_the_page_form_revokes(api, user, study):
    made = make_link(api, study)
    page = Client()
    page.force_login(user)
    assert page.post(f"/studies/{study.pk}/links/{made['id']}/revoke/").status_code == 302
    assert api.delete(f"/api/studies/{study.pk}/links/{made['id']}/").status_code == 204
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LINK_REVOKE).count() == 1
    assert api.delete(f"/api/studies/{study.pk}/links/99999/").status_code == 404


def test_owner_study_page_lists_links_with_revoke_and_a_form(api, user, study):
    made = make_link(api, study, label="for the tumour board")
    page = Client()
    page.force_login(user)
    Client().get(made["url"])
    html = page.get(f"/studies/{study.pk}/").content.decode()
    assert "for the tumour board" in html and f"/studies/{study.pk}/links/{made['id']}/revoke/" in html
    assert 'id="link-form"' in html and "1×" in html
    token = made["url"].rstrip("/").rsplit("/", 1)[1]
    assert token not in html


# --- de-identified links --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the ingest runs on commit
def test_deidentified_link_pages_never_show_patient_identifiers(api, user, ct):
    patient = ct.patient
    Study.objects.filter(pk=ct.pk).update(accession_number="ACC777", referring_physician_name="Ref^Erence")
    assert patient.name and patient.patient_id
    made = make_link(api, ct, deidentified=True)
    client, page = opened(made["url"])
    series = ct.series.get()
    answers = [
        page,
        client.get(f"/shared/{made['id']}/series/{series.pk}/"),
        client.get(f"/shared/{made['id']}/series/{series.pk}/config/"),
        client.get(f"/shared/{made['id']}/series/{series.pk}/status/"),
        client.get(f"/shared/{made['id']}/status/"),
    ]
    secrets_ = [str(patient.name), str(patient.name).split("^")[0], patient.patient_id, "ACC777", "Erence"]
    secrets_ += [ct.study_instance_uid, series.series_instance_uid, series.frame_of_reference_uid]
    assert series.frame_of_reference_uid  # the check below means something
    if patient.birth_date:
        secrets_.append(patient.birth_date.isoformat())
    for answer in answers:
        assert answer.status_code == 200
        text = answer.content.decode()
        for secret in secrets_:
            assert secret not in text, (secret, answer.request["PATH_INFO"])
    assert 'id="tab-tags"' not in answers[1].content.decode()
    tags = client.get(f"/shared/{made['id']}/series/{series.pk}/tags/?plane=stack&index=0")
    assert tags.status_code == 403 and patient.patient_id not in tags.content.decode()


@pytest.mark.django_db(transaction=True)  # the ingest runs on commit
def test_plain_link_tag_browser_reads_its_own_series(api, ct):
    made = make_link(api, ct)
    client, _ = opened(made["url"])
    series = ct.series.get()
    plane = next(iter(series.planes))
    answer = client.get(f"/shared/{made['id']}/series/{series.pk}/tags/?plane={plane}&index=0")
    assert answer.status_code == 200 and answer.json()["tags"]


# --- images and the audit trail -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the ingest runs on commit
def test_images_through_a_link_are_short_lived_and_audited_with_the_link(api, ct, settings):
    settings.SHARE_LINK_IMAGE_URL_TTL = 60
    made = make_link(api, ct)
    client, _ = opened(made["url"])
    series = ct.series.get()
    status = client.get(f"/shared/{made['id']}/series/{series.pk}/status/").json()
    images = status["images"]
    assert images["expires"] - images["issued"] <= 60
    plane = next(iter(images["planes"]))
    image = get_image(client, images["planes"][plane].replace("{index}", "0"))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    events = AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, object_id=str(series.pk))
    assert [event.detail.get("link_id") for event in events] == [made["id"]]
    assert events.get().user is None


def test_every_act_is_audited_with_the_link_id(api, user, study):
    made = make_link(api, study)
    series = study.series.first()
    client, _ = opened(made["url"])
    client.get(f"/shared/{made['id']}/series/{series.pk}/")
    client.get(f"/shared/{made['id']}/series/{series.pk}/status/")  # images: not a page open
    client.get(f"/shared/{made['id']}/")  # back to the study page
    api.delete(f"/api/studies/{study.pk}/links/{made['id']}/")
    A = AuditEvent.Action
    rows = AuditEvent.objects.filter(action__in=[A.LINK_CREATE, A.LINK_USE, A.LINK_REVOKE]).order_by("id")
    assert [(row.action, row.detail["link_id"]) for row in rows] == [
        (A.LINK_CREATE, made["id"]),
        (A.LINK_USE, made["id"]),
        (A.LINK_USE, made["id"]),
        (A.LINK_USE, made["id"]),
        (A.LINK_REVOKE, made["id"]),
    ]
    assert rows[0].user == user and rows[1].user is None and rows[2].object_type == "series"
    assert all(NAME not in json.dumps(row.detail) for row in rows)
    link = ShareLink.objects.get(pk=made["id"])
    assert link.use_count == 3 and link.last_used_at is not None
