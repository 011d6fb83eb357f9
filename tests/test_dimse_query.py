"""C-FIND, C-GET and C-MOVE (dicomnet/find.py, dicomnet/retrieve.py) driven by dcmtk's findscu,
getscu and movescu against the DICOM service (dicomnet.server) running in this process: matching at
every level, retrieval byte for byte (or decompressed when the peer takes only uncompressed data),
move destinations, visibility between users and refused identifiers."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from audit.models import AuditEvent
from dicomnet.find import handle_find
from dicomnet.models import RemoteAE
from dicomnet.retrieve import handle_get
from studies.models import Instance, Series, Study, Upload
from tests.conftest import free_port, ingest_zip, make_zip, require_tool, shared_path, stored_bytes

pytestmark = pytest.mark.django_db(transaction=True)

SERVER_AE = "DICOMVIEWER"
MR = "mr-transfer-syntaxes-dcmqats"  # one MR slice in nine transfer syntaxes, one series


class StorageSCP:
    """A second pynetdicom AE that keeps what it receives (a C-MOVE destination)."""

    def __init__(self, ae_title: str):
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts, evt

        self.received: list[pydicom.Dataset] = []
        self.lock = threading.Lock()
        ae = AE(ae_title=ae_title)
        for context in StoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context("1.2.840.10008.1.1")
        self.port = free_port()
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)]
        )

    def on_store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self.lock:
            self.received.append(ds)
        return 0x0000


@pytest.fixture
def destination():
    store = StorageSCP("DEST")
    yield store
    store.server.shutdown()


# --- data: alice has the nine-encodings MR and pydicom's CT; bob has pydicom's MR ----------------


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def studies(user, other_user, tmp_path, eager_celery):
    files = {f"mr/{p.name}": p for p in sorted(shared_path(MR).glob("*.dcm"))}
    files["ct/ct.dcm"] = Path(get_testdata_file("CT_small.dcm"))
    upload = ingest_zip(user, make_zip(tmp_path / "alice.zip", files))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    upload = ingest_zip(other_user, make_zip(tmp_path / "bob.zip", {"mr.dcm": Path(get_testdata_file("MR_small.dcm"))}))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    for title, owner in (("ALICEAE", user), ("BOBAE", other_user)):
        RemoteAE.objects.create(ae_title=title, host="127.0.0.1", port=1, owner=owner, may_find=True, may_retrieve=True)
    return {
        "mr": Study.objects.get(owner=user, series__modality="MR"),
        "ct": Study.objects.get(owner=user, series__modality="CT"),
        "bob": Study.objects.get(owner=other_user),
    }


def dcmtk(tool: str, port: int, keys: list[str], *options: str, aet: str = "ALICEAE") -> str:
    """Run a dcmtk SCU against our AE (Study Root); its verbose output."""
    command = [require_tool(tool), "-d", "-S", "-aet", aet, "-aec", SERVER_AE, *options, "127.0.0.1", str(port)]
    for key in keys:
        command += ["-k", key]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def find(port: int, tmp_path: Path, keys: list[str], aet: str = "ALICEAE") -> tuple[list[pydicom.Dataset], str]:
    """findscu's answers (written with --extract) and its output."""
    folder = tmp_path / f"find-{len(list(tmp_path.glob('find-*')))}"
    folder.mkdir()
    output = dcmtk("findscu", port, keys, "-X", "-od", str(folder), aet=aet)
    return [pydicom.dcmread(path) for path in sorted(folder.glob("rsp*.dcm"))], output


def values(ds: pydicom.Dataset) -> dict:
    return {element.tag: element.value for element in ds}


# --- C-FIND ----------------------------------------------------------------------------------------


def test_find_studies_with_wildcards_sees_only_the_owners(dicom_service, studies, tmp_path):
    keys = ["QueryRetrieveLevel=STUDY", "PatientName=*", "StudyInstanceUID", "StudyDate", "ModalitiesInStudy"]
    answers, output = find(dicom_service, tmp_path, keys)
    assert sorted(a.StudyInstanceUID for a in answers) == sorted(
        [studies["mr"].study_instance_uid, studies["ct"].study_instance_uid]
    ), output
    ct = next(a for a in answers if a.StudyInstanceUID == studies["ct"].study_instance_uid)
    assert ct.StudyDate == "20040119" and ct.ModalitiesInStudy == "CT" and ct.QueryRetrieveLevel == "STUDY"
    assert str(ct.PatientName) == "CompressedSamples^CT1" and ct.RetrieveAETitle == SERVER_AE

    answers, _ = find(dicom_service, tmp_path, keys, aet="BOBAE")
    assert [a.StudyInstanceUID for a in answers] == [studies["bob"].study_instance_uid]

    event = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_FIND).order_by("id").first()
    assert event.username == "alice" and event.detail["level"] == "STUDY"
    assert event.detail["keys"] == ["PatientName"] and event.detail["results"] == 2
    assert "Compressed" not in str(event.detail)

    # the same matching rules as QIDO-RS
    ct_uid, mr_uid = studies["ct"].study_instance_uid, studies["mr"].study_instance_uid
    cases = {
        "PatientName=compressedsamples^c?1": [ct_uid],  # PN ignores case; ? one character
        "StudyDate=20100101-": [mr_uid],  # open date range
        "StudyDate=20040101-20041231": [ct_uid],
        f"StudyInstanceUID={ct_uid}\\{mr_uid}\\1.2.3": [ct_uid, mr_uid],  # UID list
        f"StudyInstanceUID={studies['bob'].study_instance_uid}": [],  # another user's
        "ModalitiesInStudy=MR": [mr_uid],
        "StudyTime=07": [ct_uid],  # 07:27:30 and 13:38:34.25: a time to any precision
        "StudyTime=1300-": [mr_uid],
        "StudyTime=-072730": [ct_uid],
        "StudyTime=133834.25-133834.25": [mr_uid],
    }
    for key, expected in cases.items():
        answers, output = find(dicom_service, tmp_path, ["QueryRetrieveLevel=STUDY", key, "AccessionNumber"])
        assert sorted(a.StudyInstanceUID for a in answers) == sorted(expected), (key, output)
        for a in answers:  # a requested key without value comes back empty
            assert "AccessionNumber" in a and a.AccessionNumber == ""


def test_find_series_and_images(dicom_service, studies, tmp_path):
    mr = studies["mr"]
    series = Series.objects.get(study=mr)
    keys = ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={mr.study_instance_uid}", "SeriesInstanceUID", "Modality"]
    answers, output = find(dicom_service, tmp_path, [*keys, "SeriesNumber", "NumberOfSeriesRelatedInstances"])
    assert len(answers) == 1, output
    assert answers[0].SeriesInstanceUID == series.series_instance_uid and answers[0].Modality == "MR"
    assert answers[0].NumberOfSeriesRelatedInstances == 9 and answers[0].StudyInstanceUID == mr.study_instance_uid

    keys = [
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={mr.study_instance_uid}",
        f"SeriesInstanceUID={series.series_instance_uid}",
        "SOPInstanceUID=*",
        "SOPClassUID",
        "InstanceNumber",
    ]
    answers, output = find(dicom_service, tmp_path, keys)
    stored = set(Instance.objects.filter(series=series).values_list("sop_instance_uid", flat=True))
    assert {a.SOPInstanceUID for a in answers} == stored and len(answers) == 9, output
    assert all(a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" for a in answers)


def test_find_refuses_bad_identifiers_and_limits_wildcard_queries(dicom_service, studies, tmp_path, monkeypatch):
    from dicomweb import qido

    monkeypatch.setattr(qido, "MAX_RESULTS", 1)
    keys = [
        "QueryRetrieveLevel=STUDY",
        "PatientName=*",
        "PatientID=*",
        "AccessionNumber=*",
        "StudyDescription=*",
        "ReferringPhysicianName=*",
        "StudyID=*",
        "StudyInstanceUID",
    ]
    answers, output = find(dicom_service, tmp_path, keys)
    assert len(answers) == 1, output
    assert "Only the first 1 matches were sent" in output and "0xa700" in output

    answers, output = find(dicom_service, tmp_path, ["QueryRetrieveLevel=SERIES", "SeriesInstanceUID"])
    assert answers == [] and "StudyInstanceUID is required at SERIES level" in output
    mr = studies["mr"]
    keys = ["QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={mr.study_instance_uid}"]
    answers, output = find(dicom_service, tmp_path, keys)
    assert answers == [] and "SeriesInstanceUID is required at IMAGE level" in output
    answers, output = find(dicom_service, tmp_path, ["QueryRetrieveLevel=PATIENT", "PatientID"])
    assert answers == [] and "QueryRetrieveLevel must be STUDY, SERIES or IMAGE" in output
    answers, output = find(dicom_service, tmp_path, ["QueryRetrieveLevel=STUDY", "StudyDate=2024"])
    assert answers == [] and "is not a date" in output
    answers, output = find(dicom_service, tmp_path, ["QueryRetrieveLevel=STUDY", "StudyTime=2500"])
    assert answers == [] and "is not a time of day" in output


# --- C-GET -----------------------------------------------------------------------------------------


def test_get_series_returns_the_stored_files(dicom_service, studies, tmp_path):
    mr = studies["mr"]
    series = Series.objects.get(study=mr)
    folder = tmp_path / "got"
    folder.mkdir()
    keys = [
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={mr.study_instance_uid}",
        f"SeriesInstanceUID={series.series_instance_uid}",
    ]
    options = ["-od", str(folder)]  # getscu proposes the uncompressed syntaxes only
    output = dcmtk("getscu", dicom_service, keys, *options)
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in folder.iterdir()}
    stored = {i.sop_instance_uid: i for i in Instance.objects.filter(series=series)}
    assert set(received) == set(stored), output
    for uid, instance in stored.items():
        original = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored_bytes(instance.file)))
        got = pydicom.dcmread(received[uid])
        stored_syntax = original.file_meta.TransferSyntaxUID
        if not stored_syntax.is_compressed and stored_syntax.is_little_endian:
            assert values(got) == values(original)  # every element as stored, pixel data included
        else:  # compressed or Big Endian: sent as Explicit VR Little Endian, the same pixels
            assert got.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
            assert (got.pixel_array == original.pixel_array).all()
    event = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_SEND)
    assert event.detail["operation"] == "C-GET" and event.detail["sent"] == 9
    assert event.detail["study_ids"] == [mr.pk] and event.username == "alice"


def test_get_sends_nothing_of_another_users_and_refuses_missing_keys(dicom_service, studies, tmp_path):
    folder = tmp_path / "got"
    folder.mkdir()
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={studies['bob'].study_instance_uid}"]
    dcmtk("getscu", dicom_service, keys, "-od", str(folder))
    assert list(folder.iterdir()) == []
    # the request reached the server and matched nothing (an empty folder alone would also follow a
    # refused association or a server that never answered)
    event = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_SEND)
    assert event.username == "alice" and event.detail["matched"] == 0 and event.detail["sent"] == 0

    output = dcmtk("getscu", dicom_service, ["QueryRetrieveLevel=SERIES", "PatientName=*"], "-od", str(folder))
    assert list(folder.iterdir()) == [] and "StudyInstanceUID is required at SERIES level" in output


# --- C-MOVE ----------------------------------------------------------------------------------------


def test_move_only_to_destinations_of_the_same_owner(dicom_service, studies, destination, user, other_user):
    RemoteAE.objects.create(ae_title="DEST", host="127.0.0.1", port=destination.port, owner=user)
    ct = studies["ct"]
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={ct.study_instance_uid}"]
    output = dcmtk("movescu", dicom_service, keys, "-aem", "DEST")
    instance = Instance.objects.get(series__study=ct)
    assert [ds.SOPInstanceUID for ds in destination.received] == [instance.sop_instance_uid], output
    original = pydicom.dcmread(pydicom.filebase.DicomBytesIO(stored_bytes(instance.file)))
    assert values(destination.received[0]) == values(original)
    event = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_SEND)
    assert event.detail["destination"] == "DEST" and event.detail["operation"] == "C-MOVE"
    assert event.detail["sent"] == 1 and event.detail["study_ids"] == [ct.pk]

    RemoteAE.objects.create(ae_title="BOBDEST", host="127.0.0.1", port=destination.port, owner=other_user)
    for title in ("BOBDEST", "NOWHERE"):  # bob's AE is as unknown to alice as one nobody registered
        output = dcmtk("movescu", dicom_service, keys, "-aem", title)
        assert "0xa801" in output, output
    keys = ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={ct.study_instance_uid}"]
    output = dcmtk("movescu", dicom_service, keys, "-aem", "DEST")
    assert "0xa900" in output and "SeriesInstanceUID is required at SERIES level" in output, output
    assert len(destination.received) == 1
    events = AuditEvent.objects.filter(action=AuditEvent.Action.DICOM_SEND, outcome=AuditEvent.Outcome.FAILURE)
    assert sorted(e.detail["destination"] for e in events) == ["BOBDEST", "DEST", "NOWHERE"]


# --- C-CANCEL (the handlers alone: when a C-CANCEL arrives is a race with dcmtk) --------------------


class FakeEvent:
    """What the handlers read of a pynetdicom event; cancelled once ``cancel_after`` answers went out."""

    def __init__(self, identifier: pydicom.Dataset, cancel_after: int, accepted=()):
        from types import SimpleNamespace

        self.identifier = identifier
        self.cancel_after = cancel_after
        self.answers = 0
        self.move_destination = None
        self.assoc = SimpleNamespace(ae=SimpleNamespace(ae_title=SERVER_AE), accepted_contexts=list(accepted))

    @property
    def is_cancelled(self) -> bool:
        return self.answers >= self.cancel_after


def run_handler(handler, event: FakeEvent, remote) -> list:
    out = []
    for item in handler(event, remote):
        out.append(item)
        if isinstance(item, tuple) and item[0] == 0xFF00:
            event.answers += 1
    return out


def test_cancel_stops_find_and_get(studies, user):
    from pynetdicom import build_context

    mr = studies["mr"]
    series = Series.objects.get(study=mr)
    remote = RemoteAE.objects.get(ae_title="ALICEAE")
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = mr.study_instance_uid
    identifier.SeriesInstanceUID = series.series_instance_uid
    identifier.SOPInstanceUID = ""
    out = run_handler(handle_find, FakeEvent(identifier, cancel_after=2), remote)
    assert [status for status, _ in out] == [0xFF00, 0xFF00, 0xFE00]

    identifier.QueryRetrieveLevel = "SERIES"
    del identifier.SOPInstanceUID
    context = build_context("1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2.1")
    context._as_scu = True
    out = run_handler(handle_get, FakeEvent(identifier, cancel_after=3, accepted=[context]), remote)
    assert out[0] == 9 and [item[0] for item in out[1:]] == [0xFF00, 0xFF00, 0xFF00, 0xFE00]
    event = AuditEvent.objects.get(action=AuditEvent.Action.DICOM_SEND)
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.detail["reason"] == "cancelled"
    assert event.detail["sent"] == 3 and event.detail["matched"] == 9
