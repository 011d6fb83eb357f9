"""The pages: login everywhere, 404 for other users' data, the study list, audit events."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, reverse

from audit.models import AuditEvent
from studies.models import Series, Study, Upload
from tests.conftest import PASSWORD
from tests.factories import make_study
from viewer import urls as viewer_urls

A = AuditEvent.Action
pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client


def page_urls(study: Study) -> dict[str, str]:
    series = study.series.first()
    return {
        "home": reverse("viewer:home"),
        "upload": reverse("viewer:upload"),
        "study": reverse("viewer:study", args=[study.pk]),
        "study-status": reverse("viewer:study-status", args=[study.pk]),
        "series": reverse("viewer:series", args=[series.pk]),
        "series-status": reverse("viewer:series-status", args=[series.pk]),
        "series-config": reverse("viewer:series-config", args=[series.pk]),
        "image-tags": reverse("viewer:image-tags", args=[series.pk]) + "?plane=stack&index=0",
        "study-share-add": reverse("viewer:study-share-add", args=[study.pk]),
        "study-share-remove": reverse("viewer:study-share-remove", args=[study.pk, 1]),
        "study-delete": reverse("viewer:study-delete", args=[study.pk]),
        "study-anonymise": reverse("viewer:study-anonymise", args=[study.pk]),
        "study-link-revoke": reverse("viewer:study-link-revoke", args=[study.pk, 1]),
    }


# a share link's pages need no account: tests/test_share_links.py checks who may open them
LINK_PAGES = {"link", "link-study", "link-study-status", "link-series", "link-series-config", "link-series-status"}
LINK_PAGES |= {"link-image-tags"}


def test_every_page_requires_login(client, user):
    study = make_study(user, 1)
    urls = page_urls(study)
    names = {pattern.name for pattern in viewer_urls.urlpatterns if isinstance(pattern, URLPattern)}
    assert names - LINK_PAGES == set(urls), "every page of viewer/urls.py is checked here"
    for name, url in urls.items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login") + "?next="), name
    assert client.get(reverse("password_change")).status_code == 302


def test_another_users_study_and_series_answer_404(client, user, other_user):
    theirs = make_study(other_user, 1)
    client.force_login(user)
    for name, url in page_urls(theirs).items():
        if name in ("home", "upload"):
            continue
        fetch = (
            client.post
            if name.startswith(("study-share", "study-delete", "study-anonymise", "study-link"))
            else client.get
        )  # POSTs only
        assert fetch(url, {"kind": "user", "target": "alice"}).status_code == 404, name
    assert theirs.patient.name not in client.get(reverse("viewer:home")).content.decode()


def test_study_list_query_count_does_not_grow_with_page_size(alice, user, django_assert_max_num_queries):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = alice.get(reverse("viewer:home"), {"per": 100})
        assert response.status_code == 200
        return len(captured), len(response.context["page"].object_list)

    make_study(user, 0)
    few, shown = queries_for_page()
    assert shown == 1
    for number in range(1, 80):
        make_study(user, number, series_count=2)
    many, shown = queries_for_page()
    assert shown == 80
    assert many == few
    with django_assert_max_num_queries(8):
        alice.get(reverse("viewer:home"), {"per": 100})


def test_each_row_shows_the_thumbnail_of_its_largest_series(alice, user):
    study = make_study(user, 1, series_count=3)
    largest = study.series.order_by("-num_frames").first()
    html = alice.get(reverse("viewer:home")).content.decode()
    assert f'src="/images/{largest.pk}/{largest.render_version}/thumbnail/' in html
    others = study.series.exclude(pk=largest.pk)
    assert not any(f"/images/{other.pk}/" in html for other in others)


def search(client, **filters):
    response = client.post(reverse("viewer:home"), filters)
    assert response.status_code == 302
    return client.get(response["Location"])


def shown_ids(response) -> list[int]:
    return [study.pk for study in response.context["page"].object_list]


def test_search_matches_every_word_in_name_id_accession_or_description(alice, user):
    first = make_study(user, 1, name="Curie^Marie", accession_number="ACC-77", description="CT THORAX")
    second = make_study(user, 2, name="Pasteur^Louis", patient_id="XR-9", description="Abdomen")
    assert shown_ids(search(alice, search="marie curie")) == [first.pk]
    assert shown_ids(search(alice, search="acc-77")) == [first.pk]
    assert shown_ids(search(alice, search="xr-9")) == [second.pk]
    assert shown_ids(search(alice, search="thorax")) == [first.pk]
    assert shown_ids(search(alice, search="thorax louis")) == []


def test_modality_filter_matches_whole_codes_only(alice, user):
    ct = make_study(user, 1, modalities="CT")
    both = make_study(user, 2, modalities="CT\\PT")
    make_study(user, 3, modalities="RTSTRUCT")
    make_study(user, 4, modalities="MR")
    assert sorted(shown_ids(search(alice, modality="CT"))) == [ct.pk, both.pk]
    assert shown_ids(search(alice, modality="PT")) == [both.pk]


def test_date_range_includes_both_ends(alice, user):
    days = {n: make_study(user, n, study_date=dt.date(2020, 1, n)) for n in (1, 5, 10, 20)}
    response = search(alice, date_from="2020-01-05", date_to="2020-01-10")
    assert sorted(shown_ids(response)) == [days[5].pk, days[10].pk]
    swapped = search(alice, date_from="2020-01-10", date_to="2020-01-05")
    assert sorted(shown_ids(swapped)) == [days[5].pk, days[10].pk]


@pytest.mark.parametrize(
    ("sort", "field"),
    [
        ("patient", "patient__name"),
        ("pid", "patient__patient_id"),
        ("description", "description"),
        ("accession", "accession_number"),
        ("images", "num_instances"),
    ],
)
def test_columns_sort_both_ways(alice, user, sort, field):
    for number, (text, count) in enumerate([("b", 2), ("c", 3), ("a", 1)]):
        make_study(
            user,
            number,
            name=f"{text}^x",
            patient_id=f"{text}1",
            description=text,
            accession_number=text,
            num_instances=count,
        )
    expected = list(Study.objects.order_by(field).values_list("pk", flat=True))
    assert shown_ids(alice.get(reverse("viewer:home"), {"sort": sort})) == expected
    assert shown_ids(alice.get(reverse("viewer:home"), {"sort": f"-{sort}"})) == expected[::-1]


def test_undated_studies_come_last_whichever_the_direction(alice, user):
    undated = make_study(user, 1)
    old = make_study(user, 2, study_date=dt.date(2001, 1, 1))
    new = make_study(user, 3, study_date=dt.date(2021, 1, 1))
    assert shown_ids(alice.get(reverse("viewer:home"), {"sort": "date"})) == [old.pk, new.pk, undated.pk]
    assert shown_ids(alice.get(reverse("viewer:home"), {"sort": "-date"})) == [new.pk, old.pk, undated.pk]


def test_pages_and_page_size(alice, user):
    for number in range(30):
        make_study(user, number)
    first = alice.get(reverse("viewer:home"))
    assert len(first.context["page"].object_list) == 25 and first.context["page"].has_next()
    second = alice.get(reverse("viewer:home"), {"page": 2})
    assert len(second.context["page"].object_list) == 5
    assert not set(shown_ids(first)) & set(shown_ids(second))
    assert len(alice.get(reverse("viewer:home"), {"per": 10}).context["page"].object_list) == 10
    assert len(alice.get(reverse("viewer:home"), {"per": 7}).context["page"].object_list) == 25  # not a choice
    assert alice.get(reverse("viewer:home"), {"page": "zzz", "sort": "nonsense"}).status_code == 200


def test_search_values_stay_out_of_urls_and_the_audit_trail(alice, user):
    make_study(user, 1, name="Curie^Marie")
    response = alice.post(reverse("viewer:home") + "?sort=-date", {"search": "Curie", "modality": "CT"})
    assert response.status_code == 302
    assert "Curie" not in response["Location"] and "CT" not in response["Location"]
    assert response["Location"].endswith("?sort=-date&per=25")
    alice.get(response["Location"])
    (event,) = AuditEvent.objects.filter(action=A.STUDY_SEARCH)
    assert event.detail == {"filters": ["modality", "search"], "results": 1, "thumbnails": event.detail["thumbnails"]}
    assert event.event_code == "110112"
    for event in AuditEvent.objects.all():
        assert "Curie" not in json.dumps(event.detail) and "Curie" not in event.object_uid


def test_plain_list_is_recorded_as_a_list_and_clear_forgets_the_search(alice, user):
    make_study(user, 1)
    make_study(user, 2, name="Other^Person")
    alice.get(reverse("viewer:home"))
    assert search(alice, search="Other").context["page"].paginator.count == 1
    alice.get(reverse("viewer:home"))  # the search stays until cleared
    cleared = search(alice, clear="1")
    assert cleared.context["page"].paginator.count == 2
    actions = list(AuditEvent.objects.exclude(action=A.LOGIN).order_by("id").values_list("action", flat=True))
    assert actions == [A.STUDY_LIST, A.STUDY_SEARCH, A.STUDY_SEARCH, A.STUDY_LIST]


def test_empty_list_points_to_upload_and_empty_search_to_clearing(alice, user):
    html = alice.get(reverse("viewer:home")).content.decode()
    assert "No studies yet" in html and reverse("viewer:upload") in html
    make_study(user, 1)
    html = search(alice, search="nobody-has-this-name").content.decode()
    assert "No studies match" in html and 'name="clear"' in html


def test_study_page_lists_its_series_and_records_the_view(alice, user):
    study = make_study(user, 1, series_count=2)
    response = alice.get(reverse("viewer:study", args=[study.pk]))
    html = response.content.decode()
    for series in study.series.all():
        assert reverse("viewer:series", args=[series.pk]) in html
    (event,) = AuditEvent.objects.filter(action=A.STUDY_VIEW)
    assert event.object_id == str(study.pk) and event.object_uid == study.study_instance_uid


def test_viewer_embeds_planes_and_version_and_records_the_series_view(alice, user):
    series = make_study(user, 1).series.get()
    Series.objects.filter(pk=series.pk).update(render_version=3, window_center=40, window_width=400)
    response = alice.get(reverse("viewer:series", args=[series.pk]))
    config = response.context["config"]
    assert config["series"]["planes"] == series.planes and config["series"]["render_version"] == 3
    assert config["series"]["window"] == {"center": 40.0, "width": 400.0}
    assert config["nativePlane"] == "stack" and config["presets"][2] == {"name": "Lung", "center": -600, "width": 1500}
    assert 'id="viewer-config"' in response.content.decode()
    assert config["images"]["planes"]["stack"].startswith(f"/images/{series.pk}/3/stack/")
    assert config["images"]["planes"]["stack"].endswith("/{index}.png")
    (event,) = AuditEvent.objects.filter(action=A.SERIES_VIEW)
    assert event.object_id == str(series.pk) and event.detail == {"study_id": series.study_id, "thumbnails": []}
    # handing out the image URLs is image access
    assert AuditEvent.objects.filter(action=A.IMAGES_VIEW, object_id=str(series.pk)).count() == 1


def test_series_config_for_a_layout_viewport_is_the_pages_config_audited_alike(alice, user):
    """A viewport of another series asks /series/<id>/config/: the viewer page's config with its
    image URLs, recorded as a series view and image access; 409 while it has no planes yet."""
    first, second = make_study(user, 1, series_count=2).series.order_by("series_number")
    Series.objects.filter(pk=second.pk).update(frame_of_reference_uid="1.2.3.4")
    page_config = alice.get(reverse("viewer:series", args=[first.pk])).context["config"]
    body = alice.get(reverse("viewer:series-config", args=[second.pk])).json()
    assert body.keys() == page_config.keys()
    assert body["series"]["id"] == second.pk and body["series"]["frame_of_reference_uid"] == "1.2.3.4"
    assert body["images"]["planes"]["stack"].startswith(f"/images/{second.pk}/")
    assert body["urls"]["seriesConfig"] == "/series/{id}/config/"
    assert AuditEvent.objects.filter(action=A.SERIES_VIEW, object_id=str(second.pk)).count() == 1
    assert AuditEvent.objects.filter(action=A.IMAGES_VIEW, object_id=str(second.pk)).count() == 1
    Series.objects.filter(pk=second.pk).update(planes={}, render_status="pending")
    response = alice.get(reverse("viewer:series-config", args=[second.pk]))
    assert response.status_code == 409 and "still being prepared" in response.json()["detail"]


def test_viewer_shows_a_processing_page_until_the_series_has_planes(alice, user):
    series = make_study(user, 1).series.get()
    Series.objects.filter(pk=series.pk).update(planes={}, render_status="pending", images_total=0)
    response = alice.get(reverse("viewer:series", args=[series.pk]))
    assert response.templates[0].name == "viewer/processing.html"
    assert reverse("viewer:series-status", args=[series.pk]) in response.content.decode()
    status = alice.get(reverse("viewer:series-status", args=[series.pk])).json()
    assert status["has_planes"] is False and status["render_status"] == "pending"


def test_status_answers_carry_progress_and_no_patient_data(alice, user):
    study = make_study(user, 1, name="Curie^Marie")
    Series.objects.filter(study=study).update(render_status="rendering", images_total=40, images_done=10)
    body = alice.get(reverse("viewer:study-status", args=[study.pk])).content.decode()
    assert json.loads(body)["series"][0]["images_done"] == 10
    assert "Curie" not in body and study.study_instance_uid not in body


def test_upload_page_lists_only_my_recent_uploads_with_plain_reasons(alice, user, other_user, django_user_model):
    Upload.objects.create(
        owner=user,
        original_name="mine.zip",
        status="done",
        stage="done",
        progress=100,
        files_dicom=3,
        files_skipped=1,
        skipped=[{"name": "notes.txt", "reason": "not a DICOM file"}],
    )
    Upload.objects.create(owner=other_user, original_name="theirs.zip")
    user.is_staff = True  # staff see every upload through the API, but the page lists their own
    user.save()
    html = alice.get(reverse("viewer:upload")).content.decode()
    assert "mine.zip" in html and "theirs.zip" not in html
    assert "notes.txt" in html and "not a DICOM file" in html


def test_logout_is_a_post_and_is_recorded(alice):
    assert alice.get(reverse("logout")).status_code == 405
    response = alice.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert AuditEvent.objects.filter(action=A.LOGOUT).count() == 1


def test_login_page_signs_in_and_goes_where_asked(client, user):
    page = client.get(reverse("login") + "?next=/upload/")
    assert 'name="next" value="/upload/"' in page.content.decode()
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD, "next": "/upload/"})
    assert response.status_code == 302 and response["Location"] == "/upload/"


def test_password_change_works(alice, user):
    new = "another-long-password-77"
    response = alice.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    user.refresh_from_db()
    assert user.check_password(new)


def test_password_reset_mails_a_link_that_sets_a_new_password(client, user, mailoutbox):
    user.email = "alice@example.org"
    user.save()
    assert client.post(reverse("password_reset"), {"email": "alice@example.org"}).status_code == 302
    (message,) = mailoutbox
    link = next(line for line in message.body.splitlines() if "/accounts/reset/" in line).strip()
    path = link.split("://", 1)[1].split("/", 1)[1]
    form = client.get("/" + path, follow=True)
    assert form.context["validlink"]
    new = "brand-new-password-31"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new)
    assert client.post(reverse("password_reset"), {"email": "nobody@example.org"}).status_code == 302
    assert len(mailoutbox) == 1  # no hint whether an address exists


def test_unknown_pages_answer_the_html_404_and_api_paths_json(alice):
    page = alice.get("/no/such/page/")
    assert page.status_code == 404 and "This page does not exist" in page.content.decode()
    api = alice.get("/api/no-such-thing/")
    assert api.status_code == 404 and api["Content-Type"].startswith("application/json")


def test_server_error_page_renders_without_a_request_context():
    from django.template.loader import render_to_string

    html = render_to_string("500.html")
    assert "Something went wrong on the server" in html and "/static/css/app.css" in html
