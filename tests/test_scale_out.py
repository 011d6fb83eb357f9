"""Two web processes and two workers that share nothing but PostgreSQL, Redis and a bucket (moto's
S3 server), each with its own VAR_DIR, scratch and media folder, as separate hosts would be."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
import requests
from django.conf import settings
from django.db import connection

from studies import storage
from studies.models import Instance, Series, Upload
from tests import dicomgen
from tests.conftest import PASSWORD, WebProcess, WorkerProcess, bucket_names, make_zip, needs_servers
from tests.conftest import test_database_url as database_url

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_servers("hosts that share nothing (a database server and a broker server)"),
]
SLICES, SIZE = 128, 256


def volume_zip(tmp_path):
    rng = np.random.default_rng(7)
    voxels = (rng.normal(40, 120, (SLICES, SIZE, SIZE))).astype(np.int16)
    paths = dicomgen.write_volume(tmp_path / "ct", voxels, Modality="CT", WindowCenter=40, WindowWidth=400)
    return make_zip(tmp_path / "ct.zip", {p.name: p for p in paths})


def host_env(tmp_path, name: str, common: dict) -> dict:
    """A host's own folders: nothing on disk is shared with any other process."""
    home = tmp_path / name
    return {
        **common,
        "VAR_DIR": str(home / "var"),
        "SCRATCH_DIR": str(home / "scratch"),
        "MEDIA_ROOT": str(home / "media"),  # never created: bucket storage needs no media folder
    }


def test_two_webs_and_two_workers_share_only_the_database_broker_and_bucket(user, tmp_path, moto):
    bucket = f"scale-{uuid.uuid4().hex[:10]}"
    moto.client().create_bucket(Bucket=bucket)
    queue = f"scale-{uuid.uuid4().hex[:8]}"
    common = {
        **moto.env(bucket),
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_QUEUE": queue,
        "CELERY_VISIBILITY_TIMEOUT": "5",  # a killed worker's tasks come back quickly
        "WORKER_CONCURRENCY": "1",
        "WEB_WORKERS": "1",
        "SECRET_KEY": settings.SECRET_KEY,  # every host signs and checks image URLs with the same key
    }
    webs, workers = [], []
    try:
        for name in ("web-a", "web-b"):
            webs.append(WebProcess(host_env(tmp_path, name, common), tmp_path / f"{name}.log"))
        for name in ("worker-a", "worker-b"):
            env = host_env(tmp_path, name, common)
            media = tmp_path / name / "media"
            workers.append(WorkerProcess(media, tmp_path / f"{name}.log", concurrency=1, extra_env=env, queue=queue))
        run_the_scenario(user, tmp_path, moto, bucket, webs, workers)
    finally:
        for process in webs + workers:
            process.stop()
    for name in ("web-a", "web-b", "worker-a", "worker-b"):
        media = tmp_path / name / "media"
        assert not media.exists() or not any(media.rglob("*")), f"{name} kept files in a media folder"


def run_the_scenario(user, tmp_path, moto, bucket, webs, workers):
    web_a, web_b = webs
    token = requests.post(f"{web_a.url}/api/auth/token/", data={"username": user.username, "password": PASSWORD})
    headers = {"Authorization": f"Token {token.json()['token']}"}
    with open(volume_zip(tmp_path), "rb") as fp:
        sent = requests.post(f"{web_a.url}/api/uploads/", headers=headers, files={"file": ("ct.zip", fp)})
    assert sent.status_code == 202, sent.text
    status_on_b = f"{web_b.url}/api/uploads/{sent.json()['id']}/"

    def poll(condition, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = requests.get(status_on_b, headers=headers).json()
            if condition(body):
                return body
            time.sleep(0.05)
        pytest.fail(f"{what} within {timeout}s: {body}\n" + "\n".join(w.log()[-3000:] for w in workers))

    poll(lambda b: b["stage"] == "rendering" and b["progress"] > 52, 120, "rendering under way")
    series = Series.objects.get(study__owner=user)
    done_at_kill = series.images_done
    workers[0].kill()  # SIGKILL, mid-render: its unacknowledged chunks go to the other worker
    assert done_at_kill < series.images_total, "the kill came too late to mean anything"
    body = poll(lambda b: b["status"] in ("done", "failed"), 240, "upload finished")
    assert body["status"] == "done", body["error"]

    series.refresh_from_db()
    assert series.render_status == Series.Render.DONE
    assert series.images_done == series.images_total == SLICES + 2 * SIZE, "every image counted once"
    upload = Upload.objects.get()
    assert upload.files_dicom == Instance.objects.count() == SLICES, "every instance stored once"
    names = set(bucket_names(moto, bucket))
    assert {i.file for i in Instance.objects.all()} <= names
    derived = storage.derived_prefix(series.pk, series.render_version)
    for plane, info in series.planes.items():
        stored = [n for n in names if n.startswith(f"{derived}{plane}/")]
        assert len(stored) == info["count"], plane

    detail = requests.get(f"{web_b.url}/api/series/{series.pk}/", headers=headers).json()
    with requests.Session() as browser:  # no credentials: the signed URLs are enough
        for plane, info in detail["planes"].items():
            for index in range(info["count"]):
                image = browser.get(web_b.url + info["url"].replace("{index}", str(index)))
                assert image.status_code == 200 and image.content[:4] == b"\x89PNG", (plane, index)
                assert image.url.startswith(moto.url), "the bytes come from the bucket"
        windowed = browser.get(web_b.url + detail["planes"]["coronal"]["url"].replace("{index}", "9") + "?wc=0&ww=80")
        assert windowed.status_code == 200 and windowed.url.startswith(web_b.url), "rendered by web B itself"
