"""Values, not just pixels: the probe and ROI endpoints on the shared CT and PET, their access
rules, audit and bad input."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pydicom
import pytest
from django.test import override_settings
from django.urls import reverse

from audit.models import AuditEvent
from studies import storage
from studies.imaging.planes import Plane
from studies.models import Series
from studies.services import image_source
from studies.services.sharing import share_add
from tests import dicomgen
from tests.browsing import CT_ZIP
from tests.conftest import api_client_for, ingest_zip, make_zip, shared_path, zip_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_rendering(monkeypatch):
    """Values come from the decoded series (its volume or frames), not from rendered images: skip
    rendering them, which would be most of these tests' time."""
    from studies.services import rendering

    monkeypatch.setattr(rendering, "queue_series", lambda series_id, version: None)


PET_ZIP = ("pt-wholebody-qinheadneck-fnndsc", "QIN-HEADNECK-01-0024_PET_299slices_SEG.zip")


def probe(client, series, plane, index, **query):
    return client.get(reverse("api:plane-probe", args=[series.pk, plane, index]), query)


def roi(client, series, plane, index, **query):
    return client.get(reverse("api:plane-roi", args=[series.pk, plane, index]), query)


def ct_slices(first: int, last: int) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(shared_path(*CT_ZIP)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        z = {n: float(pydicom.dcmread(zf.open(n), stop_before_pixels=True).ImagePositionPatient[2]) for n in names}
        names.sort(key=z.get)
        return [(name, zf.read(name)) for name in names[first:last]]


def hu(data: bytes) -> tuple[np.ndarray, pydicom.Dataset]:
    ds = pydicom.dcmread(io.BytesIO(data))
    return ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept), ds


def test_ct_values_are_hounsfield_units_of_the_stored_slices(api, user, tmp_path, eager_celery):
    slices = ct_slices(100, 108)
    series = ingest_zip(user, make_zip(tmp_path / "ct.zip", dict(slices))).series.get()
    axial = Plane.from_dict("axial", series.planes["axial"])
    assert api.get(reverse("api:series-detail", args=[series.pk])).json()["values"] == {
        "unit": "HU",
        "suv_factor": None,
        "suv_problem": None,
    }
    # axial image 0 is the most superior slice; its pixels are the file's, rows and columns alike
    values, ds = hu(slices[-1][1])
    assert axial.world(0, 0, 0)[2] == pytest.approx(float(ds.ImagePositionPatient[2]))

    air = roi(api, series, "axial", 0, shape="rectangle", x0=150, y0=10, x1=350, y1=50).json()
    assert air["unit"] == "HU" and air["n"] == 201 * 41 and air["clipped"] is False
    assert -1010 < air["mean"] < -970 and air["max"] <= -800
    assert air["area_mm2"] == pytest.approx(200 * 40 * 0.78125**2)

    # a region of soft tissue and lung: the very values of the file, not of the PNG
    box = roi(api, series, "axial", 0, shape="rectangle", x0=100, y0=200, x1=219, y1=299).json()
    block = values[200:300, 100:220]
    assert box["n"] == block.size
    assert box["mean"] == pytest.approx(block.mean(), abs=1e-3)
    assert box["sd"] == pytest.approx(block.std(), abs=1e-3)
    assert (box["min"], box["max"]) == (block.min(), block.max())
    ellipse = roi(api, series, "axial", 0, shape="ellipse", x0=100, y0=200, x1=219, y1=299).json()
    yy, xx = np.mgrid[200:300, 100:220]
    inside = ((xx - 159.5) / 59.5) ** 2 + ((yy - 249.5) / 49.5) ** 2 <= 1
    assert ellipse["n"] == int(inside.sum()) and ellipse["mean"] == pytest.approx(block[inside].mean(), abs=1e-3)
    assert ellipse["area_mm2"] == pytest.approx(math.pi * 59.5 * 49.5 * 0.78125**2, rel=1e-6)

    answer = probe(api, series, "axial", 0, x=230, y=190).json()
    assert answer["value"] == values[190, 230] and answer["unit"] == "HU"
    position = [float(v) for v in ds.ImagePositionPatient]
    expected = [position[0] + 230 * 0.78125, position[1] + 190 * 0.78125, position[2]]
    assert answer["position_mm"] == pytest.approx(expected, abs=1e-3)
    assert probe(api, series, "axial", 0, x=250, y=20).json()["value"] < -900  # air in front of the chest

    # the same voxel on every plane: one value, one position
    k, row, col = 3, 260, 190  # slice 3 from the top
    point = axial.world(k, row, col)
    coronal = Plane.from_dict("coronal", series.planes["coronal"])
    sagittal = Plane.from_dict("sagittal", series.planes["sagittal"])
    answers = [probe(api, series, "axial", k, x=col, y=row).json()]
    for grid in (coronal, sagittal):
        index, y, x = np.linalg.solve(
            np.column_stack(
                [
                    np.asarray(grid.step_dir) * grid.step_mm,
                    np.asarray(grid.y_dir) * grid.pixel_mm,
                    np.asarray(grid.x_dir) * grid.pixel_mm,
                ]
            ),
            point - np.asarray(grid.origin),
        )
        assert index == pytest.approx(round(index), abs=1e-6)
        answers.append(probe(api, series, grid.name, int(round(index)), x=x, y=y).json())
    expected = hu(slices[-1 - k][1])[0][row, col]
    assert [a["value"] for a in answers] == [expected] * 3
    for a in answers:
        assert a["position_mm"] == pytest.approx(list(point), abs=1e-3)

    views = AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, object_id=str(series.pk))
    assert views.count() == 1  # image access, once per user and series per AUDIT_IMAGE_WINDOW


def pet_members(first: int, last: int) -> dict[str, bytes]:
    with zipfile.ZipFile(shared_path(*PET_ZIP)) as zf:
        names = [n for n in zf.namelist() if "/PET/" in n and n.endswith(".dcm")]
        z = {n: float(pydicom.dcmread(zf.open(n), stop_before_pixels=True).ImagePositionPatient[2]) for n in names}
        names.sort(key=z.get)
        return {name: zf.read(name) for name in names[first:last]}


def test_pet_values_are_suv_body_weight(api, user, tmp_path, eager_celery):
    members = pet_members(236, 260)  # 24 slices of the neck and head
    series = ingest_zip(user, make_zip(tmp_path / "pet.zip", members)).series.get()
    ds = pydicom.dcmread(io.BytesIO(next(iter(members.values()))))
    # the header as a reader checks it: BQML, corrected to the scan start, the series earlier than the acquisition
    assert (ds.Units, ds.DecayCorrection, ds.PatientWeight) == ("BQML", "START", 66.2)
    assert {"ATTN", "DECY"} <= set(ds.CorrectedImage) and ds.SeriesTime < ds.AcquisitionTime
    drug = ds.RadiopharmaceuticalInformationSequence[0]
    assert (drug.RadiopharmaceuticalStartTime, float(drug.RadionuclideTotalDose), float(drug.RadionuclideHalfLife)) == (
        "113900.000000",
        381470000.0,
        6586.2,
    )
    # by hand: 11:39:00 injection, 13:02:44.678 series: 5024.678 s of decay of 381.47 MBq
    factor = 66.2 * 1000 / (381.47e6 * 2 ** (-5024.678 / 6586.2))
    values = api.get(reverse("api:series-detail", args=[series.pk])).json()["values"]
    assert values["unit"] == "SUVbw" and values["suv_problem"] is None
    assert values["suv_factor"] == pytest.approx(factor, rel=1e-9) == pytest.approx(2.9448e-4, rel=1e-4)

    axial = Plane.from_dict("axial", series.planes["axial"])
    middle = axial.count // 2
    whole = roi(api, series, "axial", middle, shape="rectangle", x0=0, y0=0, x1=127, y1=127).json()
    assert whole["unit"] == "SUVbw" and whole["n"] == 128 * 128 and whole["max"] > 2
    assert whole["area_mm2"] == pytest.approx(127 * 127 * 3.5378182**2, rel=1e-6)  # corners on pixel centres
    # the same slice from its file, by hand
    by_z = {round(float(pydicom.dcmread(io.BytesIO(b)).ImagePositionPatient[2]), 3): b for b in members.values()}
    file = pydicom.dcmread(io.BytesIO(by_z[round(float(axial.world(middle, 0, 0)[2]), 3)]))
    suv = (file.pixel_array * float(file.RescaleSlope) + float(file.RescaleIntercept)) * factor
    assert whole["max"] == pytest.approx(suv.max(), rel=1e-5) and whole["mean"] == pytest.approx(suv.mean(), rel=1e-5)
    row, col = np.unravel_index(np.argmax(suv), suv.shape)
    hot = probe(api, series, "axial", middle, x=col, y=row).json()
    assert hot["value"] == pytest.approx(suv[row, col], rel=1e-5) and hot["unit"] == "SUVbw"
    body = suv[suv > 0.3]
    assert 0.5 < np.median(body) < 3  # background uptake of the body
    background = roi(api, series, "axial", middle, shape="ellipse", x0=50, y0=50, x1=60, y1=60).json()
    assert background["n"] > 50 and 0 <= background["mean"] < 3


def test_a_pet_without_dose_answers_its_stored_unit_and_why(api, user, tmp_path, eager_celery):
    voxels = np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8)
    dicomgen.write_volume(
        tmp_path / "pet",
        voxels,
        modality="PT",
        spacing=(4.0, 4.0),
        slice_step=4.0,
        rescale=(2.0, 0.0),
        Units="BQML",
        DecayCorrection="START",
        CorrectedImage=["ATTN", "DECY"],
        PatientWeight=70,
        SeriesDate="20240102",
        SeriesTime="101500",
    )
    series = ingest_zip(user, zip_folder(tmp_path / "pet", tmp_path / "pet.zip")).series.get()
    answer = probe(api, series, "axial", 0, x=3, y=2).json()
    assert answer["unit"] == "BQML" and answer["value"] == 2 * voxels[-1, 2, 3]
    assert "injected dose" in answer["suv_problem"]
    stats = roi(api, series, "axial", 0, shape="rectangle", x0=-3, y0=-3, x1=1, y1=1).json()
    assert stats["clipped"] is True and stats["n"] == 4 and stats["unit"] == "BQML"
    assert stats["area_mm2"] == pytest.approx(1.5 * 1.5 * 16)  # the part on the image


def test_values_follow_the_access_rules(user, other_user, tmp_path, eager_celery, settings):
    settings.SHARE_WITH_ANY_USER = True
    voxels = np.full((3, 6, 6), 40, dtype=np.int16)
    dicomgen.write_volume(tmp_path / "ct", voxels, spacing=(1.0, 1.0), rescale=(1.0, -1024.0))
    series = ingest_zip(user, zip_folder(tmp_path / "ct", tmp_path / "ct.zip")).series.get()
    stranger = api_client_for(other_user)
    for answer in (
        probe(stranger, series, "axial", 0, x=1, y=1),
        roi(stranger, series, "axial", 0, shape="ellipse", x0=0, y0=0, x1=3, y1=3),
    ):
        assert answer.status_code == 404 and "detail" in answer.json()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, user=other_user).exists()
    share_add(study=series.study, by=user, username=other_user.username)
    answer = probe(stranger, series, "axial", 0, x=1, y=1)
    assert answer.status_code == 200 and answer.json()["value"] == 40 - 1024
    assert AuditEvent.objects.filter(action=AuditEvent.Action.IMAGES_VIEW, user=other_user).count() == 1
    assert probe(api_client_for(user), series, "axial", 0, x=1, y=1).status_code == 200
    from rest_framework.test import APIClient

    assert probe(APIClient(), series, "axial", 0, x=1, y=1).status_code in (401, 403)


def test_bad_input_is_a_clear_4xx_never_a_500(api, user, tmp_path, eager_celery):
    voxels = np.full((3, 6, 8), 100, dtype=np.int16)
    dicomgen.write_volume(tmp_path / "ct", voxels, spacing=(1.0, 1.0), rescale=(1.0, -1024.0))
    series = ingest_zip(user, zip_folder(tmp_path / "ct", tmp_path / "ct.zip")).series.get()
    cases = [
        (probe, {}, 400, "Give x"),
        (probe, {"x": "1"}, 400, "Give y"),
        (probe, {"x": "one", "y": "1"}, 400, "must be a number"),
        (probe, {"x": "nan", "y": "1"}, 400, "finite"),
        (probe, {"x": "8", "y": "1"}, 400, "outside the image"),
        (probe, {"x": "-0.6", "y": "1"}, 400, "outside the image"),
        (roi, {"shape": "circle", "x0": 0, "y0": 0, "x1": 1, "y1": 1}, 400, "shape must be"),
        (roi, {"shape": "ellipse", "x0": 0, "y0": 0, "x1": 1}, 400, "Give y1"),
        (roi, {"shape": "ellipse", "x0": 2, "y0": 0, "x1": 2, "y1": 4}, 400, "no area"),
        (roi, {"shape": "rectangle", "x0": 20, "y0": 20, "x1": 30, "y1": 30}, 400, "entirely outside"),
        (roi, {"shape": "ellipse", "x0": 0.1, "y0": 0.1, "x1": 0.3, "y1": 0.3}, 400, "no pixel centre"),
    ]
    for view, query, code, words in cases:
        answer = view(api, series, "axial", 0, **query)
        assert (answer.status_code, words in answer.json()["detail"]) == (code, True), (query, answer.json())
    for plane, index, words in (("oblique", 0, "no 'oblique' plane"), ("axial", 3, "the axial plane has 3 images")):
        answer = probe(api, series, plane, index, x=1, y=1)
        assert answer.status_code == 404 and words in answer.json()["detail"]
    assert probe(api, series, "axial", 99999999999999999999, x=1, y=1).status_code == 404

    # not decoded yet (its source is not there): 503 and Retry-After, as images do
    storage.default().delete(storage.manifest_name(series.pk, series.render_version))
    image_source.clear()
    answer = probe(api, series, "axial", 0, x=1, y=1)
    assert answer.status_code == 503 and answer["Retry-After"] == "1" and "prepared" in answer.json()["detail"]


def test_colour_stacks_have_no_value_and_grey_stacks_map_their_shown_pixels(api, user, tmp_path, eager_celery):
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    dicomgen.write_image(tmp_path / "rgb" / "a.dcm", rgb, modality="US")
    series = ingest_zip(user, zip_folder(tmp_path / "rgb", tmp_path / "rgb.zip")).series.get()
    answer = probe(api, series, "stack", 0, x=1, y=1)
    assert answer.status_code == 400 and "colour" in answer.json()["detail"]

    # pixels twice as tall as wide: shown 2x taller, the probe maps back onto the stored pixel
    grey = np.arange(4 * 6, dtype=np.int16).reshape(4, 6)
    dicomgen.write_image(
        tmp_path / "mr" / "a.dcm",
        grey,
        modality="MR",
        spacing=(2.0, 1.0),
        position=(10.0, 20.0, 30.0),
        orientation=(1, 0, 0, 0, 1, 0),
    )
    upload = ingest_zip(user, zip_folder(tmp_path / "mr", tmp_path / "mr.zip"))
    series = upload.series.get()
    assert series.planes["stack"]["height"] == 8 and series.planes["stack"]["width"] == 6
    answer = probe(api, series, "stack", 0, x=4, y=5).json()  # shown row 5 = stored row 2.25
    assert answer["value"] == grey[2, 4] and answer["unit"] == ""
    assert answer["position_mm"] == pytest.approx([14.0, 24.5, 30.0])
    stats = roi(api, series, "stack", 0, shape="rectangle", x0=-0.5, y0=-0.5, x1=5.5, y1=7.5).json()
    assert stats["n"] == 24 and stats["mean"] == grey.mean() and stats["clipped"] is False
    assert stats["area_mm2"] == pytest.approx(6 * 4 * 2.0)


@override_settings(AUDIT_IMAGE_WINDOW=0)
def test_series_built_before_values_fall_back_by_modality(api, user, tmp_path, eager_celery):
    voxels = np.full((3, 4, 4), 7, dtype=np.int16)
    dicomgen.write_volume(tmp_path / "pt", voxels, modality="PT", spacing=(1.0, 1.0))
    series = ingest_zip(user, zip_folder(tmp_path / "pt", tmp_path / "pt.zip")).series.get()
    layout = dict(series.layout)
    del layout["values"]
    Series.objects.filter(pk=series.pk).update(layout=layout)
    name = storage.manifest_name(series.pk, series.render_version)
    manifest = storage.read_json(name)
    del manifest["values"]
    storage.save_json(name, manifest)
    image_source.clear()
    values = api.get(reverse("api:series-detail", args=[series.pk])).json()["values"]
    assert values["suv_factor"] is None and "re-run its upload" in values["suv_problem"]
    answer = probe(api, series, "axial", 0, x=1, y=1).json()
    assert answer["value"] == 7 and "re-run its upload" in answer["suv_problem"]
