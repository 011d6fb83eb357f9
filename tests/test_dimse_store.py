"""The DICOM network service, part A: associations, the AE registry, C-ECHO, C-STORE, `serve dicom`.

The server runs in a thread of the test process (dicomnet.server.serve, non-blocking) with the
ingest in-process (eager Celery); dcmtk's echoscu and storescu, and pynetdicom as an SCU, talk to it.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE, _config
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    CTImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from audit.models import AuditEvent
from dicomnet.models import RemoteAE
from studies.models import Instance, Study, Upload
from tests import conftest
from tests.conftest import REPO, api_client_for, free_port, require_tool, shared_path, stop_group

pytestmark = pytest.mark.django_db(transaction=True)
A = AuditEvent.Action
CT_ZIP = ("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
MR_ZIP = ("mr-brain-4series-fnndsc", "adi_brain_MR_4series.zip")
OUR_AE = "DICOMVIEWER"


@pytest.fixture
def server(dicom_service):
    return dicom_service


@pytest.fixture
def modality(user):
    return RemoteAE.objects.create(ae_title="MODALITY", host="127.0.0.1", port=104, owner=user)


def dcmtk(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool(tool), *args], capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_upload(owner, count: int = 1, timeout: float = 90) -> list[Upload]:
    """The owner's uploads once ``count`` exist and all are finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        uploads = list(Upload.objects.filter(owner=owner).order_by("pk"))
        if len(uploads) >= count and all(upload.is_finished for upload in uploads):
            return uploads
        time.sleep(0.2)
    raise AssertionError(f"no finished upload: {list(Upload.objects.values('status', 'stage'))}")


def wait_for_event(action, timeout: float = 30) -> AuditEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = AuditEvent.objects.filter(action=action).first()
        if event is not None:
            return event
        time.sleep(0.1)
    raise AssertionError(f"no {action} event")


def extract(zip_parts: tuple[str, str], target: Path, count: int, start: int = 0) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(shared_path(*zip_parts)) as archive:
        names = sorted(name for name in archive.namelist() if not name.endswith("/"))[start : start + count]
        paths = []
        for number, name in enumerate(names):
            path = target / f"{number:03d}.dcm"
            path.write_bytes(archive.read(name))
            paths.append(path)
    return paths


def scratch_leftovers(settings) -> list[str]:
    return sorted(path.name for path in (Path(settings.SCRATCH_DIR) / "tmp").iterdir())


# --- association policy -------------------------------------------------------------------------


def test_echo_from_a_registered_ae_succeeds(server, modality):
    result = dcmtk("echoscu", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(server))
    assert result.returncode == 0, result.stderr


def test_unknown_calling_ae_is_rejected_and_audited(server, modality):
    result = dcmtk("echoscu", "-aet", "STRANGER", "-aec", OUR_AE, "127.0.0.1", str(server))
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stdout + result.stderr
    event = wait_for_event(A.DICOM_REJECTED)
    assert event.outcome == AuditEvent.Outcome.FAILURE
    assert event.detail["calling_ae_title"] == "STRANGER"
    assert event.detail["reason"] == "calling AE title not recognised"
    assert event.ip == "127.0.0.1"


def test_wrong_called_ae_is_rejected(server, modality):
    result = dcmtk("echoscu", "-aet", "MODALITY", "-aec", "SOMEONEELSE", "127.0.0.1", str(server))
    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stdout + result.stderr
    assert wait_for_event(A.DICOM_REJECTED).detail["reason"] == "called AE title not recognised"


def test_registered_host_is_checked_when_asked(server, modality, settings):
    settings.DICOM_CHECK_HOST = True
    RemoteAE.objects.filter(pk=modality.pk).update(host="192.0.2.10")  # TEST-NET: never us
    result = dcmtk("echoscu", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(server))
    assert result.returncode != 0
    assert wait_for_event(A.DICOM_REJECTED).detail["reason"] == "calling address is not the AE's host"


# --- C-STORE --------------------------------------------------------------------------------------


def test_storescu_of_ct_and_mr_makes_one_upload_for_the_owner(server, modality, user, other_user, tmp_path, settings):
    folder = tmp_path / "send"
    extract(CT_ZIP, folder / "ct", 2, start=100)
    extract(MR_ZIP, folder / "mr", 1, start=200)
    result = dcmtk("storescu", "+sd", "+r", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(server), str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    (upload,) = wait_for_upload(user)
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.original_name.startswith("DICOM from MODALITY ")
    assert upload.files_dicom == 3
    assert Instance.objects.filter(series__study__owner=user).count() == 3
    listed = api_client_for(user).get("/api/studies/").json()
    assert listed["count"] == 2
    uploads = api_client_for(user).get("/api/uploads/").json()
    assert [row["id"] for row in uploads["results"]] == [upload.pk]
    assert api_client_for(other_user).get("/api/studies/").json()["count"] == 0
    event = wait_for_event(A.DICOM_STORE)
    assert event.user == user and event.object_id == str(upload.pk)
    assert event.detail | {"address": "x"} == {
        "calling_ae_title": "MODALITY",
        "address": "x",
        "instances": 3,
        "failed": 0,
        "upload_id": upload.pk,
        "ended": "released",
    }
    assert scratch_leftovers(settings) == []


def test_storescu_of_a_jpeg_lossless_ct_keeps_its_transfer_syntax(server, modality, user):
    path = shared_path("compressed-clinical-nema-wg04", "nema-ct1_jpll.dcm")  # JPEG Lossless SV1
    result = dcmtk("storescu", "-xs", "-R", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(server), str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    (upload,) = wait_for_upload(user)
    assert upload.status == Upload.Status.DONE and upload.files_dicom == 1, upload.error
    instance = Instance.objects.get(series__study__owner=user)
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.4.70"


def test_compressed_transfer_syntaxes_are_accepted_as_sent(server, modality, user):
    files = [
        shared_path("mr-transfer-syntaxes-dcmqats", "7.dcm"),  # JPEG-LS Lossless
        shared_path("mr-transfer-syntaxes-dcmqats", "9.dcm"),  # JPEG 2000 Lossless
        Path(get_testdata_file("MR_small_RLE.dcm")),  # RLE Lossless
        Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")),  # JPEG Baseline
    ]
    datasets = [pydicom.dcmread(path) for path in files]
    ae = AE(ae_title="MODALITY")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server, ae_title=OUR_AE)
    assert sorted(cx.transfer_syntax[0] for cx in assoc.accepted_contexts) == sorted(
        ds.file_meta.TransferSyntaxUID for ds in datasets
    )
    answers = [assoc.send_c_store(ds).Status for ds in datasets]
    assoc.release()
    assert answers == [0x0000] * 4
    (upload,) = wait_for_upload(user)
    assert upload.status == Upload.Status.DONE, upload.error
    assert upload.files_dicom == 4 and upload.files_skipped == 0, upload.skipped
    stored = set(Instance.objects.filter(series__study__owner=user).values_list("transfer_syntax_uid", flat=True))
    assert stored == {str(ds.file_meta.TransferSyntaxUID) for ds in datasets}


def ct_dataset(**changes) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def sr_dataset() -> pydicom.Dataset:
    ds = ct_dataset()
    del ds.PixelData
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.file_meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    return ds


def scu(title: str = "MODALITY") -> AE:
    ae = AE(ae_title=title)
    for sop_class in (CTImageStorage, MRImageStorage, ComprehensiveSRStorage):
        ae.add_requested_context(sop_class, pydicom.uid.ExplicitVRLittleEndian)
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    return ae


def test_non_image_and_malformed_fail_while_good_ones_are_stored(server, modality, user, settings):
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE)
    assert assoc.is_established
    good = assoc.send_c_store(ct_dataset())
    not_an_image = assoc.send_c_store(sr_dataset())
    no_study = assoc.send_c_store(ct_dataset(StudyInstanceUID=None))
    bad_uid = assoc.send_c_store(ct_dataset(SeriesInstanceUID="1.2.3.abc"))
    also_good = assoc.send_c_store(ct_dataset())
    assoc.release()
    assert good.Status == 0x0000 and also_good.Status == 0x0000
    assert not_an_image.Status == 0x0122 and "not an image" in not_an_image.ErrorComment
    assert no_study.Status == 0xC000 and "StudyInstanceUID" in no_study.ErrorComment
    assert bad_uid.Status == 0xC000 and "SeriesInstanceUID" in bad_uid.ErrorComment
    (upload,) = wait_for_upload(user)
    assert upload.files_dicom == 2 and upload.files_skipped == 0
    assert Instance.objects.filter(series__study__owner=user).count() == 2
    event = wait_for_event(A.DICOM_STORE)
    assert (event.detail["instances"], event.detail["failed"]) == (2, 3)
    assert scratch_leftovers(settings) == []


def test_instances_over_the_upload_limits_are_refused_out_of_resources(server, modality, user, settings):
    size = len(encode(ct_dataset(), False, True))
    settings.INGEST_MAX_MEMBER_BYTES = size * 2
    settings.MAX_UPLOAD_BYTES = size * 5 // 2  # two fit, a third does not
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE)
    too_big = ct_dataset(ImageComments="x" * size * 2)
    answers = [assoc.send_c_store(ds) for ds in (too_big, ct_dataset(), ct_dataset(), ct_dataset())]
    assoc.release()
    assert [answer.Status for answer in answers] == [0xA700, 0x0000, 0x0000, 0xA700]
    assert "larger than" in answers[0].ErrorComment and "association over" in answers[3].ErrorComment
    (upload,) = wait_for_upload(user)
    assert upload.files_dicom == 2


def test_aborted_association_stores_its_complete_instances_only(server, modality, user, settings):
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE, max_pdu=4096)
    assert assoc.is_established
    assert assoc.send_c_store(ct_dataset()).Status == 0x0000
    assert assoc.send_c_store(ct_dataset()).Status == 0x0000
    # a third C-STORE cut off: its first P-DATA fragments only, then an abort
    half = ct_dataset()
    request = C_STORE()
    request.MessageID = 99
    request.AffectedSOPClassUID = half.SOPClassUID
    request.AffectedSOPInstanceUID = half.SOPInstanceUID
    request.Priority = 2
    request.DataSet = io.BytesIO(encode(half, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = next(cx.context_id for cx in assoc.accepted_contexts if cx.abstract_syntax == CTImageStorage)
    fragments = list(message.encode_msg(context_id, 4096))
    assert len(fragments) > 3
    for pdata in fragments[:3]:
        assoc.dul.send_pdu(pdata)
    time.sleep(0.3)
    assoc.abort()
    (upload,) = wait_for_upload(user)
    assert upload.files_dicom == 2
    assert Instance.objects.filter(series__study__owner=user).count() == 2
    assert not Instance.objects.filter(sop_instance_uid=half.SOPInstanceUID).exists()
    event = wait_for_event(A.DICOM_STORE)
    assert (event.detail["instances"], event.detail["ended"]) == (2, "aborted")
    assert scratch_leftovers(settings) == []  # nor the half-received data set's file


def test_ae_without_store_permission_is_refused(server, modality, user):
    RemoteAE.objects.filter(pk=modality.pk).update(may_store=False)
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE)
    answers = [assoc.send_c_store(ct_dataset()) for _ in range(2)]
    assoc.release()
    assert [answer.Status for answer in answers] == [0x0124, 0x0124]
    event = wait_for_event(A.DICOM_REJECTED)
    assert event.detail["operation"] == "C-STORE" and event.user == user
    assert AuditEvent.objects.filter(action=A.DICOM_REJECTED).count() == 1  # once per association
    time.sleep(0.5)
    assert not Upload.objects.exists() and not Study.objects.exists()


def test_unknown_ae_stores_for_the_named_user_but_may_not_query(server, other_user, settings):
    settings.DICOM_ACCEPT_UNKNOWN_AE = other_user.username
    assoc = scu("NEWSCANNER").associate("127.0.0.1", server, ae_title=OUR_AE)
    assert assoc.is_established
    assert assoc.send_c_store(ct_dataset()).Status == 0x0000
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    answers = list(assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind))
    assoc.release()
    assert [status.Status for status, _identifier in answers] == [0x0124]
    (upload,) = wait_for_upload(other_user)
    assert upload.files_dicom == 1 and upload.original_name.startswith("DICOM from NEWSCANNER ")
    refused = wait_for_event(A.DICOM_REJECTED)
    assert refused.detail["operation"] == "C-FIND"


# --- serve dicom -----------------------------------------------------------------------------------


def test_serve_dicom_runs_the_service_in_its_own_process(modality, tmp_path, settings):
    from django.db import connection

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": conftest.test_database_url(connection.settings_dict),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "SCRATCH_DIR": str(settings.SCRATCH_DIR),
        "DICOM_PORT": str(port),
        "DICOM_HOST": "127.0.0.1",
    }
    log = open(tmp_path / "dicom.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "dicom"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            result = dcmtk("echoscu", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(port), timeout=20)
            if result.returncode == 0:
                break
            assert process.poll() is None, (tmp_path / "dicom.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "dicom.log").read_text()
            time.sleep(0.3)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        stop_group(process, timeout=5)
        log.close()


# --- the registry ----------------------------------------------------------------------------------


def run_dicom_ae(*args: str) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("dicom_ae", *args, stdout=out)
    return out.getvalue()


def test_dicom_ae_adds_lists_and_removes(user):
    output = run_dicom_ae(
        "add", "CT_SCANNER ", "--host", "ct.example.org", "--port", "104", "--owner", "alice", "--allow", "store,find"
    )
    assert "added CT_SCANNER" in output
    remote = RemoteAE.objects.get()
    assert (remote.ae_title, remote.owner, remote.may_store, remote.may_find, remote.may_retrieve) == (
        "CT_SCANNER",
        user,
        True,
        True,
        False,
    )
    assert "CT_SCANNER" in run_dicom_ae("list") and "allow=store,find" in run_dicom_ae("list")
    assert AuditEvent.objects.filter(action=A.ADMIN_CHANGE, object_type="remoteae").count() == 1
    assert "removed CT_SCANNER" in run_dicom_ae("remove", "CT_SCANNER")
    assert not RemoteAE.objects.exists()
    assert run_dicom_ae("list").strip() == "no remote AEs registered"


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "A" * 17, "--host", "h", "--port", "104", "--owner", "alice"], "at most 16 characters"),
        (["add", "BAD\\AE", "--host", "h", "--port", "104", "--owner", "alice"], "without backslash"),
        (["add", "   ", "--host", "h", "--port", "104", "--owner", "alice"], "cannot be blank"),
        (["add", "PACS", "--host", "h", "--port", "70000", "--owner", "alice"], "port"),
        (["add", "PACS", "--host", "h", "--port", "x", "--owner", "alice"], "not a number"),
        (["add", "PACS", "--host", "h", "--port", "104", "--owner", "nobody"], "no user named"),
        (
            ["add", "PACS", "--host", "h", "--port", "104", "--owner", "alice", "--allow", "delete"],
            "unknown permission",
        ),
        (["add", "MODALITY", "--host", "h", "--port", "104", "--owner", "alice"], "already registered"),
        (["remove", "NOSUCHAE"], "no remote AE titled"),
    ],
)
def test_dicom_ae_says_what_is_wrong(user, modality, args, message):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match=message):
        run_dicom_ae(*args)
    assert list(RemoteAE.objects.values_list("ae_title", flat=True)) == ["MODALITY"]


def test_admin_lists_searches_and_edits_remote_aes(admin_client, modality):
    listed = admin_client.get("/admin/dicomnet/remoteae/?q=MODAL")
    assert listed.status_code == 200 and b"MODALITY" in listed.content
    page = admin_client.get(f"/admin/dicomnet/remoteae/{modality.pk}/change/")
    assert page.status_code == 200 and b"autocomplete" in page.content


def test_serve_all_starts_the_dicom_service_too(monkeypatch):
    from studies.management.commands import serve

    started = {}
    monkeypatch.setattr(serve.Command, "run_together", lambda self, commands, url: started.update(commands))
    monkeypatch.setattr(serve, "check_storage", lambda: None)
    monkeypatch.setattr(serve, "private_files", lambda: None)
    monkeypatch.setattr(serve, "metrics_dir", lambda role: None)
    from django.core.management import call_command

    call_command("serve", "all")
    assert sorted(started) == ["dicom", "web", "worker"]
    assert started["dicom"][-2:] == ["serve", "dicom"]


def test_serve_dicom_refuses_an_unknown_owner_for_unknown_aes(settings, monkeypatch):
    from django.core.management import CommandError, call_command

    from studies.management.commands import serve

    monkeypatch.setattr(serve, "metrics_dir", lambda role: None)
    monkeypatch.setattr(serve, "private_files", lambda: None)

    settings.DICOM_ACCEPT_UNKNOWN_AE = "nobody"
    with pytest.raises(CommandError, match="DICOM_ACCEPT_UNKNOWN_AE names no active user"):
        call_command("serve", "dicom")


def test_association_is_rejected_transiently_when_it_cannot_be_checked(server, modality, monkeypatch):
    from dicomnet import services

    def broken(**_):
        raise RuntimeError("database down")

    monkeypatch.setattr(services, "admit", broken)
    result = dcmtk("echoscu", "-aet", "MODALITY", "-aec", OUR_AE, "127.0.0.1", str(server))
    assert result.returncode != 0
    assert "Transient" in result.stdout + result.stderr


def test_serve_dicom_says_when_its_port_is_taken(settings, monkeypatch):
    import socket

    from django.core.management import CommandError, call_command

    from studies.management.commands import serve

    for name in ("STORE_RECV_CHUNKED_DATASET", "LOG_REQUEST_IDENTIFIERS", "LOG_RESPONSE_IDENTIFIERS"):
        monkeypatch.setattr(_config, name, getattr(_config, name))
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    monkeypatch.setattr(serve, "metrics_dir", lambda role: None)
    monkeypatch.setattr(serve, "private_files", lambda: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.DICOM_HOST, settings.DICOM_PORT = "127.0.0.1", taken.getsockname()[1]
        with pytest.raises(CommandError, match="cannot listen on 127.0.0.1"):
            call_command("serve", "dicom")


def test_query_and_retrieve_need_their_permissions(server, modality, user):
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelGet as GetModel,
    )
    from pynetdicom.sop_class import (
        StudyRootQueryRetrieveInformationModelMove as MoveModel,
    )

    ae = scu()
    ae.add_requested_context(GetModel)
    ae.add_requested_context(MoveModel)
    assoc = ae.associate("127.0.0.1", server, ae_title=OUR_AE)
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = "1.2.3"
    found = [status.Status for status, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)]
    got = [status.Status for status, _ in assoc.send_c_get(query, GetModel)]
    moved = [status.Status for status, _ in assoc.send_c_move(query, "MODALITY", MoveModel)]
    assoc.release()
    assert (found, got, moved) == ([0x0124], [0x0124], [0xC514])
    refused = AuditEvent.objects.filter(action=A.DICOM_REJECTED)
    assert sorted(event.detail["operation"] for event in refused) == ["C-FIND", "C-GET", "C-MOVE"]
    assert {event.user for event in refused} == {user}


def test_find_and_retrieve_need_the_registered_host_even_when_store_does_not(server, modality, user):
    """A title is no secret: anyone who claims a find/retrieve AE's title from another address is
    refused its owner's data, while storing from anywhere stays allowed (DICOM_CHECK_HOST off)."""
    RemoteAE.objects.filter(pk=modality.pk).update(host="192.0.2.10", may_find=True, may_retrieve=True)
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE)
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = "*"
    found = [status.Status for status, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)]
    stored = assoc.send_c_store(ct_dataset()).Status
    assoc.release()
    assert (found, stored) == ([0x0124], 0x0000)
    assert wait_for_event(A.DICOM_REJECTED).detail["operation"] == "C-FIND"


def test_instances_are_kept_when_the_upload_cannot_be_made(server, modality, user, settings, monkeypatch):
    from dicomnet import services

    def storage_down(**_):
        raise OSError("storage unavailable")

    monkeypatch.setattr(services, "upload_staged", storage_down)
    assoc = scu().associate("127.0.0.1", server, ae_title=OUR_AE)
    assert assoc.send_c_store(ct_dataset()).Status == 0x0000
    assoc.release()
    event = wait_for_event(A.DICOM_STORE)
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.detail["upload_id"] is None
    (kept,) = scratch_leftovers(settings)
    assert kept.endswith("-unsent.zip")
    with zipfile.ZipFile(Path(settings.SCRATCH_DIR) / "tmp" / kept) as archive:
        assert archive.namelist() == ["000001.dcm"]
