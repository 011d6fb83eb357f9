"""The ingest's commits on PostgreSQL do not wait for the disk (it is redone from the start when its
process dies), and the connection is given back as it was, whether the ingest ends well or not."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from studies.models import Upload
from studies.services import ingest
from tests.conftest import ingest_zip, make_zip
from tests.dicomgen import write_image

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.fixture(autouse=True)
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")


@pytest.mark.parametrize("fails", [False, True])
def test_the_ingest_commits_without_waiting_and_gives_the_setting_back(user, tmp_path, monkeypatch, fails):
    seen = []
    real = ingest._store_and_build

    def store_and_build(state, source, members):
        seen.append(synchronous_commit())
        if fails:
            raise ingest.IngestFailed("stopped by the test")
        return real(state, source, members)

    monkeypatch.setattr(ingest, "_store_and_build", store_and_build)
    image = write_image(tmp_path / "a.dcm", np.zeros((8, 8), np.uint16), modality="MR")
    upload = ingest_zip(user, make_zip(tmp_path / "a.zip", {"a.dcm": image}))
    assert upload.status == (Upload.Status.FAILED if fails else Upload.Status.DONE), upload.error
    assert seen == ["off"]
    assert synchronous_commit() == "on"
