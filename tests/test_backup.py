"""Back up, wipe the database and the storage, restore: every study is browsable again with the
same ids, the same accounts and tokens, and byte-identical originals."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.models import AuditEvent
from studies.models import Instance, Series, Study, StudyShare
from studies.services.backup import BackupError, backup, restore
from tests.conftest import api_client_for, get_image, ingest_zip, stored_bytes
from tests.test_storage_s3 import study_zip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def snapshot():
    return {
        "users": sorted(get_user_model().objects.values_list("pk", "username", "password")),
        "studies": sorted(Study.objects.values_list("pk", "study_instance_uid", "owner_id")),
        "series": sorted(Series.objects.values_list("pk", "series_instance_uid", "study_id")),
        "instances": sorted(Instance.objects.values_list("pk", "sop_instance_uid", "file")),
        "shares": sorted(StudyShare.objects.values_list("pk", "study_id", "user_id")),
        "originals": {i.file: hashlib.sha256(stored_bytes(i.file)).hexdigest() for i in Instance.objects.all()},
        "audit": AuditEvent.objects.count(),
    }


def test_a_backup_restored_into_an_empty_site_gives_back_every_study(user, other_user, tmp_path, media_root):
    from tokens.services import token_create

    ingest_zip(user, study_zip(tmp_path))
    StudyShare.objects.create(study=Study.objects.get(), user=other_user, created_by=user)
    _, key = token_create(user=user, name="script")
    before = snapshot()
    manifest = backup(tmp_path / "backup")
    assert manifest["originals"] == len(before["originals"]) and manifest["missing"] == []
    with pytest.raises(BackupError, match="not empty"):
        backup(tmp_path / "backup")

    call_command("flush", interactive=False, verbosity=0)  # a new, migrated database...
    shutil.rmtree(media_root)  # ...and an empty storage
    media_root.mkdir()
    report = restore(tmp_path / "backup")
    assert report["studies"] == 1
    call_command("rebuild_images", verbosity=0)  # what `manage.py restore` queues for the workers

    after = snapshot()
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert after["audit"] >= before["audit"]
    api = api_client_for(user)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")  # the API token still works
    for series in Series.objects.all():
        assert series.render_status == Series.Render.DONE, series.render_error
        for plane, info in series.planes.items():
            for index in (0, info["count"] - 1):
                assert get_image(api, f"/api/series/{series.pk}/planes/{plane}/{index}.png").status_code == 200
    with pytest.raises(BackupError, match="not empty"):
        restore(tmp_path / "backup")


def test_restore_refuses_what_is_not_a_backup(tmp_path):
    with pytest.raises(BackupError, match="not a backup"):
        restore(tmp_path)
