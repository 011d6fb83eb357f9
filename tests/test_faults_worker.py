"""Faults with real worker processes: killed mid-ingest, time limits, concurrent duplicates, load."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from studies.models import Instance, Series, Upload
from tests.conftest import PASSWORD, WorkerProcess, shared_path, zip_folder
from tests.dicomgen import write_image, write_volume

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
CT = ("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")


def session_for(live_server) -> requests.Session:
    token = requests.post(f"{live_server.url}/api/auth/token/", data={"username": "alice", "password": PASSWORD})
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token.json()['token']}"
    return session


def upload(session, live_server, path, name="study.zip") -> dict:
    with open(path, "rb") as fp:
        response = session.post(f"{live_server.url}/api/uploads/", files={"file": (name, fp, "application/zip")})
    assert response.status_code == 202, response.text
    return response.json()


def wait_until(condition, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"{what} within {timeout}s" + (f"\n{worker.log()}" if worker else ""))


def finished(upload_id):
    upload = Upload.objects.get(pk=upload_id)
    return upload if upload.is_finished else None


def test_worker_killed_mid_ingest_loses_nothing_and_stores_nothing_twice(live_server, user, media_root, tmp_path):
    first = WorkerProcess(media_root, tmp_path / "first.log", concurrency=1)
    session = session_for(live_server)
    created = upload(session, live_server, shared_path(*CT))
    wait_until(lambda: Instance.objects.filter(upload_id=created["id"]).exists(), 60, "rows stored", first)
    first.kill()  # SIGKILL to the whole worker: no chance to clean up or acknowledge
    first.stop()
    interrupted = Upload.objects.get(pk=created["id"])
    assert interrupted.status == Upload.Status.PROCESSING, "the kill came too late to interrupt anything"

    # Redis redelivers unacknowledged tasks after the visibility timeout; with the filesystem
    # broker the new worker picks up unfinished work when it starts.
    second = WorkerProcess(
        media_root, tmp_path / "second.log", extra_env={"CELERY_VISIBILITY_TIMEOUT": "2"}, queue=first.queue
    )
    try:
        done = wait_until(lambda: finished(created["id"]), 180, "upload finished after the restart", second)
    finally:
        second.stop()
    assert done.status == Upload.Status.DONE, (done.error, second.log())
    assert done.attempts >= 2 and done.files_dicom == 275
    assert Instance.objects.count() == 275 and Series.objects.count() == 1
    series = Series.objects.get()
    assert series.render_status == Series.Render.DONE and series.images_done >= series.images_total


def test_ingest_over_its_time_limit_ends_failed(live_server, user, media_root, tmp_path):
    worker = WorkerProcess(media_root, tmp_path / "w.log", extra_env={"INGEST_TIME_LIMIT": "0.1"})
    try:
        created = upload(session_for(live_server), live_server, shared_path(*CT))
        done = wait_until(lambda: finished(created["id"]), 60, "upload finished", worker)
    finally:
        worker.stop()
    assert done.status == Upload.Status.FAILED
    assert "longer than the limit of 0.1 seconds" in done.error


def test_same_zip_from_20_clients_at_once_is_stored_once(live_server, user, worker, tmp_path):
    path = zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip")
    session = session_for(live_server)
    with ThreadPoolExecutor(20) as pool:
        created = list(pool.map(lambda n: upload(session, live_server, path, f"copy{n}.zip"), range(20)))
    uploads = [wait_until(lambda c=c: finished(c["id"]), 120, "all uploads finished", worker) for c in created]
    assert all(u.status == Upload.Status.DONE for u in uploads), [u.error for u in uploads]
    assert Instance.objects.count() == 9 and Series.objects.count() == 1
    assert sum(u.files_dicom for u in uploads) == 9
    assert all(u.files_dicom + u.files_skipped == 9 for u in uploads)


def test_browsing_while_an_ingest_runs_has_no_errors(live_server, user, worker, tmp_path):
    session = session_for(live_server)
    first = upload(session, live_server, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "a.zip"))
    wait_until(lambda: finished(first["id"]), 60, "first upload done", worker)
    series = Series.objects.get()
    urls = [f"{live_server.url}/api/series/{series.pk}/planes/stack/{i}.png" for i in range(9)]
    urls += [f"{live_server.url}/api/series/{series.pk}/", f"{live_server.url}/api/studies/"]
    second = upload(session, live_server, shared_path(*CT))
    failures, successes = [], 0

    def browse(seed):
        nonlocal successes
        local = requests.Session()
        local.headers.update(session.headers)
        for n in range(40):
            reply = local.get(urls[(seed + n) % len(urls)])
            if reply.status_code != 200:
                failures.append((reply.status_code, reply.url))
            else:
                successes += 1

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(browse, range(16)))
    done = wait_until(lambda: finished(second["id"]), 180, "second upload done", worker)
    assert failures == [] and successes == 16 * 40
    assert done.status == Upload.Status.DONE and done.files_dicom == 275


def test_an_ingest_that_killed_its_worker_twice_is_failed_and_the_next_upload_runs(
    live_server, user, media_root, tmp_path
):
    """A poison upload (here: its worker SIGKILLed mid-ingest, as the kernel's OOM killer would)
    is delivered again after each death; after the second it is failed, not delivered forever,
    and the worker goes on with other uploads."""
    slices = np.random.default_rng(3).integers(0, 1000, (300, 128, 128), dtype=np.uint16)
    poison = zip_folder(write_volume(tmp_path / "v", slices, slice_step=1.0)[0].parent, tmp_path / "poison.zip")
    session = session_for(live_server)
    env = {"CELERY_VISIBILITY_TIMEOUT": "2"}
    worker = WorkerProcess(media_root, tmp_path / "w1.log", concurrency=1, extra_env=env)
    queue = worker.queue
    created = upload(session, live_server, poison)
    for death in (1, 2):
        if death > 1:
            worker = WorkerProcess(media_root, tmp_path / f"w{death}.log", concurrency=1, extra_env=env, queue=queue)
        wait_until(
            lambda death=death: Upload.objects.filter(
                pk=created["id"], attempts=death, status=Upload.Status.PROCESSING
            ).exclude(stage="rendering"),
            120,
            f"delivery {death} started",
            worker,
        )
        worker.kill()
        worker.stop()
        interrupted = Upload.objects.get(pk=created["id"])
        assert interrupted.stage != "rendering", "the kill came too late to interrupt the ingest"

    last = WorkerProcess(media_root, tmp_path / "w3.log", concurrency=1, extra_env=env, queue=queue)
    try:
        given_up = wait_until(lambda: finished(created["id"]), 120, "the poison upload ended", last)
        good = write_image(tmp_path / "good" / "good.dcm", np.full((16, 16), 5, np.uint16))
        after = upload(session, live_server, zip_folder(good.parent, tmp_path / "good.zip"), "good.zip")
        done = wait_until(lambda: finished(after["id"]), 60, "the next upload finished", last)
    finally:
        last.stop()
    assert given_up.status == Upload.Status.FAILED and given_up.attempts == 2
    assert "interrupted 2 times" in given_up.error and given_up.file  # its ZIP is kept to run again
    assert Instance.objects.filter(upload_id=created["id"]).count() == 0
    assert done.status == Upload.Status.DONE and done.files_dicom == 1
