"""Viewer layouts: several series side by side, dragged from the series strip, scrolled together by
patient position when they share a Frame of Reference, with reference lines where the active image
cuts the others; the layout kept in the URL; another user's series refused."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from pydicom.uid import generate_uid

from studies.imaging.planes import Plane
from studies.models import Series
from tests.browsing import shot, sign_in, wait_for_image
from tests.conftest import ingest_zip, zip_folder
from tests.dicomgen import write_volume
from tests.factories import make_study

SHOWN = "() => [...document.querySelectorAll('.vp')].map(v => [Number(v.dataset.series), v.dataset.plane])"


def _voxels(count: int, size: int) -> np.ndarray:
    k, r, c = np.ogrid[:count, :size, :size]
    return ((k * 37 + r * 5 + c * 3) % 900).astype(np.int16)


@pytest.fixture
def two_series(user, tmp_path, eager_celery):
    """One study, two axial CT series of one Frame of Reference: 12 images 2 mm apart and 8 images
    3 mm apart starting 1 mm higher, with other pixel sizes."""
    study, frame = generate_uid(), generate_uid()
    common = {"study_uid": study, "FrameOfReferenceUID": frame, "window": (450, 900)}
    folder = tmp_path / "dicom"
    write_volume(folder / "thin", _voxels(12, 64), spacing=(1.25, 1.25), origin=(-40, -40, 0), slice_step=2.0,
                 SeriesNumber=1, SeriesDescription="Thin", **common)  # fmt: skip
    write_volume(folder / "thick", _voxels(8, 48), spacing=(1.5, 1.5), origin=(-36, -36, 1), slice_step=3.0,
                 SeriesNumber=2, SeriesDescription="Thick", **common)  # fmt: skip
    ingest_zip(user, zip_folder(folder, tmp_path / "two.zip"))
    thin, thick = Series.objects.filter(study__owner=user).order_by("series_number")
    assert thin.frame_of_reference_uid == thick.frame_of_reference_uid == frame  # read from the headers
    return thin, thick


def _state(page) -> list[dict]:
    return page.evaluate(
        "() => window.dicomViewer.viewports.map(v => ({id: v.source.id, plane: v.plane, index: v.index}))"
    )


def _z(series: Series, plane: str, index: int) -> float:
    """Patient z (mm) of the centre of an image."""
    grid = Plane.from_dict(plane, series.planes[plane])
    return float(grid.world(index, (grid.height - 1) / 2, (grid.width - 1) / 2)[2])


def _lines(page, viewport: int) -> list[dict]:
    return page.evaluate(
        """(n) => [...document.querySelectorAll('.vp')[n].querySelectorAll('svg line')].map(l => ({
             source: l.dataset.source, stroke: l.getAttribute('stroke'),
             y1: Number(l.getAttribute('y1')), y2: Number(l.getAttribute('y2'))}))""",
        viewport,
    )


def _expected_row(series: Series, index: int, cut_by: Series, cut_index: int) -> float:
    """Row (image pixels, centres at +0.5) where axial image ``cut_index`` of ``cut_by`` cuts coronal image
    ``index`` of ``series``: the imaging core's geometry."""
    coronal = Plane.from_dict("coronal", series.planes["coronal"])
    axial = Plane.from_dict("axial", cut_by.planes["axial"])
    row = np.dot(axial.world(cut_index, 0, 0) - coronal.world(index, 0, 0), coronal.y_dir) / coronal.pixel_mm
    return float(row) + 0.5


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_layouts_drag_link_reference_lines_maximise_and_reload(page, live_server, two_series, other_user):
    thin, thick = two_series
    sign_in(page, live_server, f"/series/{thin.pk}/")
    wait_for_image(page, "true")
    shot(page, "layouts-1x1")

    # -- 2x2: the study's other series beside this one, then other planes of this one
    page.click("#layout-picker [data-layout='2x2']")
    page.wait_for_function("() => document.querySelectorAll('.vp').length === 4")
    for n in range(4):
        wait_for_image(page, "true", viewport=n)
    filled = [[thin.pk, "axial"], [thick.pk, "axial"], [thin.pk, "coronal"], [thin.pk, "sagittal"]]
    assert page.evaluate(SHOWN) == filled
    assert "#layout=2x2&vp=" in page.url

    # -- drag the second series from the strip into the last viewport; C shows its coronal plane there
    page.locator(f".series-rail a[data-series='{thick.pk}']").drag_to(page.locator(".vp").nth(3))
    page.wait_for_function(f"() => document.querySelectorAll('.vp')[3].dataset.series === '{thick.pk}'")
    page.keyboard.press("c")
    page.wait_for_function("() => document.querySelectorAll('.vp')[3].dataset.plane === 'coronal'")
    wait_for_image(page, f"img.dataset.src.includes('/images/{thick.pk}/') && img.dataset.src.includes('/coronal/')", 3)
    shown = [[thin.pk, "axial"], [thick.pk, "axial"], [thin.pk, "coronal"], [thick.pk, "coronal"]]
    assert page.evaluate(SHOWN) == shown

    # -- linked scrolling: the thick series follows the thin one to the same patient position (mm)
    page.locator(".vp-canvas").first.click()
    page.keyboard.press("Home")
    for _ in range(7):
        page.keyboard.press("ArrowDown")
    page.wait_for_function("() => window.dicomViewer.viewports[0].index === 7")
    state = _state(page)
    z_thin, z_thick = _z(thin, "axial", 7), _z(thick, "axial", state[1]["index"])
    nearest = min(range(thick.planes["axial"]["count"]), key=lambda j: abs(_z(thick, "axial", j) - z_thin))
    assert state[1]["index"] == nearest and abs(z_thick - z_thin) <= 1.5  # the nearest of images 3 mm apart
    assert nearest not in (0, thick.planes["axial"]["count"] - 1)  # inside the volume, not clamped to an end
    wait_for_image(page, f"img.dataset.index === '{nearest}'", viewport=1)

    # -- reference lines: where the active axial image cuts both coronal viewports, in its colour
    for n, series in ((2, thin), (3, thick)):
        (line,) = _lines(page, n)
        expected = _expected_row(series, state[n]["index"], thin, 7)
        assert line["source"] == "0" and line["y1"] == pytest.approx(expected) and line["y2"] == pytest.approx(expected)
    assert _lines(page, 1) == []  # parallel planes do not cut
    shot(page, "layouts-2x2-linked")

    # -- presets apply to the active viewport only
    page.keyboard.press("3")
    wait_for_image(page, "img.dataset.src.includes('wc=-600&ww=1500')", viewport=0)
    assert "wc=" not in page.evaluate("document.querySelectorAll('.vp-stage img')[1].dataset.src")

    # -- "Link" off: the other series stays where it is
    page.click("#link-scroll")
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => window.dicomViewer.viewports[0].index === 6")
    assert _state(page)[1]["index"] == nearest and "link=0" in page.url
    page.click("#link-scroll")

    # -- the metadata panel describes the active viewport's series
    page.click("#tab-metadata")
    page.wait_for_function("() => document.querySelector('#series-meta').textContent.includes('Thin')")
    page.locator(".vp-canvas").nth(3).click()
    page.wait_for_function("() => document.querySelector('#series-meta').textContent.includes('Thick')")
    assert thick.series_instance_uid in page.inner_text("#series-meta")
    page.click("#tab-metadata")

    # -- double-click maximises a viewport, again brings the layout back; F still fits
    page.locator(".vp-canvas").nth(2).dblclick()
    page.wait_for_function("() => [...document.querySelectorAll('.vp')].filter(v => v.offsetWidth > 0).length === 1")
    area = page.locator("#viewports").bounding_box()
    assert page.locator(".vp").nth(2).bounding_box()["width"] == pytest.approx(area["width"], abs=2)
    shot(page, "layouts-maximised")
    page.locator(".vp-canvas").nth(2).dblclick()
    page.wait_for_function("() => [...document.querySelectorAll('.vp')].filter(v => v.offsetWidth > 0).length === 4")

    # -- full screen for the viewer
    page.click("#fullscreen")
    page.wait_for_function("() => document.fullscreenElement !== null")
    page.click("#fullscreen")
    page.wait_for_function("() => document.fullscreenElement === null")

    # -- a reload restores the layout and what each viewport shows
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('.vp').length === 4")
    for n in range(4):
        wait_for_image(page, "true", viewport=n)
    assert page.evaluate(SHOWN) == shown

    # -- without a mouse: V picks the next viewport, Enter on a thumbnail shows its series there
    page.keyboard.press("v")
    page.wait_for_function("() => window.dicomViewer.active === window.dicomViewer.viewports[1]")
    page.focus(f".series-rail a[data-series='{thin.pk}']")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('.vp')[1].dataset.series === '{thin.pk}'")
    assert page.url.split("#")[0].endswith(f"/series/{thin.pk}/")  # shown here, not opened as a page

    # -- another user's series named in the link: refused (404), none of its images shown
    theirs = make_study(other_user, 1).series.get()
    status = page.evaluate("(url) => fetch(url).then(r => r.status)", f"/series/{theirs.pk}/config/")
    assert status == 404
    page.goto(f"{live_server.url}/series/{thin.pk}/?again#layout=1x2&vp={thin.pk}:axial,{theirs.pk}:stack")
    page.wait_for_function("() => document.querySelector('#render-pill').textContent.includes('cannot be shown')")
    page.wait_for_function("() => document.querySelectorAll('.vp').length === 2")
    wait_for_image(page, "true", viewport=1)
    assert theirs.pk not in [series for series, _plane in page.evaluate(SHOWN)]
    sources = page.evaluate("() => [...document.querySelectorAll('.vp-stage img')].map(i => i.dataset.src || '')")
    assert not any(f"/images/{theirs.pk}/" in src for src in sources)
    shot(page, "layouts-refused-series")


@pytest.mark.django_db(transaction=True)
def test_series_stored_before_the_field_get_their_frame_of_reference_from_a_stored_header(two_series):
    thin, thick = two_series
    frame = thin.frame_of_reference_uid
    Series.objects.update(frame_of_reference_uid="")
    migration = importlib.import_module("studies.migrations.0006_series_frame_of_reference")
    from django.apps import apps

    migration.fill_frame_of_reference(apps, None)
    assert set(Series.objects.values_list("frame_of_reference_uid", flat=True)) == {frame}
