"""The tag browser: which stored file an image comes from, and how its header is listed."""

from __future__ import annotations

import zipfile

import numpy as np
import pydicom
import pytest
from django.urls import reverse
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from audit.models import AuditEvent
from studies.imaging.planes import Plane
from studies.models import Series, Upload
from tests.conftest import ingest_zip, make_zip, shared_path, zip_folder
from viewer.dicom_tags import Limits, read_header_rows, source_frame
from viewer.presenters import native_plane, person_name

# --- reading headers (no database) ------------------------------------------------------------


def write_file(path, ds: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)


def sample_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Curie^Marie"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M"]
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImageComments = "x" * 1000
    ds.add_new(0x00291010, "OB", b"\x01\x02" * 500)  # private binary data
    frames = []
    for number in range(3):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0, 0, float(number * 5)]
        item.PlanePositionSequence = Sequence([position])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 2, 2, 16, 16, 15
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.PixelData = np.zeros((2, 2), np.uint16).tobytes()
    return ds


def test_header_rows_show_meta_and_data_set_but_never_pixel_data(tmp_path):
    path = tmp_path / "x.dcm"
    write_file(path, sample_dataset())
    rows, truncated = read_header_rows(path)
    tags = [row["tag"] for row in rows]
    assert "0002,0010" in tags and "7FE0,0010" not in tags
    by_keyword = {row["keyword"]: row for row in rows if row["depth"] == 0}
    assert by_keyword["PatientName"]["value"] == "Curie^Marie"
    assert by_keyword["ImageType"]["value"] == "ORIGINAL\\PRIMARY\\M"
    assert by_keyword["PixelSpacing"]["vr"] == "DS"
    assert len(by_keyword["ImageComments"]["value"]) == 300 and by_keyword["ImageComments"]["value"].endswith("…")
    private = next(row for row in rows if row["tag"] == "0029,1010")
    assert private["value"] == "(1000 bytes)"
    assert not truncated


def test_a_multi_frame_header_lists_only_the_current_frames_functional_groups(tmp_path):
    path = tmp_path / "x.dcm"
    write_file(path, sample_dataset())
    rows, _ = read_header_rows(path, frame=1)
    positions = [row["value"] for row in rows if row["keyword"] == "ImagePositionPatient"]
    assert positions == ["0.0\\0.0\\5.0"]
    assert any(row["name"] == "Item 2 (this frame)" and row["depth"] == 1 for row in rows)
    nested = next(row for row in rows if row["keyword"] == "ImagePositionPatient")
    assert nested["depth"] == 4  # sequence > item > sequence > item > element
    all_rows, _ = read_header_rows(path)
    assert [row["value"] for row in all_rows if row["keyword"] == "ImagePositionPatient"] == [
        "0.0\\0.0\\0.0",
        "0.0\\0.0\\5.0",
        "0.0\\0.0\\10.0",
    ]


def test_limits_shorten_long_headers_and_say_so(tmp_path):
    path = tmp_path / "x.dcm"
    write_file(path, sample_dataset())
    rows, truncated = read_header_rows(path, limits=Limits(max_rows=5))
    assert len(rows) == 5 and truncated
    _, truncated = read_header_rows(path, limits=Limits(max_items=1))
    assert truncated


def test_person_names_read_family_name_first():
    assert person_name("Curie^Marie^Salomea") == "Curie, Marie Salomea"
    assert person_name("Curie") == "Curie"
    assert person_name("") == ""
    assert person_name("Yamada^Tarou=山田^太郎") == "Yamada, Tarou"


def test_a_volume_opens_in_the_plane_closest_to_its_acquisition():
    planes = {
        "axial": {"step_dir": [0, 0, -1]},
        "coronal": {"step_dir": [0, 1, 0]},
        "sagittal": {"step_dir": [1, 0, 0]},
    }
    sagittal_scan = Series(planes=planes, layout={"volume": {"stack_dir": [0.98, 0.17, 0.0]}})
    axial_scan = Series(planes=planes, layout={"volume": {"stack_dir": [0, 0, 1]}})
    assert native_plane(sagittal_scan) == "sagittal"
    assert native_plane(axial_scan) == "axial"
    assert native_plane(Series(planes={"stack": {"count": 3}})) == "stack"


# --- the endpoint on real data --------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ct_volume(user, tmp_path, eager_celery) -> Series:
    """Twelve neighbouring slices of the LIDC chest CT."""
    source = shared_path("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
    with zipfile.ZipFile(source) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        z = {n: float(pydicom.dcmread(zf.open(n), stop_before_pixels=True).ImagePositionPatient[2]) for n in names}
        names.sort(key=z.get)
        members = {name: zf.read(name) for name in names[130:142]}
    upload = ingest_zip(user, make_zip(tmp_path / "ct12.zip", members))
    assert upload.status == Upload.Status.DONE, upload.error
    return Series.objects.get(study__owner=user)


def tags(client, series, **query):
    return client.get(reverse("viewer:image-tags", args=[series.pk]), query)


def value(body, keyword):
    return next(row["value"] for row in body["tags"] if row["keyword"] == keyword and row["depth"] == 0)


@pytestmark_db
def test_an_axial_image_shows_the_tags_of_the_slice_at_its_position(client, user, ct_volume):
    client.force_login(user)
    axial = Plane.from_dict("axial", ct_volume.planes["axial"])
    for index in (0, 5, axial.count - 1):
        body = tags(client, ct_volume, plane="axial", index=index).json()
        assert body["reconstruction"] is False and body["distance_mm"] == pytest.approx(0, abs=1e-3)
        z_mm = float(value(body, "ImagePositionPatient").split("\\")[2])
        assert z_mm == pytest.approx(axial.world(index, 0, 0)[2], abs=1e-3)
        assert not any(row["tag"] == "7FE0,0010" for row in body["tags"])
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, object_id=str(ct_volume.pk)).count() == 1


@pytestmark_db
def test_a_reconstructed_image_says_so_and_shows_the_slice_nearest_the_point(client, user, ct_volume):
    client.force_login(user)
    coronal = Plane.from_dict("coronal", ct_volume.planes["coronal"])
    for row in (0.0, 4.0, float(coronal.height - 1)):
        body = tags(client, ct_volume, plane="coronal", index=coronal.count // 2, row=row, col=100).json()
        assert body["reconstruction"] is True
        z_mm = float(value(body, "ImagePositionPatient").split("\\")[2])
        assert z_mm == pytest.approx(coronal.world(0, row, 0)[2], abs=0.5 * 1.0 + 1e-3)  # slices 1 mm apart
    centre = tags(client, ct_volume, plane="sagittal", index=3).json()
    assert centre["reconstruction"] is True and centre["instance"]["id"]


@pytestmark_db
def test_each_stack_image_shows_its_own_file(client, user, tmp_path, eager_celery):
    upload = ingest_zip(user, zip_folder(shared_path("mr-transfer-syntaxes-dcmqats"), tmp_path / "ts.zip"))
    series = upload.series.get()
    client.force_login(user)
    uids = dict(series.instances.values_list("pk", "sop_instance_uid"))
    for index, (instance_pk, _) in enumerate(series.layout["frames"]):
        body = tags(client, series, plane="stack", index=index).json()
        assert body["instance"]["id"] == instance_pk and body["reconstruction"] is False
        assert value(body, "SOPInstanceUID") == uids[instance_pk]
    assert len(uids) == len(series.layout["frames"]) == 9


@pytestmark_db
def test_bad_questions_about_tags_answer_400_or_404(client, user, ct_volume):
    client.force_login(user)
    assert tags(client, ct_volume, plane="axial").status_code == 400
    assert tags(client, ct_volume, plane="axial", index="x").status_code == 400
    assert tags(client, ct_volume, plane="oblique", index=0).status_code == 400
    assert tags(client, ct_volume, plane="axial", index=10_000).status_code == 404


def test_source_frame_of_a_stack_follows_the_display_order():
    layout = {"kind": "stack", "frames": [[7, 0], [7, 1], [9, 0]]}
    planes = {"stack": {"count": 3, "width": 4, "height": 4}}
    sources = [source_frame(layout, planes, "stack", i) for i in range(3)]
    assert [(s.instance_pk, s.frame) for s in sources] == [(7, 0), (7, 1), (9, 0)]
    with pytest.raises(IndexError):
        source_frame(layout, planes, "stack", 3)
    with pytest.raises(KeyError):
        source_frame(layout, planes, "axial", 0)
