"""The Django admin: pages over real ingested data, read-only DICOM fields, the re-run and
delete-with-files actions, the untouchable and audited audit trail, and who gets in at all."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from audit.models import AuditEvent
from studies import storage
from studies.models import Instance, Patient, Series, Study, StudyShare, Upload
from studies.services.deletion import series_delete, study_delete
from tests.conftest import PASSWORD, ingest_zip, make_zip, shared_path, stored_names, zip_folder

A = AuditEvent.Action
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mr_upload(user, tmp_path, eager_celery):
    """A small real MR study (one series, nine files in as many transfer syntaxes), owned by alice."""
    return ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "mr.zip"))


@pytest.fixture
def two_series_study(user, tmp_path, eager_celery):
    """A synthetic study with two small series in one upload."""
    from pydicom.uid import generate_uid

    from tests.dicomgen import write_volume

    study_uid = generate_uid()
    voxels = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16)
    files = {}
    for number in (1, 2):
        folder = tmp_path / f"s{number}"
        write_volume(folder, voxels, study_uid=study_uid, SeriesNumber=number)
        files.update({f"s{number}/{p.name}": p for p in sorted(folder.iterdir())})
    upload = ingest_zip(user, make_zip(tmp_path / "two.zip", files))
    return upload.studies.get()


def series_files(series_id: int) -> list[str]:
    """Everything stored for a series (originals and derived images)."""
    return stored_names(storage.series_originals_prefix(series_id)) + stored_names(
        storage.series_derived_prefix(series_id)
    )


def management_data(response) -> dict:
    """The inline formsets' management fields of a change page, as its form would post them."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        form = inline.formset.management_form
        data.update({f"{form.prefix}-{name}": value for name, value in form.initial.items()})
    return data


def admin_events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- pages ----------------------------------------------------------------------------------


def test_every_admin_page_loads_for_a_superuser_with_real_data(admin_client, mr_upload, other_user):
    study = mr_upload.studies.get()
    series = study.series.get()
    share = StudyShare.objects.create(study=study, user=other_user)
    objects = [study.patient, study, series, series.instances.first(), mr_upload, share, AuditEvent.objects.first()]
    for obj in objects:
        base = f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/"
        assert admin_client.get(base).status_code == 200, base
        assert admin_client.get(f"{base}{obj.pk}/change/").status_code == 200, base

    page = admin_client.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert study.study_instance_uid in page
    assert f'href="/admin/studies/series/{series.pk}/change/"' in page  # the series inline links
    series_page = admin_client.get(f"/admin/studies/series/{series.pk}/change/").content.decode()
    assert f"/admin/studies/instance/?series__id__exact={series.pk}" in series_page
    instances = admin_client.get(f"/admin/studies/instance/?series__id__exact={series.pk}")
    assert instances.context["cl"].result_count == series.num_instances == 9


def test_upload_page_lists_skipped_files_with_reasons(admin_client, user, tmp_path, eager_celery):
    upload = ingest_zip(user, zip_folder(shared_path("non-image-sr-seg-rwvm-dcmqi"), tmp_path / "ni.zip"))
    assert upload.skipped  # the SR and the RWVM
    page = admin_client.get(f"/admin/studies/upload/{upload.pk}/change/").content.decode()
    for skip in upload.skipped:
        assert f"<tr><td>{escape(skip['name'])}</td><td>{escape(skip['reason'])}</td></tr>" in page


def test_dicom_fields_cannot_be_changed_through_the_admin(admin_client, mr_upload):
    study = mr_upload.studies.get()
    url = f"/admin/studies/study/{study.pk}/change/"
    data = management_data(admin_client.get(url))
    data.update(study_instance_uid="1.2.3.4", description="changed", accession_number="X1", owner="")
    response = admin_client.post(url, data)
    assert response.status_code == 302  # saved: the page had nothing else to fill in
    after = Study.objects.get(pk=study.pk)
    assert (after.study_instance_uid, after.description, after.accession_number, after.owner_id) == (
        study.study_instance_uid,
        study.description,
        study.accession_number,
        study.owner_id,
    )
    assert "_save" not in admin_client.get(f"/admin/studies/series/{study.series.get().pk}/change/").content.decode()


def test_nothing_from_ingest_can_be_added_in_the_admin(admin_client):
    for model in ("patient", "study", "series", "instance", "upload"):
        assert admin_client.get(f"/admin/studies/{model}/add/").status_code == 403, model


def own(study, owner):
    """Hand the study to ``owner``: only a study's owner shares it, in the admin too."""
    Study.objects.filter(pk=study.pk).update(owner=owner)
    return Study.objects.get(pk=study.pk)


def test_shares_added_and_removed_on_the_study_page_are_audited(admin_client, admin_user, mr_upload, other_user):
    study = own(mr_upload.studies.get(), admin_user)
    url = f"/admin/studies/study/{study.pk}/change/"
    data = management_data(admin_client.get(url))
    data.update({"shares-TOTAL_FORMS": "1", "shares-0-user": str(other_user.pk), "shares-0-group": ""})
    assert admin_client.post(url, data).status_code == 302
    share = StudyShare.objects.get(study=study)
    assert share.user == other_user and share.created_by.username == "admin"
    (added,) = admin_events(A.SHARE_ADD)
    assert (added.object_id, added.detail, added.username) == (str(study.pk), {"user_id": other_user.pk}, "admin")

    data = management_data(admin_client.get(url))
    data.update({"shares-0-id": str(share.pk), "shares-0-study": str(study.pk), "shares-0-DELETE": "on"})
    assert admin_client.post(url, data).status_code == 302
    assert not StudyShare.objects.filter(study=study).exists()
    (removed,) = admin_events(A.SHARE_REMOVE)
    assert removed.detail == {"user_id": other_user.pk}


def test_share_list_adds_and_removes_shares_with_a_user_or_a_group_not_both(
    admin_client, admin_user, mr_upload, other_user
):
    from django.contrib.auth.models import Group

    study = own(mr_upload.studies.get(), admin_user)
    group = Group.objects.create(name="radiology")
    both = {"study": study.pk, "user": other_user.pk, "group": group.pk}
    assert admin_client.post("/admin/studies/studyshare/add/", both).status_code == 200  # the form again, with why
    assert not StudyShare.objects.exists() and not admin_events(A.SHARE_ADD)
    for target in ({"user": other_user.pk}, {"group": group.pk}):
        assert admin_client.post("/admin/studies/studyshare/add/", {"study": study.pk, **target}).status_code == 302
    assert [e.detail for e in admin_events(A.SHARE_ADD)] == [{"user_id": other_user.pk}, {"group_id": group.pk}]
    shares = list(StudyShare.objects.values_list("pk", flat=True))
    data = {"action": "delete_selected", "_selected_action": shares, "post": "yes"}
    assert admin_client.post("/admin/studies/studyshare/", data).status_code == 302
    assert not StudyShare.objects.exists() and len(admin_events(A.SHARE_REMOVE)) == 2


def test_not_even_a_superuser_shares_someone_elses_study_in_the_admin(admin_client, mr_upload, user, other_user):
    study = mr_upload.studies.get()  # alice's
    theirs = StudyShare.objects.create(study=study, user=other_user, created_by=user)
    url = f"/admin/studies/study/{study.pk}/change/"
    page = admin_client.get(url)
    shares = next(f for f in page.context["inline_admin_formsets"] if f.formset.model is StudyShare)
    assert not shares.has_add_permission and not shares.has_delete_permission
    data = management_data(page)
    data.update({"shares-TOTAL_FORMS": "2", "shares-1-user": str(user.pk), "shares-1-group": ""})
    admin_client.post(url, data)
    assert list(StudyShare.objects.all()) == [theirs]
    assert admin_client.post("/admin/studies/studyshare/add/", {"study": study.pk, "user": user.pk}).status_code == 200
    data = {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"}
    assert admin_client.post("/admin/studies/studyshare/", data).status_code == 403
    assert admin_client.post(f"/admin/studies/studyshare/{theirs.pk}/delete/", {"post": "yes"}).status_code == 403
    assert list(StudyShare.objects.all()) == [theirs] and not admin_events(A.SHARE_ADD) + admin_events(A.SHARE_REMOVE)


def test_staff_re_run_in_the_admin_only_with_the_permission(client, django_user_model, mr_upload):
    staff = django_user_model.objects.create_user("frank", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_upload", "change_upload"]))
    client.force_login(staff)
    action = {"action": "rerun_ingest", "_selected_action": [mr_upload.pk]}
    assert "rerun_ingest" not in client.get("/admin/studies/upload/").content.decode()
    client.post("/admin/studies/upload/", action)
    assert Upload.objects.get(pk=mr_upload.pk).status == Upload.Status.DONE  # not re-run
    staff.user_permissions.add(Permission.objects.get(codename="rerun_upload"))
    assert "rerun_ingest" in client.get("/admin/studies/upload/").content.decode()


def test_admin_views_of_studies_are_audited_without_search_values(admin_client, mr_upload):
    study = mr_upload.studies.get()
    admin_client.get("/admin/studies/study/", {"q": study.patient.patient_id, "modality": "MR"})
    admin_client.get(f"/admin/studies/study/{study.pk}/change/")
    (search,) = admin_events(A.STUDY_SEARCH)
    assert search.detail == {"admin": "study", "filters": ["modality", "search"], "results": 1}
    assert study.patient.patient_id not in str(search.detail)
    (view,) = admin_events(A.STUDY_VIEW)
    assert view.object_uid == study.study_instance_uid and view.username == "admin"


def test_changelist_queries_do_not_grow_with_rows(admin_client, user, other_user):
    def add_study(owner, number):
        patient = Patient.objects.create(owner=owner, patient_id=f"P{number}", name=f"Doe^{number}")
        study = Study.objects.create(owner=owner, patient=patient, study_instance_uid=f"1.2.{number}")
        series = Series.objects.create(study=study, series_instance_uid=f"1.2.{number}.1", modality="CT")
        Instance.objects.create(series=series, owner=owner, sop_instance_uid=f"1.2.{number}.1.1", file="x")
        upload = Upload.objects.create(owner=owner, original_name=f"{number}.zip")
        upload.studies.add(study)
        StudyShare.objects.create(study=study, user=other_user if owner == user else user, created_by=owner)

    def queries(url):
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(url).status_code == 200
        return len(context.captured_queries)

    urls = [f"/admin/studies/{m}/" for m in ("patient", "study", "series", "instance", "upload", "studyshare")]
    add_study(user, 1)
    few = [queries(url) for url in urls]
    for number in range(2, 7):
        add_study(user if number % 2 else other_user, number)
    assert [queries(url) for url in urls] == few


# --- actions and deletes --------------------------------------------------------------------


def test_rerun_action_rebuilds_a_done_upload_and_reports_a_busy_one(admin_client, mr_upload, user, eager_celery):
    series = mr_upload.series.get()
    busy = Upload.objects.create(owner=user, original_name="busy.zip", status=Upload.Status.PROCESSING)
    response = admin_client.post(
        "/admin/studies/upload/",
        {"action": "rerun_ingest", "_selected_action": [mr_upload.pk, busy.pk]},
        follow=True,
    )
    texts = [str(m) for m in response.context["messages"]]
    assert f"{busy}: This upload is still being processed." in texts
    assert "Re-run queued for 1 upload(s)." in texts
    rebuilt = Series.objects.get(pk=series.pk)
    assert rebuilt.render_version > series.render_version
    assert rebuilt.render_status == Series.Render.DONE
    assert storage.exists(storage.thumbnail_name(series.pk, rebuilt.render_version))
    assert Upload.objects.get(pk=mr_upload.pk).status == Upload.Status.DONE
    assert Upload.objects.get(pk=busy.pk).status == Upload.Status.PROCESSING


def test_delete_action_removes_studies_with_their_rows_and_files(admin_client, mr_upload):
    study = mr_upload.studies.get()
    series = study.series.get()
    assert series_files(series.pk)
    data = {"action": "delete_selected", "_selected_action": [study.pk]}
    confirm = admin_client.post("/admin/studies/study/", data).content.decode()
    assert "1 series, 9 instances, their original files and images" in confirm
    assert admin_client.post("/admin/studies/study/", {**data, "post": "yes"}).status_code == 302
    assert not Study.objects.exists() and not Series.objects.exists() and not Instance.objects.exists()
    assert not Patient.objects.exists()
    assert not series_files(series.pk)
    (event,) = admin_events(A.STUDY_DELETE)
    assert (event.object_uid, event.username, event.detail) == (
        study.study_instance_uid,
        "admin",
        {"series": 1, "instances": 9},
    )
    assert Upload.objects.filter(pk=mr_upload.pk).exists()  # the record of the upload stays


def test_delete_page_of_a_study_removes_its_files(admin_client, mr_upload):
    study = mr_upload.studies.get()
    series = study.series.get()
    assert admin_client.post(f"/admin/studies/study/{study.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Study.objects.filter(pk=study.pk).exists()
    assert not series_files(series.pk)


def test_deleting_one_series_keeps_the_study_and_its_other_series(admin_client, two_series_study):
    first, second = two_series_study.series.order_by("series_number")
    assert admin_client.post(f"/admin/studies/series/{first.pk}/delete/", {"post": "yes"}).status_code == 302
    study = Study.objects.get(pk=two_series_study.pk)
    assert list(study.series.all()) == [second]
    assert (study.num_series, study.num_instances) == (1, second.num_instances)
    assert not series_files(first.pk)
    assert series_files(second.pk)
    assert [e.object_id for e in admin_events(A.SERIES_DELETE)] == [str(first.pk)]
    assert not admin_events(A.STUDY_DELETE)


def test_deleting_the_last_series_deletes_the_study_and_its_patient(two_series_study, user):
    for series in two_series_study.series.all():
        series_delete(series=series, user=user)
    assert not Study.objects.exists() and not Patient.objects.exists()
    assert len(admin_events(A.SERIES_DELETE)) == 2
    (event,) = admin_events(A.STUDY_DELETE)
    assert event.object_id == str(two_series_study.pk) and event.username == "alice"


def test_patient_stays_while_another_of_its_studies_remains(user):
    patient = Patient.objects.create(owner=user, patient_id="P1")
    first = Study.objects.create(owner=user, patient=patient, study_instance_uid="1.2.1")
    Study.objects.create(owner=user, patient=patient, study_instance_uid="1.2.2")
    study_delete(study=first, user=user)
    study_delete(study=first, user=user)  # a second delete of the same study does nothing
    assert list(Study.objects.values_list("study_instance_uid", flat=True)) == ["1.2.2"]
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert len(admin_events(A.STUDY_DELETE)) == 1


# --- the audit trail ------------------------------------------------------------------------


@pytest.fixture
def event(user):
    return AuditEvent.objects.create(
        user=user, username="alice", action=A.LOGIN, event_code="110114", event_action="E", ip="10.0.0.7"
    )


def test_audit_events_cannot_be_added_changed_or_deleted_in_the_admin(admin_client, event):
    base = "/admin/audit/auditevent/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}add/", {"username": "mallory"}).status_code == 403
    assert admin_client.post(f"{base}{event.pk}/change/", {"username": "mallory"}).status_code == 403
    assert admin_client.get(f"{base}{event.pk}/delete/").status_code == 403
    assert admin_client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    admin_client.post(base, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    assert AuditEvent.objects.get(pk=event.pk).username == "alice"

    listing = admin_client.get(base).content.decode()
    page = admin_client.get(f"{base}{event.pk}/change/").content.decode()
    assert '<select name="action"' not in listing and f'href="{base}add/"' not in listing
    assert 'name="_save"' not in page and "deletelink" not in page
    assert "10.0.0.7" in page


def test_audit_csv_export_streams_the_filtered_events_and_escapes_formulas(admin_client, event):
    AuditEvent.objects.create(
        username="=cmd|' /C calc'!A0", action=A.LOGIN_FAILED, event_code="110114", event_action="E"
    )
    AuditEvent.objects.create(username="@SUM(1+1)", action=A.LOGIN_FAILED, event_code="110114", event_action="E")
    response = admin_client.get("/admin/audit/auditevent/export/", {"action__exact": A.LOGIN_FAILED})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(row["username"] for row in rows) == ["'=cmd|' /C calc'!A0", "'@SUM(1+1)"]
    assert {row["action"] for row in rows} == {A.LOGIN_FAILED}

    everything = admin_client.get("/admin/audit/auditevent/export/", {"q": "10.0.0.7"})
    (row,) = csv.DictReader(io.StringIO(b"".join(everything.streaming_content).decode()))
    assert (row["username"], row["ip"], row["event_code"]) == ("alice", "10.0.0.7", "110114")


def test_audit_list_offers_an_export_that_keeps_its_filters(admin_client, event):
    page = admin_client.get("/admin/audit/auditevent/", {"action__exact": "login"}).content.decode()
    assert 'href="/admin/audit/auditevent/export/?action__exact=login"' in page


def test_reading_the_audit_list_or_an_event_is_audited_without_filter_values(admin_client, event):
    admin_client.get("/admin/audit/auditevent/", {"action__exact": "login", "q": "alice", "p": "1"})
    (read,) = admin_events(A.AUDIT_READ)
    assert (read.event_code, read.event_action, read.username) == ("110101", "R", "admin")
    assert read.detail == {"filters": ["action__exact", "search"]}
    admin_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    detail_read = admin_events(A.AUDIT_READ)[1]
    assert (detail_read.object_type, detail_read.object_id) == ("auditevent", str(event.pk))


def test_exporting_the_audit_trail_is_audited_once(admin_client, event):
    response = admin_client.get("/admin/audit/auditevent/export/", {"q": "alice"})
    b"".join(response.streaming_content)
    (export,) = admin_events(A.AUDIT_EXPORT)
    assert (export.event_code, export.detail) == ("110101", {"filters": ["search"]})
    assert not admin_events(A.AUDIT_READ)


# --- who gets in ----------------------------------------------------------------------------


def test_people_without_staff_status_cannot_reach_the_admin(client, user, event):
    client.login(username="alice", password=PASSWORD)
    for url in ("/admin/", "/admin/studies/study/", "/admin/audit/auditevent/", "/admin/audit/auditevent/export/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert not admin_events(A.AUDIT_READ) and not admin_events(A.AUDIT_EXPORT)


def test_staff_need_the_view_permission_to_read_the_audit_trail(client, user, event):
    user.is_staff = True
    user.save()
    client.login(username="alice", password=PASSWORD)
    assert client.get("/admin/audit/auditevent/").status_code == 403
    assert client.get("/admin/audit/auditevent/export/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    assert client.get("/admin/audit/auditevent/").status_code == 200
    assert client.get(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
