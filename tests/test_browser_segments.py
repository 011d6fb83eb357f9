"""SEG overlays in the viewer (Chromium): drawn over the PET, per-segment toggles, opacity, and
the SEG's own page pointing at the series it is overlaid on."""

from __future__ import annotations

import pytest

from tests.browsing import shot, sign_in, wait_for_image
from tests.segdata import axial_index, ingest_pet_seg

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COLOURED = """() => {
  const canvas = document.querySelector(".vp-stage canvas.seg-overlay");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0, sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3]) { count += 1; sum += data[i] * 7 + data[i + 1] * 3 + data[i + 2]; }
  }
  return {count, sum, width: canvas.width, height: canvas.height};
}"""


def wait_overlay(page, index: int, query: str = ""):
    page.wait_for_function(
        """([index, query]) => {
          const canvas = document.querySelector(".vp-stage canvas.seg-overlay");
          const shown = canvas ? canvas.dataset.shown : undefined;
          return typeof shown === "string" && shown.includes(`/axial/${index}.png${query}`)
            && (query !== "" || !shown.includes("?"));
        }""",
        arg=[index, query],
    )
    return page.evaluate(COLOURED)


def test_seg_overlaid_on_the_pet_with_toggles(page, live_server, user, tmp_path, eager_celery):
    pet, seg, ds = ingest_pet_seg(user, tmp_path)
    # an axial image where both segments are drawn
    by_z = {}
    for groups in ds.PerFrameFunctionalGroupsSequence:
        z = float(groups.PlanePositionSequence[0].ImagePositionPatient[2])
        by_z.setdefault(z, set()).add(int(groups.SegmentIdentificationSequence[0].ReferencedSegmentNumber))
    z = next(z for z, numbers in sorted(by_z.items()) if numbers == {1, 2})
    index = axial_index(pet.planes["axial"], z)

    sign_in(page, live_server, f"/series/{pet.pk}/")
    wait_for_image(page, "true")
    page.evaluate("(i) => window.dicomViewer.active.setIndex(i, 'key')", index)
    wait_for_image(page, f"img.dataset.index === '{index}'")
    both = wait_overlay(page, index)
    assert both["count"] > 0 and (both["width"], both["height"]) == (128, 128)
    # the overlay sits in the image's stage: it follows zoom and pan
    assert page.evaluate(
        "() => document.querySelector('.vp-stage canvas.seg-overlay').parentElement"
        " === document.querySelector('.vp-stage img').parentElement"
    )
    page.keyboard.press("+")
    shot(page, "seg-01-pet-with-segments")

    page.click("#segments-open")
    page.wait_for_selector("#panel-segments:not([hidden])")
    labels = page.locator("#panel-segments .segment-list label").all_inner_texts()
    assert [text.strip() for text in labels] == ["Neoplasm, Primary", "Neoplasm, Secondary"]
    page.uncheck("#panel-segments input[data-number='1']")
    only_second = wait_overlay(page, index, "?segments=2")
    assert only_second["sum"] != both["sum"] and 0 < only_second["count"] <= both["count"]
    page.uncheck("#panel-segments input[data-number='2']")
    page.wait_for_function("() => document.querySelector('.vp-stage canvas.seg-overlay').dataset.shown === ''")
    assert page.evaluate(COLOURED)["count"] == 0
    page.check("#panel-segments input[data-number='1']")
    page.check("#panel-segments input[data-number='2']")
    assert wait_overlay(page, index)["sum"] == both["sum"]
    page.fill("#segment-opacity", "30")
    assert page.evaluate("() => document.querySelector('.vp-stage canvas.seg-overlay').style.opacity") == "0.3"
    shot(page, "seg-02-segments-panel")

    # the next image has its own overlay
    page.keyboard.press("ArrowDown")
    wait_overlay(page, index + 1)

    # MPR: every viewport draws the segments of its own plane image, at that image's size
    page.keyboard.press("m")
    page.wait_for_function(
        """() => [...document.querySelectorAll(".vp-stage canvas.seg-overlay")]
                  .filter((c) => /\\/(coronal|sagittal)\\/[0-9]+\\.png/.test(c.dataset.shown || "")).length === 2"""
    )
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('.vp-stage canvas.seg-overlay')].map((c) => [c.width, c.height])"
    )
    coronal = pet.planes["coronal"]
    assert sizes[1:] == [[coronal["width"], coronal["height"]]] * 2
    shot(page, "seg-03-mpr")

    # the SEG's own page: its frames, and a link to the PET it is overlaid on
    page.goto(f"{live_server.url}/series/{seg.pk}/")
    wait_for_image(page, "true")
    link = page.locator("#seg-note a")
    assert link.get_attribute("href") == f"/series/{pet.pk}/"
    shot(page, "seg-04-seg-series-page")
