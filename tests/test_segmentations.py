"""SEG overlays through ingest and the API: the shared PET + SEG case, access, audit and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import api_client_for
from tests.segdata import axial_index, ingest_pet_seg

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def pet_seg(user, tmp_path):
    return ingest_pet_seg(user, tmp_path)


def overlay_rgba(client, url: str) -> np.ndarray:
    answer = client.get(url)
    assert answer.status_code == 200, answer.content[:200]
    assert answer["Content-Type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))


def test_pet_seg_overlay_lies_where_the_seg_frames_are(pet_seg, api, user, other_user, settings):
    from audit.models import AuditEvent
    from studies.models import Series
    from studies.services.series_build import series_rebuild

    pet, seg, ds = pet_seg
    settings.AUDIT_IMAGE_WINDOW = 0  # every access audited (no earlier test's view in this process counts)
    answer = api.get(f"/api/series/{pet.pk}/segmentations/")
    assert answer.status_code == 200
    (item,) = answer.json()
    assert item["series"] == seg.pk
    assert item["label"] == ds.SeriesDescription == "tumor segmentation - User1 Manual trial 1"
    # labels and colours from the file (RecommendedDisplayCIELabValue, converted from CIELab)
    assert [(s["number"], s["label"], s["type"]) for s in item["segments"]] == [
        (1, "Neoplasm, Primary", "Neoplasm, Primary"),
        (2, "Neoplasm, Secondary", "Neoplasm, Secondary"),
    ]
    assert {s["category"] for s in item["segments"]} == {"Morphologically Altered Structure"}
    assert [s["color"] for s in item["segments"]] == ["#80ae80", "#f1d691"]
    colours = {s["number"]: tuple(int(s["color"][i : i + 2], 16) for i in (1, 3, 5)) for s in item["segments"]}

    # every SEG frame's pixels, and no others, are drawn on the axial image at its position
    axial = pet.planes["axial"]
    masks = ds.pixel_array.astype(bool)
    expected: dict[int, dict[int, np.ndarray]] = {}
    for frame, groups in enumerate(ds.PerFrameFunctionalGroupsSequence):
        index = axial_index(axial, float(groups.PlanePositionSequence[0].ImagePositionPatient[2]))
        number = int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        expected.setdefault(index, {}).setdefault(number, np.zeros_like(masks[0]))
        expected[index][number] |= masks[frame]
    assert len(expected) == 9 and any(len(by_segment) == 2 for by_segment in expected.values())
    template = item["overlay"]
    for index, by_segment in expected.items():
        rgba = overlay_rgba(api, template.format(plane="axial", index=index))
        assert rgba.shape == (axial["height"], axial["width"], 4)
        union = np.logical_or.reduce(list(by_segment.values()))
        assert np.array_equal(rgba[..., 3] > 0, union)
        for number, mask in by_segment.items():
            only = mask & ~np.logical_or.reduce([m for n, m in by_segment.items() if n != number] + [~union & False])
            assert (rgba[only][:, :3] == colours[number]).all()
        # one segment switched off: only the other's pixels remain
        first = min(by_segment)
        rgba = overlay_rgba(api, template.format(plane="axial", index=index) + f"?segments={first}")
        assert np.array_equal(rgba[..., 3] > 0, by_segment[first])
        assert not overlay_rgba(api, template.format(plane="axial", index=index) + "?segments=")[..., 3].any()
    outside = next(i for i in range(axial["count"]) if i not in expected)
    assert not overlay_rgba(api, template.format(plane="axial", index=outside))[..., 3].any()
    # a reconstruction crosses the segments too, at its own size
    coronal = pet.planes["coronal"]
    rows, cols = np.nonzero(masks[5])
    row_mm = float(ds.PerFrameFunctionalGroupsSequence[5].PlanePositionSequence[0].ImagePositionPatient[1])
    spacing = float(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0])
    index = round((row_mm + rows[0] * spacing - coronal["origin"][1]) / coronal["step_mm"])
    rgba = overlay_rgba(api, template.format(plane="coronal", index=index))
    assert rgba.shape == (coronal["height"], coronal["width"], 4) and rgba[..., 3].any()

    # audited as image access of the PET
    assert AuditEvent.objects.filter(
        user=user, action=AuditEvent.Action.IMAGES_VIEW, object_type="series", object_id=str(pet.pk)
    ).exists()

    # bad input: a clear 4xx with a detail
    first_index = min(expected)
    for url, status in [
        (template.format(plane="axial", index=first_index) + "?segments=7", 400),
        (template.format(plane="axial", index=first_index) + "?segments=a", 400),
        (
            template.format(plane="axial", index=first_index) + "?segments=\u00b2",
            400,
        ),  # a digit to isdigit(), not to int()
        (template.format(plane="stack", index=0), 404),
        (template.format(plane="axial", index=axial["count"]), 404),
        (template.replace(f"/v{pet.render_version}-", "/v99-").format(plane="axial", index=0), 404),
        (f"/api/series/{pet.pk}/segmentations/{pet.pk}/overlay/v1-1/axial/0.png", 404),
    ]:
        answer = api.get(url)
        assert answer.status_code == status, url
        assert answer.json()["detail"]

    # a user who may not see the study: 404 for the list and the images
    stranger = api_client_for(other_user)
    assert stranger.get(f"/api/series/{pet.pk}/segmentations/").status_code == 404
    assert stranger.get(template.format(plane="axial", index=first_index)).status_code == 404

    # the SEG series itself lists nothing and says where it is overlaid
    assert api.get(f"/api/series/{seg.pk}/segmentations/").json() == []
    notes = api.get(f"/api/series/{seg.pk}/").json()["notes"]
    name = f"#{pet.series_number}" if pet.series_number is not None else str(pet.pk)
    assert f"Overlaid in colour on series {name}." in notes

    # rebuilds of either series (new render versions): new overlay URLs, the old ones are gone
    old = api.get(f"/api/series/{pet.pk}/segmentations/").json()[0]["overlay"]
    for series in (pet, seg):
        series_rebuild(series.pk)
    pet = Series.objects.get(pk=pet.pk)
    (item,) = api.get(f"/api/series/{pet.pk}/segmentations/").json()
    assert item["overlay"] != old
    assert f"/v{pet.render_version}-{Series.objects.get(pk=seg.pk).render_version}/" in item["overlay"]
    index = next(
        i
        for i in range(pet.planes["axial"]["count"])
        if overlay_rgba(api, item["overlay"].format(plane="axial", index=i))[..., 3].any()
    )
    assert index
    assert api.get(old.format(plane="axial", index=index)).status_code == 404


def test_seg_without_its_series_stays_a_stack_until_the_series_comes(user, tmp_path, api):
    _pet, seg, _ds = ingest_pet_seg(user, tmp_path, with_pet=False)
    assert seg.render_status == "done" and "stack" in seg.planes
    assert any("not in this study" in note for note in seg.layout["notes"])
    # the PET in a later upload: the SEG is laid onto it then, and its note says so
    pet, seg, _ds = ingest_pet_seg(user, tmp_path)
    assert [item["series"] for item in api.get(f"/api/series/{pet.pk}/segmentations/").json()] == [seg.pk]
    assert not any("not in this study" in note for note in seg.layout["notes"])
    assert any(note.startswith("Overlaid in colour on series") for note in seg.layout["notes"])
