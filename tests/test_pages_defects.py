"""Issue 12's page defects and study-page actions, without a browser: the stage labels, patient
sex, deleting a study from its page, and the first administrator's password (ensure_admin).

The browser side (styles, layout, dark theme) is tests/test_browser_pages.py.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEvent
from studies.models import Study, StudyShare, Upload
from studies.services import ingest
from tests.conftest import REPO
from tests.factories import make_study
from viewer import presenters

pytestmark = pytest.mark.django_db


def emitted_stages() -> set[str]:
    """Every value the code can write to Upload.stage: literals in the services and the stages the
    ingest reports progress for, plus the final statuses (rendering.py writes ``stage=status``)."""
    found = set(ingest.STAGE_BANDS) | {str(value) for value in Upload.Status.values}
    for path in (REPO / "studies" / "services").glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r"""\bstage\s*=\s*["']([a-z_]+)["']""", text))
        found |= set(re.findall(r"""\.progress\(\s*["']([a-z_]+)["']""", text))
    return found


def test_every_stage_the_ingest_can_write_has_a_label_kept_in_one_table():
    stages = emitted_stages()
    assert {"queued", "extracting", "storing", "decoding", "rendering", "done", "failed"} <= stages
    missing = sorted(stage for stage in stages if stage not in presenters.STAGES)
    assert missing == [], "stages shown raw on the upload page"
    # one table: the upload script reads it from the page, it keeps no copy of its own
    for script in (REPO / "static" / "js").glob("*.js"):
        assert "Unpacking the archive" not in script.read_text(), script.name


def test_upload_page_renders_the_labels_for_its_script_and_rows(client, user):
    Upload.objects.create(
        owner=user, original_name="a.zip", size_bytes=21_000, status=Upload.Status.PROCESSING, stage="decoding"
    )
    client.force_login(user)
    body = client.get(reverse("viewer:upload")).content.decode()
    assert '<script id="stage-labels" type="application/json">' in body
    assert '"decoding": "Decoding images"' in body
    assert ">Decoding images</span>" in body and ">decoding<" not in body
    assert 'data-bytes="21000"' in body


@pytest.mark.parametrize(("stored", "shown"), [("M", "Male"), ("F", "Female"), ("O", "Other"), ("o", "Other")])
def test_patient_sex_is_a_word_on_the_study_page(client, user, stored, shown):
    study = make_study(user, 1)
    study.patient.sex = stored
    study.patient.save()
    client.force_login(user)
    body = client.get(reverse("viewer:study", args=[study.pk])).content.decode()
    assert f" · {shown}" in body


# --- study page: download and delete --------------------------------------------------------------


def test_owner_deletes_a_study_from_its_page_audited_shared_users_cannot(client, user, other_user, django_user_model):
    study = make_study(user, 1, series_count=2)
    StudyShare.objects.create(study=study, user=other_user, created_by=user)
    stranger = django_user_model.objects.create_user("carol", password="x" * 20)
    url = reverse("viewer:study-delete", args=[study.pk])
    page = reverse("viewer:study", args=[study.pk])

    client.force_login(other_user)  # shared with: sees neither button, a forged POST is refused
    body = client.get(page).content.decode()
    assert "Download ZIP" not in body and "Delete study" not in body and url not in body
    assert client.post(url).status_code == 403
    client.force_login(stranger)
    assert client.post(url).status_code == 404
    assert client.get(url).status_code == 405
    assert Study.objects.filter(pk=study.pk).exists()

    client.force_login(user)
    body = client.get(page).content.decode()
    assert reverse("api:study-archive", args=[study.pk]) in body and url in body
    response = client.post(url, follow=True)
    assert response.redirect_chain == [(reverse("viewer:home"), 302)]
    assert "The study and its 2 series were deleted." in response.content.decode()
    assert not Study.objects.filter(pk=study.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.STUDY_DELETE)
    assert event.user == user and event.detail["series"] == 2
    assert client.post(url).status_code == 404


# --- the first administrator's password -----------------------------------------------------------


@pytest.fixture
def admin_file(settings, tmp_path) -> Path:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast: checked on each run
    settings.ADMIN_PASSWORD_FILE = tmp_path / "var" / "admin_password"
    settings.ADMIN_EMAIL = ""
    return settings.ADMIN_PASSWORD_FILE


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_ensure_admin_prints_a_box_that_says_how_to_recover_and_keeps_the_password(admin_file, django_user_model):
    out = run()
    admin = django_user_model.objects.get(username="admin")
    password = re.search(r"password:\s+(\S+)", out).group(1)
    assert admin.check_password(password) and admin.is_superuser
    lines = out.splitlines()
    assert lines[0].startswith("+--") and lines[-1] == lines[0]
    assert all(line.startswith("| ") and line.endswith(" |") and len(line) == len(lines[0]) for line in lines[1:-1])
    assert "python manage.py changepassword admin" in out
    assert "ADMIN_EMAIL" in out and str(admin_file) in out
    assert admin_file.read_text().strip() == password
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600

    # every later start says where it is; --show prints it again; nothing is created twice
    assert str(admin_file) in run() and password not in run()
    assert password in run("--show")
    assert django_user_model.objects.filter(is_superuser=True).count() == 1

    # once changed, the file is stale: removed, and --show says how to set a new one
    admin.set_password("a-new-long-password-123")
    admin.save()
    assert "changed" in run()
    assert not admin_file.exists()
    assert "changepassword admin" in run("--show")


def test_ensure_admin_takes_the_email_from_admin_email(admin_file, settings, django_user_model):
    settings.ADMIN_EMAIL = "radiology-admin@example.org"
    out = run()
    assert django_user_model.objects.get(username="admin").email == "radiology-admin@example.org"
    assert "radiology-admin@example.org" in out
    # an existing admin without an address gets it on the next start
    django_user_model.objects.filter(username="admin").update(email="")
    run()
    assert django_user_model.objects.get(username="admin").email == "radiology-admin@example.org"


def test_password_reset_page_says_what_happens_without_an_email(client):
    body = client.get(reverse("password_reset")).content.decode()
    assert "without an e-mail address" in body and "manage.py changepassword admin" in body
