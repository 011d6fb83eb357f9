"""End to end: upload over HTTP to the live server, a real worker process ingests and renders."""

from __future__ import annotations

import io
import time
import zipfile

import cv2
import numpy as np
import pytest
import requests
from pydicom.uid import generate_uid

from studies.imaging import forked
from studies.models import Instance
from tests.conftest import PASSWORD, make_zip, shared_path
from tests.dicomgen import make_dataset

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def token(live_server) -> str:
    response = requests.post(f"{live_server.url}/api/auth/token/", data={"username": "alice", "password": PASSWORD})
    response.raise_for_status()
    return response.json()["token"]


def wait_for_upload(session, url: str, worker, timeout: float = 240.0) -> tuple[dict, list[tuple[str, int]]]:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = session.get(url).json()
        seen.append((body["stage"], body["progress"]))
        if body["status"] in ("done", "failed"):
            return body, seen
        time.sleep(0.2)
    pytest.fail(f"upload not finished after {timeout}s; last {seen[-1]}\n{worker.log()}")


def test_upload_is_ingested_and_rendered_by_a_real_worker(live_server, user, worker):
    zip_path = shared_path("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token(live_server)}"
    with open(zip_path, "rb") as fp:
        response = session.post(f"{live_server.url}/api/uploads/", files={"file": ("chest.zip", fp, "application/zip")})
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued"  # the request only stored the file and queued the work

    body, seen = wait_for_upload(session, created["url"], worker)
    assert body["status"] == "done", (body, worker.log())
    assert body["files_dicom"] == 275 and body["progress"] == 100
    progress = [p for _, p in seen]
    assert progress == sorted(progress), "progress never goes backwards"

    study = session.get(f"{live_server.url}/api/studies/{body['studies'][0]}/").json()
    series = session.get(f"{live_server.url}/api/series/{study['series'][0]['id']}/").json()
    assert series["render_status"] == "done"
    for plane, info in series["planes"].items():
        for index in (0, info["count"] // 2, info["count"] - 1):
            image = session.get(f"{live_server.url}/api/series/{series['id']}/planes/{plane}/{index}.png")
            assert image.status_code == 200, (plane, index, image.text)
            pixels = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_UNCHANGED)
            assert pixels.shape == (info["height"], info["width"])
    assert "celery@" in worker.log() and "studies.upload_ingest" in worker.log()

    # the worker's children let go of the series' volume once their tasks end (kept, each child's
    # memory grew by the volume's resident pages with every series, as bench/ingest.py showed)
    deadline = time.monotonic() + 10
    while (mapped := {f for f in worker.mapped_files() if f.endswith("volume.npy")}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mapped


def test_bad_archive_ends_failed_through_the_worker(live_server, user, worker, tmp_path):
    import zipfile

    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "no images here")
        zf.writestr("../escape.dcm", b"x" * 200)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token(live_server)}"
    with open(path, "rb") as fp:
        created = session.post(f"{live_server.url}/api/uploads/", files={"file": fp}).json()
    body, _ = wait_for_upload(session, created["url"], worker, timeout=60)
    assert body["status"] == "failed"
    assert "No DICOM images" in body["error"]
    reasons = {item["name"]: item["reason"] for item in body["skipped"]}
    assert reasons["readme.txt"] == "not a DICOM file"
    assert "outside the archive" in reasons["../escape.dcm"]


def test_a_zip_scanned_by_two_processes_stores_every_image_and_skips_in_archive_order(
    live_server, user, worker, tmp_path
):
    """Enough members for the header scan's forked helper (INGEST_THREADS is 2): images of two series,
    one whose header is longer than the 64 KB prefix (read whole), notes, an OS file and a damaged member."""
    study, series = generate_uid(), (generate_uid(), generate_uid())
    members, uids = {"images/.DS_Store": b"\0" * 64}, set()
    expected = [("images/.DS_Store", "operating-system file, not DICOM")]  # refused before the scan
    damaged = "images/100.dcm"
    for number in range(forked.FORK_MIN_ITEMS + 40):
        if number % 30 == 4:
            members[f"notes/{number:03d}.txt"] = b"not an image"
            expected.append((f"notes/{number:03d}.txt", "not a DICOM file"))
            continue
        ds = make_dataset(np.full((16, 16), number, np.uint16), study_uid=study, series_uid=series[number % 2])
        if number == 77:  # a private element past 64 KB: NEED_MORE twice, then the member is read whole
            ds.add_new(0x00090010, "LO", "ACME 1.0")
            ds.add_new(0x00091001, "OB", bytes(70_000))
        name = f"images/{number:03d}.dcm"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        members[name] = buffer.getvalue()
        if name == damaged:
            expected.append((name, "corrupt in the archive"))
        else:
            uids.add(ds.SOPInstanceUID)
    path = make_zip(tmp_path / "scan.zip", members)
    with zipfile.ZipFile(path) as zf:
        start = zf.getinfo(damaged).header_offset + 30 + len(damaged)  # its deflated bytes
    data = bytearray(path.read_bytes())
    data[start + 100 : start + 108] = b"\xff" * 8
    path.write_bytes(bytes(data))

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token(live_server)}"
    with open(path, "rb") as fp:
        created = session.post(f"{live_server.url}/api/uploads/", files={"file": ("scan.zip", fp)}).json()
    body, _ = wait_for_upload(session, created["url"], worker)

    assert body["status"] == "done", (body, worker.log())
    skipped = [(item["name"], item["reason"]) for item in body["skipped"]]
    assert [name for name, _ in skipped] == [name for name, _ in expected]
    for (_, reason), (_, start_of_reason) in zip(skipped, expected, strict=True):
        assert reason.startswith(start_of_reason), skipped
    assert set(Instance.objects.values_list("sop_instance_uid", flat=True)) == uids
    assert body["files_dicom"] == len(uids)
    assert "helper process" not in worker.log()
