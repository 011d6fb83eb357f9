"""The pages in a real Chromium (Playwright) against the live server and a real Celery worker.

Screenshots of every page go to test-artifacts/screenshots/. CI installs Debian's chromium;
elsewhere set CHROMIUM to a Chromium binary (the test is skipped, not failed, outside CI).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from studies.imaging.planes import Plane, plan_planes
from studies.imaging.volume import Volume
from studies.models import Series, Study
from tests.browsing import CT_ZIP, MR_ZIP, open_page, shot, shown_image, sign_in, wait_for_image
from tests.conftest import shared_path
from tests.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_two_studies_and_explore_them_in_the_viewer(page, live_server, user, worker):
    ct_zip, mr_zip = shared_path(*CT_ZIP), shared_path(*MR_ZIP)
    page.goto(live_server.url + "/")
    shot(page, "01-login")
    sign_in(page, live_server)
    page.wait_for_selector("text=No studies yet")
    shot(page, "02-study-list-empty")

    # -- upload both ZIPs at once; bytes-sent progress, then the ingest to the end
    page.click("text=Upload your first study")
    page.wait_for_selector("body[data-ready=upload]", state="attached")
    page.set_input_files("#file-input", [str(ct_zip), str(mr_zip)])
    page.wait_for_selector(".upload-item.processing, .upload-item.done, .upload-item.failed", timeout=60_000)
    shot(page, "03-upload-progress")
    assert not page.query_selector(".upload-item.failed"), page.inner_text("#upload-list")
    finished = "() => document.querySelectorAll('.upload-item.done, .upload-item.failed').length === 2"
    page.wait_for_function(finished, timeout=240_000)
    shot(page, "04-upload-done")
    items = page.eval_on_selector_all(
        ".upload-item",
        "nodes => nodes.map(n => ({cls: n.className, sent: n.dataset.sent, events: n.dataset.progressEvents,"
        " name: n.querySelector('[data-role=name]').textContent, text: n.innerText}))",
    )
    by_name = {item["name"]: item for item in items}
    for path in (ct_zip, mr_zip):
        item = by_name[path.name]
        assert "done" in item["cls"], item["text"]
        assert int(item["sent"]) >= path.stat().st_size and int(item["events"]) >= 1  # real bytes-sent progress
    assert "275 images stored" in by_name[ct_zip.name]["text"]

    # -- the study list, then the CT study
    page.click("nav.mainnav >> text=Studies")
    page.wait_for_selector("table.studies tbody tr >> nth=1")
    thumbnails = "() => [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)"
    page.wait_for_function(thumbnails)
    shot(page, "05-study-list")
    page.fill("#id_search", "LIDC")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("text=1 study matches your search")
    assert "LIDC" not in page.url  # search values stay out of URLs (and so out of server logs)
    assert page.locator("table.studies tbody tr").count() == 1
    shot(page, "05b-study-search")
    ct_study = Study.objects.get(owner=user, modalities="CT")
    ct_series = ct_study.series.get()
    page.goto(f"{live_server.url}/studies/{ct_study.pk}/")
    shot(page, "06-study")
    started = time.monotonic()
    page.click(".series-card >> text=Open viewer")
    first = wait_for_image(page, "true")
    first_image_ms = int(page.evaluate("document.body.dataset.firstImageMs"))
    after_click = time.monotonic() - started
    print(f"\nCT viewer: first image {first_image_ms} ms after the script started, {after_click:.2f} s after the click")
    axial = ct_series.planes["axial"]
    assert (first["width"], first["height"]) == (axial["width"], axial["height"])
    assert first["index"] == str(axial["count"] // 2)
    assert f"/images/{ct_series.pk}/{ct_series.render_version}/axial/" in first["src"]
    shot(page, "07-viewer")

    # -- the slider loads another image
    page.fill(".vp-nav input[type=range]", "40")
    moved = wait_for_image(page, "img.dataset.index === '40'")
    assert moved["src"] != first["src"] and abs(moved["grey"] - first["grey"]) > 0.5
    assert page.inner_text("[data-role=image-number]") == f"Im 41 / {axial['count']}"

    # -- keyboard scrolling through the prefetched neighbours does not stall
    page.locator(".vp-canvas").first.click()
    for _ in range(30):
        page.keyboard.press("ArrowDown")
        page.wait_for_timeout(25)
    wait_for_image(page, "img.dataset.index === '70'")
    latencies = page.evaluate("window.dicomViewer.metrics.latencies")
    print(f"CT viewer: image latency while scrolling p50 {statistics.median(latencies)} ms, max {max(latencies)} ms")
    assert statistics.median(latencies) < 250

    # -- cine plays at the chosen rate and stops
    page.fill("#fps", "20")
    page.locator(".vp-canvas").first.click()
    page.keyboard.press("Space")
    page.wait_for_function("() => Number(document.querySelector('.vp-stage img').dataset.index) >= 80")
    page.keyboard.press("Space")
    assert page.inner_text("#cine") == "▶ Play"

    # -- a window preset changes the pixels (server-rendered at that window)
    before = shown_image(page)
    page.select_option("#preset", label="3 · Lung")
    lung = wait_for_image(page, "img.dataset.src.includes('wc=-600&ww=1500')")
    assert lung["index"] == before["index"] and abs(lung["grey"] - before["grey"]) > 2
    page.keyboard.press("4")  # bone, by shortcut
    bone = wait_for_image(page, "img.dataset.src.includes('wc=480&ww=2500')")
    assert abs(bone["grey"] - lung["grey"]) > 2
    shot(page, "08-viewer-bone-window")

    # -- right-drag windowing previews at once, then loads the image at the new window
    box = page.locator(".vp-canvas").first.bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 300)
    page.mouse.down(button="right")
    page.mouse.move(box["x"] + 360, box["y"] + 330, steps=6)
    assert page.evaluate("document.querySelector('.vp-stage img').style.filter").startswith("url(")
    page.mouse.up(button="right")
    dragged = wait_for_image(page, "!img.dataset.src.includes('wc=480&ww=2500') && img.dataset.src.includes('wc=')")
    assert dragged["index"] == bone["index"]

    # -- MPR: three planes with the anatomy's aspect ratio, crosshair moves the other planes
    page.click("#tab-mpr")
    for n in range(3):
        wait_for_image(page, "true", viewport=n)
    for n, plane in enumerate(("axial", "coronal", "sagittal")):
        image = shown_image(page, n)
        info = ct_series.planes[plane]
        assert (image["width"], image["height"]) == (info["width"], info["height"]), plane
    assert (ct_series.planes["coronal"]["width"], ct_series.planes["coronal"]["height"]) == (512, 352)
    coronal_before = shown_image(page, 1)["index"]
    box = page.locator(".vp-canvas").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.6)
    page.wait_for_function(f"() => document.querySelectorAll('.vp-stage img')[1].dataset.index !== '{coronal_before}'")
    world = page.evaluate("window.dicomViewer.crosshair")
    for n, plane in enumerate(("coronal", "sagittal"), start=1):
        grid = Plane.from_dict(plane, ct_series.planes[plane])
        expected = round(float(np.dot(np.asarray(world) - grid.origin, grid.step_dir) / grid.step_mm))
        wait_for_image(page, f"img.dataset.index === '{expected}'", viewport=n)
    lines = page.evaluate("[...document.querySelectorAll('.vp-stage svg line')].map(l => l.dataset.plane)")
    assert sorted(lines) == ["axial", "axial", "coronal", "coronal", "sagittal", "sagittal"]
    letters = page.evaluate("[...document.querySelectorAll('.vp-letter')].map(l => l.textContent)")
    assert letters == ["A", "P", "R", "L", "S", "I", "R", "L", "S", "I", "A", "P"]
    shot(page, "09-viewer-mpr")

    # -- tag browser: search by tag number and by keyword
    page.click("#tab-tags")
    page.wait_for_selector("#tag-table tbody tr")
    page.fill("#tag-search", "0028,0030")
    page.wait_for_function("() => document.querySelectorAll('#tag-table tbody tr').length === 1")
    assert "0.78125" in page.inner_text("#tag-table tbody")
    page.fill("#tag-search", "slicethickness")
    page.wait_for_function("() => document.querySelector('#tag-table tbody').innerText.includes('Slice Thickness')")
    # the axial image is an acquired slice, not a reconstruction
    page.wait_for_function("() => document.querySelector('#tag-source').textContent.startsWith('Instance')")
    shot(page, "10-viewer-tags")
    page.locator(".vp-canvas").nth(1).click()  # the coronal image: a reconstruction
    page.wait_for_function("() => document.querySelector('#tag-source').textContent.includes('reconstruction')")
    page.click("#tab-metadata")
    page.wait_for_selector("#image-meta dd")
    shot(page, "11-viewer-metadata")
    page.keyboard.press("?")
    page.wait_for_selector("dialog#help[open]")
    shot(page, "12-viewer-help")
    page.keyboard.press("Escape")

    # -- the MR study: an oblique sagittal volume opens in its own plane; a single image is a stack
    mr_study = Study.objects.get(owner=user, modalities="MR")
    volume = mr_study.series.get(series_number=5)
    page.goto(f"{live_server.url}/series/{volume.pk}/")
    mr_first = wait_for_image(page, "true")
    sagittal = volume.planes["sagittal"]
    assert "/sagittal/" in mr_first["src"]
    assert (mr_first["width"], mr_first["height"]) == (sagittal["width"], sagittal["height"])
    letters = page.evaluate("[...document.querySelectorAll('.vp-letter')].map(l => l.textContent)")
    assert letters[2:] == ["A", "P"] and letters[0].startswith("S") and letters[1].startswith("I")
    assert "(resampled)" in page.inner_text(".vp-ov.tr")
    shot(page, "13-viewer-mr-sagittal")
    page.click("#tab-mpr")
    for n, plane in enumerate(("axial", "coronal", "sagittal")):
        image = wait_for_image(page, "true", viewport=n)
        assert (image["width"], image["height"]) == (volume.planes[plane]["width"], volume.planes[plane]["height"])
    shot(page, "14-viewer-mr-mpr")
    single = mr_study.series.get(series_number=17)
    page.goto(f"{live_server.url}/series/{single.pk}/")
    wait_for_image(page, "true")
    assert page.is_disabled("#tab-mpr")
    shot(page, "15-viewer-stack")


def test_pages_ask_for_login_and_missing_pages_say_so(page, live_server, user):
    page.goto(live_server.url + "/series/12345/")
    assert "/accounts/login/" in page.url
    sign_in(page, live_server, "/series/12345/")
    assert "This page does not exist" in page.inner_text("main")
    shot(page, "16-not-found")
    page.goto(live_server.url + "/accounts/password_reset/")
    shot(page, "17-password-reset")
    page.goto(live_server.url + "/accounts/password_change/")
    shot(page, "18-password-change")


def test_viewer_geometry_agrees_with_the_imaging_core(page, live_server):
    """The crosshair mapping in JavaScript against planes.py, on an oblique volume."""
    angle = np.radians(20)
    volume = Volume(
        frames=[],
        rows=64,
        columns=48,
        row_dir=np.array([np.cos(angle), np.sin(angle), 0.0]),
        col_dir=np.array([0.0, 0.0, -1.0]),
        spacing_row_mm=1.2,
        spacing_col_mm=0.9,
        origin=np.array([-30.0, 10.0, 40.0]),
        stack_dir=np.array([-np.sin(angle), np.cos(angle), 0.0]),
        offsets_mm=np.arange(40) * 2.0,
    )
    planes = {name: plane.to_dict() for name, plane in plan_planes(volume).items()}
    page.goto(live_server.url + "/accounts/login/")
    result = page.evaluate(
        """async (planes) => {
          const g = await import("/static/js/viewer/geometry.js");
          const out = {};
          for (const [name, plane] of Object.entries(planes)) {
            const world = g.planeWorld(plane, 7, 11, 13);
            out[name] = {world, back: g.worldToPlane(plane, world), letters: g.edgeLetters(plane.x_dir, plane.y_dir)};
          }
          out.line = g.intersection(planes.axial, 3, planes.coronal, 5);
          out.oblique = g.directionLetters([0.94, -0.34, 0]);
          return out;
        }""",
        planes,
    )
    for name, data in planes.items():
        grid = Plane.from_dict(name, data)
        assert np.allclose(result[name]["world"], grid.world(7, 11, 13))
        back = result[name]["back"]
        assert (back["index"], back["row"], back["col"]) == pytest.approx((7, 11, 13))
    assert result["axial"]["letters"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert result["coronal"]["letters"] == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert result["sagittal"]["letters"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert result["oblique"] == "L"  # 20 degrees off: one letter
    coronal = Plane.from_dict("coronal", planes["coronal"])
    axial = Plane.from_dict("axial", planes["axial"])
    row = np.dot(coronal.world(5, 0, 0) - axial.world(3, 0, 0), axial.y_dir) / axial.pixel_mm
    assert result["line"]["y1"] == pytest.approx(row + 0.5) and result["line"]["y2"] == pytest.approx(row + 0.5)


def test_series_still_decoding_shows_progress_then_opens_the_viewer(page, live_server, user):
    series = make_study(user, 1).series.get()
    planes = series.planes
    Series.objects.filter(pk=series.pk).update(planes={}, render_status="pending", images_total=10, images_done=3)
    sign_in(page, live_server, f"/series/{series.pk}/")
    page.wait_for_selector("#processing progress")
    shot(page, "19-series-processing")
    Series.objects.filter(pk=series.pk).update(planes=planes, render_status="rendering")
    page.wait_for_selector("#viewports .vp", timeout=15_000)  # reloaded by itself into the viewer


def test_viewer_waits_for_images_still_being_decoded(page, live_server, small_ct):
    """503 + Retry-After while the volume is not decoded yet: the viewer says so and retries."""
    import shutil

    from studies import storage
    from studies.services import image_source

    series = small_ct
    axial = storage.local_path(storage.derived_prefix(series.pk, series.render_version) + "axial")
    shutil.rmtree(axial)  # no image rendered yet ...
    volume = storage.local_path(storage.volume_name(series.pk, series.render_version))
    hidden = volume.with_suffix(".hidden")
    volume.rename(hidden)  # ... and the voxels not decoded yet: the image URLs answer 503
    image_source.clear()
    sign_in(page, live_server, f"/series/{series.pk}/")
    page.wait_for_function("() => document.querySelector('.vp-message').textContent.includes('Preparing images')")
    shot(page, "20-viewer-waiting-for-images")
    hidden.rename(volume)
    image = wait_for_image(page, "true")
    assert image["index"] == str(series.planes["axial"]["count"] // 2)
    assert page.inner_text(".vp-message") == ""


def test_touch_drag_scrolls_and_pinch_zooms(browser, live_server, small_ct):
    context, page = open_page(browser, viewport={"width": 1024, "height": 768}, has_touch=True, is_mobile=True)
    try:
        sign_in(page, live_server, f"/series/{small_ct.pk}/")
        wait_for_image(page, "true")
        shot(page, "21-viewer-tablet")
        touch = context.new_cdp_session(page)
        box = page.locator(".vp-canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        def gesture(*paths):  # each path: the (x, y) of one finger, step by step
            def points(step):
                return [{"x": path[step][0], "y": path[step][1], "id": n} for n, path in enumerate(paths, start=1)]

            touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(0)})
            for step in range(1, len(paths[0])):
                touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(step)})
            touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

        before = int(page.evaluate("window.dicomViewer.active.index"))
        gesture([(x, y + 12 * step) for step in range(12)])  # one finger down: later images
        page.wait_for_function(f"() => window.dicomViewer.active.index > {before}")
        scale = page.evaluate("window.dicomViewer.active.view.scale")
        gesture([(x - 40 - 8 * step, y) for step in range(12)], [(x + 40 + 8 * step, y) for step in range(12)])
        assert page.evaluate("window.dicomViewer.active.view.scale") > 1.8 * scale  # fingers 80 -> 256 px apart
        assert page.errors == []
    finally:
        context.close()


def test_a_viewer_left_open_past_its_image_urls_lifetime_keeps_working(page, live_server, small_ct, settings):
    """Image URLs are signed for a few minutes; the viewer renews them (series status) and
    nothing the user sees changes."""
    settings.IMAGE_URL_TTL = 4  # every URL handed out is valid 2 to 4 seconds
    sign_in(page, live_server, f"/series/{small_ct.pk}/")
    first = wait_for_image(page, "true")
    time.sleep(4.5)  # every URL the page was given has expired now
    page.keyboard.press("3")  # lung window: images the browser has not loaded yet
    lung = wait_for_image(page, "img.dataset.src.includes('wc=-600&ww=1500')")
    expired, renewed = (int(image["src"].split("/")[5]) for image in (first, lung))
    assert renewed > expired and lung["index"] == first["index"]
    assert page.inner_text(".vp-message") == "" and page.errors == []
