"""De-identification (PS3.15 Annex E Basic Profile and options): the imaging core on generated,
pydicom's and the shared real files; the de-identified archive and the anonymised copy through the
API and the study page."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from studies.imaging import deid
from studies.imaging.uids import is_valid_uid
from tests.conftest import PASSWORD, make_zip, shared_path
from tests.dicomgen import make_dataset

KEY = b"0123456789abcdef0123456789abcdef"
# Identifying values put in the generated files: none may be anywhere in a de-identified file.
PHI = {
    "PatientName": "Smithereens^Johanna^Q",
    "PatientID": "MRN-7733-4411",
    "PatientBirthDate": "19610417",
    "InstitutionName": "Saint Elsewhere Hospital",
    "InstitutionAddress": "12 Harbour Road, Porthaven",
    "ReferringPhysicianName": "Kildare^Richard",
    "PerformingPhysicianName": "Quincy^Mortimer",
    "OperatorsName": "Nightingale^Florence",
    "AccessionNumber": "ACC99887766",
    "OtherPatientIDs": "OTHER-ID-5544",
    "StationName": "CTSTATIONWEST",
    "DeviceSerialNumber": "SN-00991122",
}
PRIVATE_PHI = "Private Johanna Smithereens note"
NESTED_PHI = "Nested Requester Archibald"


def phi_dataset(pixels=None, **keywords) -> Dataset:
    """A CT slice carrying every value of PHI, a private block (also inside a private sequence)
    and identifying values nested in a public sequence."""
    ds = make_dataset(
        np.arange(64, dtype=np.int16).reshape(8, 8) if pixels is None else pixels,
        position=(0, 0, 0),
        orientation=(1, 0, 0, 0, 1, 0),
        spacing=(1, 1),
        **{**PHI, **keywords},
    )
    ds.StudyDescription = "CT chest for Smithereens 77334411"
    ds.SeriesDescription = "Axial 1mm"
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.PatientWeight = "71.5"
    ds.SeriesDate = "20240102"
    ds.AcquisitionDateTime = "20240102101700.5"
    if "FrameOfReferenceUID" not in keywords:
        ds.FrameOfReferenceUID = generate_uid()
    block = ds.private_block(0x0029, "ACME HOSPITAL 1.0", create=True)
    block.add_new(0x10, "LO", PRIVATE_PHI)
    item = Dataset()
    item.add_new(0x00291010, "LO", PRIVATE_PHI)
    block.add_new(0x11, "SQ", Sequence([item]))
    request = Dataset()
    request.RequestingPhysician = NESTED_PHI
    request.RequestedProcedureID = "RP-55667788"
    ds.RequestAttributesSequence = Sequence([request])
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageSequence = Sequence([ref])
    return ds


def file_bytes(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def deidentified(ds: Dataset, options: deid.Options = deid.Options(), key: bytes = KEY) -> tuple[bytes, Dataset]:
    out, result, reason = deid.deidentify_file(file_bytes(ds), deid.Deidentifier(key=key, options=options))
    assert reason is None and out is not None
    return out, pydicom.dcmread(io.BytesIO(out))


def run(ds: Dataset, deidentifier: deid.Deidentifier) -> Dataset:
    return pydicom.dcmread(io.BytesIO(deid.deidentify_file(file_bytes(ds), deidentifier)[0]))


def assert_no_phi(data: bytes, values) -> None:
    lowered = data.lower()
    for value in values:
        for variant in {value, value.replace("^", " ")}:
            assert variant.lower().encode() not in lowered, f"{variant!r} survived de-identification"


ALL_OPTIONS = deid.Options(retain_dates=True, retain_patient=True, clean_descriptors=True)


@pytest.mark.parametrize("options", [deid.Options(), ALL_OPTIONS], ids=["basic", "all-options"])
def test_no_identifying_value_survives_anywhere_in_the_file(options):
    original = phi_dataset()
    out, ds = deidentified(original, options)
    people = ("PatientName", "ReferringPhysicianName", "PerformingPhysicianName")
    parts = [p for name in people for p in PHI[name].split("^") if len(p) > 2]
    assert_no_phi(out, [*PHI.values(), *parts, PRIVATE_PHI, NESTED_PHI, "RP-55667788", "77334411"])
    assert_no_phi(out, [original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID])
    assert ds.PatientIdentityRemoved == "YES"
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_method_and_code_sequence_name_the_profile_and_each_option():
    _, basic = deidentified(phi_dataset())
    assert [item.CodeValue for item in basic.DeidentificationMethodCodeSequence] == ["113100"]
    assert all(item.CodingSchemeDesignator == "DCM" for item in basic.DeidentificationMethodCodeSequence)
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"
    _, full = deidentified(phi_dataset(), ALL_OPTIONS)
    codes = [item.CodeValue for item in full.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108", "113105"]
    assert full.DeidentificationMethod[0] == "Basic Application Confidentiality Profile"
    assert full.DeidentificationMethod[1] == "Retain Longitudinal Temporal Information Modified Dates Option"
    assert basic.DeidentificationMethod == "Basic Application Confidentiality Profile"
    assert full.LongitudinalTemporalInformationModified == "MODIFIED"


def test_uids_are_replaced_consistently_within_a_key_and_differ_between_keys():
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    first = phi_dataset(study_uid=study, series_uid=series, FrameOfReferenceUID=frame)
    second = phi_dataset(study_uid=study, series_uid=series, FrameOfReferenceUID=frame, InstanceNumber=2)
    second.ReferencedImageSequence[0].ReferencedSOPInstanceUID = first.SOPInstanceUID
    deidentifier = deid.Deidentifier(key=KEY, options=deid.Options())
    a, b = (run(ds, deidentifier) for ds in (first, second))
    assert a.StudyInstanceUID == b.StudyInstanceUID != study
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != series
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != frame
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID  # the reference still holds
    assert b.ReferencedImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID  # class UIDs are kept
    assert a.SOPClassUID == first.SOPClassUID
    for uid in (a.StudyInstanceUID, a.SeriesInstanceUID, a.SOPInstanceUID, a.FrameOfReferenceUID):
        assert is_valid_uid(uid) and uid.startswith("2.25.")
    assert a.PatientID == b.PatientID and a.PatientName == b.PatientName  # one pseudonym per patient
    _, other_key = deidentified(first, key=b"another key, 16+ bytes long")
    assert other_key.StudyInstanceUID != a.StudyInstanceUID and other_key.PatientID != a.PatientID


def test_without_options_dates_characteristics_and_descriptors_go():
    _, ds = deidentified(phi_dataset())
    assert not ds.get("StudyDate") and not ds.get("PatientBirthDate")
    assert "PatientAge" not in ds and "PatientWeight" not in ds and not ds.get("PatientSex")
    assert "StudyDescription" not in ds and "SeriesDescription" not in ds
    assert ds.get("SeriesDate") in (None, "", "19000101")


def test_retain_dates_shifts_every_date_by_the_same_whole_days_and_keeps_times():
    first, second = phi_dataset(), phi_dataset(StudyDate="20240110", ContentDate="20240111")
    deidentifier = deid.Deidentifier(key=KEY, options=deid.Options(retain_dates=True))
    a, b = (run(ds, deidentifier) for ds in (first, second))

    def days(new: str, old: str) -> int:
        return (dt.datetime.strptime(new[:8], "%Y%m%d") - dt.datetime.strptime(old[:8], "%Y%m%d")).days

    shift = days(a.StudyDate, first.StudyDate)
    assert -3650 <= shift <= -365
    assert days(b.StudyDate, second.StudyDate) == shift == days(b.ContentDate, second.ContentDate)
    assert days(a.SeriesDate, first.SeriesDate) == shift
    assert a.AcquisitionDateTime[8:] == first.AcquisitionDateTime[8:]
    assert days(a.AcquisitionDateTime, "20240102") == shift
    assert a.StudyTime == first.StudyTime
    assert not a.get("PatientBirthDate")  # birth dates go whatever the options


def test_retain_patient_characteristics_keeps_sex_age_and_weight():
    _, ds = deidentified(phi_dataset(), deid.Options(retain_patient=True))
    assert (ds.PatientSex, ds.PatientAge, float(ds.PatientWeight)) == ("F", "063Y", 71.5)


def test_clean_descriptors_keeps_descriptions_without_identifying_words():
    out, ds = deidentified(phi_dataset(), deid.Options(clean_descriptors=True))
    assert ds.SeriesDescription == "Axial 1mm"
    assert ds.StudyDescription.startswith("CT chest for ")
    assert "Smithereens" not in ds.StudyDescription and "77334411" not in ds.StudyDescription


def test_options_parse_and_refuse_unknown_names():
    assert deid.Options.parse("retain_dates, clean_descriptors").names == ["retain_dates", "clean_descriptors"]
    assert deid.Options.parse("") == deid.Options()
    with pytest.raises(deid.DeidError, match="Unknown de-identification option 'keep_names'"):
        deid.Options.parse("retain_dates,keep_names")


@pytest.mark.parametrize(
    ("modality", "keywords", "left_out"),
    [
        ("CT", {"BurnedInAnnotation": "YES"}, True),
        ("CT", {}, False),
        ("US", {}, True),
        ("US", {"BurnedInAnnotation": "NO"}, False),
        ("OT", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, True),
        ("OT", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "BurnedInAnnotation": "NO"}, False),
    ],
)
def test_images_that_may_show_burned_in_text_are_left_out(modality, keywords, left_out):
    ds = phi_dataset(modality=modality, **keywords)
    out, _, reason = deid.deidentify_file(file_bytes(ds), deid.Deidentifier(key=KEY, options=deid.Options()))
    assert (out is None) == left_out and (reason is not None) == left_out


def test_the_option_lists_name_real_attributes_and_the_table_comes_from_the_library():
    from pydicom.datadict import keyword_dict

    for name in deid.RETAIN_PATIENT_KEEPS | deid.CLEAN_DESCRIPTORS | deid.BIRTH | deid.ALWAYS_CLEANED:
        assert name in keyword_dict
    assert len(deid.EXACT_ACTIONS) > 600
    assert deid.table_action(keyword_dict["PatientName"]) == "Z"
    assert deid.table_action(keyword_dict["SOPInstanceUID"]) == "U"
    assert deid.table_action(0x60023000) == "X"  # overlay data, a repeating group


# pydicom's bundled files: private elements, sequences, big endian, implicit VR, odd VRs, overlays,
# SEG, SR, waveform, RT
PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "examples_overlay.dcm",
    "badVR.dcm",
    "liver_1frame.dcm",
    "reportsi.dcm",
    "test-SR.dcm",
    "waveform_ecg.dcm",
    "rtplan.dcm",
    "J2K_pixelrep_mismatch.dcm",
]


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_files_come_out_readable_and_without_their_identifiers(name):
    data = Path(get_testdata_file(name)).read_bytes()
    original = pydicom.dcmread(io.BytesIO(data))
    out, ds, reason = deid.deidentify_file(data, deid.Deidentifier(key=KEY, options=ALL_OPTIONS))
    assert reason is None, reason
    ds = pydicom.dcmread(io.BytesIO(out))
    assert ds.PatientIdentityRemoved == "YES" and not any(e.tag.is_private for e in ds.iterall())
    identifiers = [str(original.get(k, "") or "") for k in ("PatientName", "PatientID")]
    assert_no_phi(out, [v for v in identifiers if len(v) >= 4])
    assert "InstitutionName" not in ds or ds.InstitutionName != original.get("InstitutionName")
    if "PixelData" in original:
        assert ds.PixelData == original.PixelData


@pytest.mark.parametrize("name", ["nested_priv_SQ.dcm", "priv_SQ.dcm", "UN_sequence.dcm", "explicit_VR-UN.dcm"])
def test_private_sequences_and_un_elements_are_removed_or_refused_cleanly(name):
    """pydicom's files with private sequences and UN elements (some lack SOP UIDs: refused with a
    reason, never an exception); with UIDs added they come out without any private element."""
    try:
        data = Path(get_testdata_file(name)).read_bytes()
    except (TypeError, ValueError):
        data = shared_path("odd-tags", name).read_bytes()
    original = pydicom.dcmread(io.BytesIO(data), force=True)
    deidentifier = deid.Deidentifier(key=KEY, options=deid.Options())
    out, _, reason = deid.deidentify_file(data, deidentifier)
    if out is None:
        assert reason
        original.SOPClassUID = original.get("SOPClassUID") or "1.2.840.10008.5.1.4.1.1.2"
        original.SOPInstanceUID = original.get("SOPInstanceUID") or generate_uid()
        original.BurnedInAnnotation = "NO"
        out, _, reason = deid.deidentify_file(file_bytes(original), deidentifier)
        assert reason is None, reason
    ds = pydicom.dcmread(io.BytesIO(out))
    assert not any(e.tag.is_private for e in ds.iterall())


def test_odd_shared_files_never_raise():
    folder = shared_path("odd-tags")
    deidentifier = deid.Deidentifier(key=KEY, options=ALL_OPTIONS)
    for path in sorted(folder.glob("*.dcm")):
        out, _, reason = deid.deidentify_file(path.read_bytes(), deidentifier)
        assert (out is None) == (reason is not None), path.name
        if out is not None:
            assert pydicom.dcmread(io.BytesIO(out)).PatientIdentityRemoved == "YES"


def test_real_seg_references_and_frame_of_reference_stay_linked_to_the_pet():
    from tests.segdata import PET_SEG_ZIP, SEG_MEMBER

    deidentifier = deid.Deidentifier(key=KEY, options=deid.Options())
    with zipfile.ZipFile(shared_path(*PET_SEG_ZIP)) as zf:
        seg_data = zf.read(SEG_MEMBER)
        seg = pydicom.dcmread(io.BytesIO(seg_data))
        referenced = {
            item.ReferencedSOPInstanceUID
            for series in seg.ReferencedSeriesSequence
            for item in series.ReferencedInstanceSequence
        }
        pets = {}
        for name in zf.namelist():
            if "/PET/" in name and name.endswith(".dcm"):
                head = pydicom.dcmread(zf.open(name), stop_before_pixels=True)
                if head.SOPInstanceUID in referenced:
                    pets[name] = zf.read(name)
                if len(pets) == 3:
                    break
    new_seg = pydicom.dcmread(io.BytesIO(deid.deidentify_file(seg_data, deidentifier)[0]))
    new_pets = [pydicom.dcmread(io.BytesIO(deid.deidentify_file(data, deidentifier)[0])) for data in pets.values()]
    new_refs = {
        item.ReferencedSOPInstanceUID for s in new_seg.ReferencedSeriesSequence for item in s.ReferencedInstanceSequence
    }
    assert pets and {pet.SOPInstanceUID for pet in new_pets} <= new_refs
    assert not new_refs & referenced
    assert {pet.FrameOfReferenceUID for pet in new_pets} == {new_seg.FrameOfReferenceUID}
    assert new_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == new_pets[0].SeriesInstanceUID
    assert new_seg.StudyInstanceUID == new_pets[0].StudyInstanceUID
    sources = {
        source.ReferencedSOPInstanceUID
        for frame in new_seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.get("DerivationImageSequence", [])
        for source in derivation.SourceImageSequence
    }
    assert sources and sources <= new_refs
    assert_no_phi(deid.deidentify_file(seg_data, deidentifier)[0], [str(seg.PatientName), str(seg.PatientID)])


@pytest.mark.parametrize("case", ["mr", "ct", "sr"])
def test_real_shared_files_come_out_valid(case):
    if case == "sr":
        data = [shared_path("non-image-sr-seg-rwvm-dcmqi", "sr.dcm").read_bytes()]
    else:
        archive = {"mr": ("mr-brain-4series-fnndsc", "adi_brain_MR_4series.zip")}.get(
            case, ("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
        )
        with zipfile.ZipFile(shared_path(*archive)) as zf:
            data = [zf.read(n) for n in sorted(n for n in zf.namelist() if n.endswith(".dcm"))[:3]]
    deidentifier = deid.Deidentifier(key=KEY, options=ALL_OPTIONS)
    for original_bytes in data:
        original = pydicom.dcmread(io.BytesIO(original_bytes))
        out, _, reason = deid.deidentify_file(original_bytes, deidentifier)
        assert reason is None, reason
        ds = pydicom.dcmread(io.BytesIO(out))
        assert ds.SOPClassUID == original.SOPClassUID and ds.PatientIdentityRemoved == "YES"
        identifiers = (str(original.get("PatientName", "")), str(original.get("PatientID", "")))
        assert_no_phi(out, [v for v in identifiers if len(v) > 3])
        if "PixelData" in original:
            assert np.array_equal(ds.pixel_array, original.pixel_array)


# --- through the API and the pages -------------------------------------------------------


@pytest.fixture
def phi_study(user, tmp_path, eager_celery):
    """A study of three CT slices carrying PHI and one ultrasound image (left out), ingested."""
    from studies.models import Study
    from tests.conftest import ingest_zip

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    files = {}
    for number in range(3):
        pixels = (np.arange(64 * 64, dtype=np.int16).reshape(64, 64) + number * 10).astype(np.int16)
        ds = phi_dataset(
            pixels,
            study_uid=study,
            series_uid=series,
            FrameOfReferenceUID=frame,
            InstanceNumber=number + 1,
            ImagePositionPatient=[0, 0, number * 2.0],
            SliceThickness="2",
        )
        files[f"ct{number}.dcm"] = file_bytes(ds)
    us = phi_dataset(np.zeros((16, 16), dtype=np.uint8), modality="US", study_uid=study, SeriesNumber=2)
    files["us.dcm"] = file_bytes(us)
    upload = ingest_zip(user, make_zip(tmp_path / "phi.zip", files))
    assert upload.status == "done", upload.error
    return Study.objects.get(owner=user)


def zip_members(response) -> dict[str, bytes]:
    data = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.mark.django_db(transaction=True)
def test_deidentified_archive_has_no_phi_lists_what_was_left_out_and_is_audited(api, phi_study):
    from audit.models import AuditEvent

    response = api.get(f"/api/studies/{phi_study.pk}/archive.zip?deidentify=basic&options=retain_dates")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "anonymised" in response["Content-Disposition"]
    members = zip_members(response)
    dicoms = {name: data for name, data in members.items() if name.endswith(".dcm")}
    assert len(dicoms) == 3
    readme = members["DEIDENTIFICATION.txt"].decode()
    assert "3 de-identified, 1 left out" in readme and "file 4: US Secondary Capture" in readme
    assert_no_phi(b"".join(members.values()), [*PHI.values(), PRIVATE_PHI, NESTED_PHI, phi_study.study_instance_uid])
    series_uids = {pydicom.dcmread(io.BytesIO(d)).SeriesInstanceUID for d in dicoms.values()}
    assert len(series_uids) == 1 and all(name.startswith(next(iter(series_uids))) for name in dicoms)
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEID_EXPORT)
    assert event.detail["files"] == 3 and event.detail["left_out"] == 1
    assert event.detail["options"] == ["retain_dates"] and event.outcome == "success"
    assert "Smithereens" not in str(event.detail)


@pytest.fixture
def row_study(user):
    """A study row without files (the refusals below answer before any file is read)."""
    from tests.factories import make_study

    return make_study(user, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["deidentify=full", "deidentify=basic&options=retain_dates,nope", "options=retain_dates", "deidentify="]
)
def test_bad_deidentify_parameters_answer_400_with_detail(api, row_study, query):
    response = api.get(f"/api/studies/{row_study.pk}/archive.zip?{query}")
    assert response.status_code == 400 and response.json()["detail"]


@pytest.mark.django_db
def test_someone_else_cannot_export_or_copy_a_study_they_cannot_see(row_study, other_user):
    from tests.conftest import api_client_for

    client = api_client_for(other_user)
    assert client.get(f"/api/studies/{row_study.pk}/archive.zip?deidentify=basic").status_code == 404
    assert client.post(f"/api/studies/{row_study.pk}/anonymise/", {}, format="json").status_code == 404
    assert client.post(f"/api/studies/{row_study.pk}/anonymise/", {"options": ["x"]}, format="json").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{"options": ["keep_everything"]}, {"options": 5}, ["retain_dates"], {}])
def test_anonymised_copy_refuses_bad_options_and_nothing_to_copy(api, row_study, body):
    response = api.post(f"/api/studies/{row_study.pk}/anonymise/", body, format="json")
    assert response.status_code == 400 and response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_anonymised_copy_over_the_upload_limit_is_refused(api, phi_study, settings):
    from studies.models import Upload

    uploads = Upload.objects.count()
    settings.MAX_UPLOAD_BYTES = 1000  # the study's files are larger: a copy would bypass the limit
    response = api.post(f"/api/studies/{phi_study.pk}/anonymise/", {}, format="json")
    assert response.status_code == 400 and "too large to copy" in response.json()["detail"]
    assert Upload.objects.count() == uploads


@pytest.mark.django_db(transaction=True)
def test_anonymised_copy_is_a_new_study_of_the_user_that_renders(api, phi_study, user):
    from audit.models import AuditEvent
    from studies.models import Study, Upload

    response = api.post(
        f"/api/studies/{phi_study.pk}/anonymise/", {"options": ["retain_patient", "retain_dates"]}, format="json"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["files"] == 3 and len(body["left_out"]) == 1
    assert Upload.objects.get(pk=body["upload"]["id"]).status == "done"
    copy = Study.objects.exclude(pk=phi_study.pk).get()
    assert copy.owner == user and copy.study_instance_uid != phi_study.study_instance_uid
    assert copy.num_instances == 3 and copy.patient.name.startswith("ANON") and copy.patient.sex == "F"
    assert copy.patient.patient_id != phi_study.patient.patient_id and not copy.accession_number
    series = copy.series.get()
    assert series.num_instances == 3 and series.is_volume
    image = api.get(f"/api/series/{series.pk}/planes/axial/1.png", follow=True)
    assert image.status_code == 200 and b"".join(image.streaming_content).startswith(b"\x89PNG")
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEID_COPY)
    assert event.detail["upload_id"] == body["upload"]["id"] and event.detail["left_out"] == 1


@pytest.mark.django_db(transaction=True)
def test_study_page_offers_both_and_its_form_downloads_or_copies(client, user, phi_study):
    from studies.models import Study

    client.login(username=user.username, password=PASSWORD)
    page = client.get(f"/studies/{phi_study.pk}/").content.decode()
    assert "Download anonymised" in page and "Make an anonymised copy" in page
    url = f"/studies/{phi_study.pk}/anonymise/"
    response = client.post(url, {"do": "download", "options": ["retain_dates", "clean_descriptors"]})
    assert response.status_code == 302
    assert response["Location"].endswith(
        f"/api/studies/{phi_study.pk}/archive.zip?deidentify=basic&options=retain_dates%2Cclean_descriptors"
    )
    assert client.get(response["Location"]).status_code == 200
    response = client.post(url, {"do": "copy"})
    assert response.status_code == 302 and response["Location"].endswith("/upload/")
    assert Study.objects.count() == 2
    assert client.post(url, {"do": "copy", "options": ["nope"]}).status_code == 302  # back with a message
    assert client.post(url, {"options": ["retain_dates"]}).status_code == 302  # neither button: nothing done
    assert Study.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_real_ct_copy_round_trips_through_our_ingest(api, small_ct):
    from studies.models import Series, Study

    response = api.post(f"/api/studies/{small_ct.study_id}/anonymise/", {"options": "retain_dates"}, format="json")
    assert response.status_code == 202 and response.json()["files"] == 8
    copy = Study.objects.exclude(pk=small_ct.study_id).get()
    series = Series.objects.get(study=copy)
    assert series.num_instances == small_ct.num_instances == 8 and series.is_volume
    assert series.planes["axial"]["count"] == small_ct.planes["axial"]["count"]
    assert copy.study_date and copy.study_date != small_ct.study.study_date  # moved, not removed
    assert copy.patient.name != small_ct.study.patient.name
    image = api.get(f"/api/series/{series.pk}/planes/coronal/3.png", follow=True)
    assert image.status_code == 200 and b"".join(image.streaming_content).startswith(b"\x89PNG")


@pytest.mark.django_db
def test_series_archive_deidentifies_too_and_never_answers_originals_to_a_bad_request(api, row_study):
    from studies.imaging.deid import OPTION_NAMES

    series = row_study.series.get()
    url = f"/api/series/{series.pk}/archive.zip"
    assert api.get(f"{url}?deidentify=basic&options=nope").status_code == 400
    assert api.get(f"{url}?options={OPTION_NAMES[0]}").status_code == 400
    response = api.get(f"{url}?deidentify=basic")
    assert response.status_code == 200 and "anonymised" in response["Content-Disposition"]
    assert list(zip_members(response)) == ["DEIDENTIFICATION.txt"]
