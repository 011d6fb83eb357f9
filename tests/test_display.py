"""Display on the server: slab images (MIP, MinIP, average) through the signed image URLs and the
API, window presets per modality stored with the series, and the acquired plane of an oblique
series, with generated volumes and the shared MR and PET."""

from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pydicom
import pytest
from django.test import Client

from studies import scratch, storage
from studies.imaging.render import Window, to_display
from studies.imaging.slabs import Slab
from studies.models import Series
from studies.services import image_source
from tests import dicomgen
from tests.conftest import ingest_zip, make_zip, shared_path

pytestmark = pytest.mark.django_db(transaction=True)

WINDOW = Window(40, 400)


@pytest.fixture
def ct(user, tmp_path, eager_celery):
    """A generated 9-slice CT of 24 x 20 random values, 1 mm isotropic, ingested: (series, voxels)."""
    voxels = np.random.default_rng(5).integers(-300, 400, size=(9, 24, 20)).astype(np.int16)
    paths = dicomgen.write_volume(tmp_path / "ct", voxels, Modality="CT", WindowCenter=40, WindowWidth=400)
    ingest_zip(user, make_zip(tmp_path / "ct.zip", {p.name: p for p in paths}))
    series = Series.objects.get(study__owner=user)
    assert series.render_status == Series.Render.DONE, series.render_error
    return series, voxels


def png(response) -> np.ndarray:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def template(api, series, plane="axial") -> str:
    return api.get(f"/api/series/{series.pk}/").json()["planes"][plane]["url"]


def test_a_slab_url_answers_the_reduction_of_the_slices_and_is_cached(api, ct, monkeypatch):
    series, voxels = ct
    axial = template(api, series)  # axial index i is slice 8 - i (index 0 the most superior)
    anyone = Client()
    for mode, reduce in (("mip", np.max), ("minip", np.min), ("avg", np.mean)):
        response = anyone.get(axial.replace("{index}", "4") + f"?mode={mode}&slab=3")  # slices 3, 4, 5
        assert response.status_code == 200 and response["Content-Type"] == "image/png", response.content
        want = to_display(np.rint(reduce(voxels[3:6].astype(np.float64), axis=0)).astype(np.int16), WINDOW)
        np.testing.assert_array_equal(png(response), want, err_msg=mode)
    at_ends = anyone.get(axial.replace("{index}", "0") + "?wc=100&ww=600&mode=mip&slab=5")  # clipped: 6, 7, 8
    np.testing.assert_array_equal(png(at_ends), to_display(voxels[6:].max(axis=0), Window(100, 600)))
    coronal = anyone.get(template(api, series, "coronal").replace("{index}", "10") + "?mode=mip&slab=4.5")
    np.testing.assert_array_equal(png(coronal), to_display(voxels[::-1, 8:13, :].max(axis=1), WINDOW))
    plain = png(anyone.get(axial.replace("{index}", "4")))
    assert not np.array_equal(plain, png(anyone.get(axial.replace("{index}", "4") + "?mode=mip&slab=3")))

    cached = storage.window_image_name(series.pk, series.render_version, "axial", 4, None, Slab("mip", 3.0))
    assert scratch.get(cached) is not None

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(image_source.Source, "display", no_rendering)
    again = anyone.get(axial.replace("{index}", "4") + "?mode=mip&slab=3")
    assert again.status_code == 200 and png(again).shape == (24, 20)


def test_slabs_that_cannot_be_made_are_400_and_a_bad_signature_403_first(api, ct, user, tmp_path):
    series, _ = ct
    url = template(api, series).replace("{index}", "4")
    for query, words in (
        ("mode=mip", "Give slab"),
        ("slab=5", "Give mode"),
        ("mode=max&slab=5", "Unknown mode"),
        ("mode=mip&slab=0", "positive"),
        ("mode=mip&slab=-2", "positive"),
        ("mode=avg&slab=thick", "number of millimetres"),
        ("mode=mip&slab=9.5", "thicker than the volume"),
    ):
        response = Client().get(f"{url}?{query}")
        assert response.status_code == 400, query
        assert words in response.json()["detail"], (query, response.json())
    parts = url.split("/")
    forged = "/".join(parts[:6] + [parts[6][:-1] + ("A" if parts[6][-1] != "A" else "B")] + parts[7:])
    assert Client().get(f"{forged}?mode=max&slab=-1").status_code == 403

    image = dicomgen.write_image(tmp_path / "one.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8), modality="MR")
    ingest_zip(user, make_zip(tmp_path / "one.zip", {"one.dcm": image}))
    stack = Series.objects.get(study__owner=user, is_volume=False)
    response = Client().get(template(api, stack, "stack").replace("{index}", "0") + "?mode=mip&slab=5")
    assert response.status_code == 400 and "volume plane" in response.json()["detail"]
    api_answer = api.get(f"/api/series/{stack.pk}/planes/stack/0.png?mode=mip&slab=5")
    assert api_answer.status_code == 400 and "volume plane" in api_answer.json()["detail"]


def test_the_api_redirect_passes_the_slab_on_and_refuses_what_the_url_would(api, ct):
    series, voxels = ct
    response = api.get(f"/api/series/{series.pk}/planes/axial/4.png?mode=avg&slab=3&wc=40")
    assert response.status_code == 302
    location = response["Location"]
    assert location.split("?")[1] == "wc=40&ww=400&mode=avg&slab=3"
    want = to_display(np.rint(voxels[3:6].mean(axis=0)).astype(np.int16), WINDOW)
    np.testing.assert_array_equal(png(Client().get(location)), want)
    for query in ("mode=mip", "mode=mip&slab=100", "mode=sum&slab=2"):
        answer = api.get(f"/api/series/{series.pk}/planes/axial/4.png?{query}")
        assert answer.status_code == 400 and answer.json()["detail"], query


# --- presets --------------------------------------------------------------------------------------


def test_ct_keeps_its_presets_and_a_series_built_before_presets_has_none(api, ct, client, user):
    series, _ = ct
    body = api.get(f"/api/series/{series.pk}/").json()
    assert body["presets"][2] == {"name": "Lung", "center": -600, "width": 1500}
    Series.objects.filter(pk=series.pk).update(modality="MR", layout={**series.layout, "presets": None})
    assert api.get(f"/api/series/{series.pk}/").json()["presets"] == []


def shared_members(zip_path, keep) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as zf:
        return {
            name: zf.read(name)
            for name in zf.namelist()
            if not name.endswith("/") and keep(pydicom.dcmread(zf.open(name), stop_before_pixels=True, force=True))
        }


def viewer_config(client, series) -> dict:
    import json
    import re

    page = client.get(f"/series/{series.pk}/").content.decode()
    return json.loads(re.search(r'<script id="viewer-config" type="application/json">(.*?)</script>', page, re.S)[1])


def test_pet_presets_in_stored_units_and_suv_windows_with_a_factor(api, client, user, tmp_path, eager_celery):
    source = shared_path("pt-wholebody-qinheadneck-fnndsc", "QIN-HEADNECK-01-0024_PET_299slices_SEG.zip")
    members = shared_members(source, lambda ds: ds.Modality == "PT" and 120 <= int(ds.InstanceNumber) < 160)
    assert len(members) == 40  # 40 neighbouring slices of the head and neck
    upload = ingest_zip(user, make_zip(tmp_path / "pet.zip", members))
    assert upload.status == "done", upload.error
    pet = Series.objects.get(study__owner=user, modality="PT")
    assert set(pet.planes) == {"axial", "coronal", "sagittal"}  # axis-aligned: no acquired plane
    # this PET's header allows SUVbw (weight, dose, decay): SUV windows first, in stored units
    factor = pet.layout["values"]["suv_factor"]
    assert factor == pytest.approx(2.9448e-4, rel=1e-3)
    presets = api.get(f"/api/series/{pet.pk}/").json()["presets"]
    assert [p["name"] for p in presets] == ["SUV 0 – 5", "SUV 0 – 10", "SUV 0 – 15", "0 – p99.5", "0 – max"]
    assert presets[0]["width"] == pytest.approx(5 / factor, abs=1) and presets[0]["center"] == pytest.approx(
        2.5 / factor, abs=1
    )
    client.force_login(user)
    assert viewer_config(client, pet)["presets"] == presets

    # a PET whose header does not allow SUV: windows in stored units only
    Series.objects.filter(pk=pet.pk).update(
        layout={**pet.layout, "values": {"unit": "BQML", "suv_factor": None, "suv_problem": "No SUV: no dose"}}
    )
    presets = api.get(f"/api/series/{pet.pk}/").json()["presets"]
    assert [p["name"] for p in presets] == ["0 – p99.5", "0 – max"]
    top, peak = (p["center"] + p["width"] / 2 for p in presets)
    assert all(p["center"] == pytest.approx(p["width"] / 2, abs=1) for p in presets)  # every window starts at 0
    assert 1000 < top < peak <= 66261  # Bq/ml: the stored maximum is 66260.8
    assert viewer_config(client, Series.objects.get(pk=pet.pk))["presets"] == presets


def test_an_oblique_series_shows_its_frames_as_acquired(api, client, user, tmp_path, eager_celery):
    """A generated MR tilted 20 degrees about x: besides the resampled planes, its own frames as the
    plane ``acquired``, rendered by the workers like the others, with geometry a client can map,
    the tag browser naming each image's own file; and presets from its histogram."""
    rotation = np.array([[1, 0, 0], [0, np.cos(0.35), -np.sin(0.35)], [0, np.sin(0.35), np.cos(0.35)]])
    orientation = (*rotation[:, 0], *rotation[:, 1])
    voxels = np.random.default_rng(9).integers(0, 900, size=(5, 12, 10)).astype(np.int16)
    voxels[:, :2] = 0  # background rows: left out of the histogram
    paths = dicomgen.write_volume(tmp_path / "mr", voxels, orientation=orientation, slice_step=2.0, Modality="MR")
    ingest_zip(user, make_zip(tmp_path / "mr.zip", {p.name: p for p in paths}))
    mr = Series.objects.get(study__owner=user)
    assert mr.render_status == Series.Render.DONE, mr.render_error
    assert set(mr.planes) == {"axial", "coronal", "sagittal", "acquired"}
    acquired = mr.planes["acquired"]
    assert (acquired["count"], acquired["width"], acquired["height"]) == (5, 10, 12)
    assert acquired["x_dir"] == pytest.approx(orientation[:3]) and acquired["y_dir"] == pytest.approx(orientation[3:])
    assert acquired["step_dir"] == pytest.approx(list(rotation[:, 2])) and acquired["step_mm"] == pytest.approx(2.0)
    assert mr.images_done == mr.images_total == sum(p["count"] for p in mr.planes.values())

    body = api.get(f"/api/series/{mr.pk}/").json()
    window = Window(mr.window_center, mr.window_width)
    for index in range(5):  # the frames in stack order, as stored (the workers' images)
        response = Client().get(body["planes"]["acquired"]["url"].replace("{index}", str(index)))
        np.testing.assert_array_equal(png(response), to_display(voxels[index], window))
    client.force_login(user)
    tags = client.get(f"/series/{mr.pk}/tags/", {"plane": "acquired", "index": 3}).json()
    assert tags["reconstruction"] is False and tags["instance"]["number"] == 4
    assert viewer_config(client, mr)["images"]["planes"]["acquired"].startswith(f"/images/{mr.pk}/")
    assert "Acquired" in client.get(f"/series/{mr.pk}/").content.decode()

    assert [p["name"] for p in body["presets"]] == ["Full range", "Tissue", "Brain/soft", "Bright"]
    full, tissue, soft, bright = body["presets"]
    assert full["center"] - full["width"] / 2 == pytest.approx(0, abs=1)  # the background's zeros...
    assert tissue["center"] - tissue["width"] / 2 > 50  # ...are not tissue
    assert soft["width"] < full["width"] and bright["center"] > tissue["center"]
