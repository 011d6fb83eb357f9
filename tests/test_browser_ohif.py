"""The unmodified OHIF Viewer v3 served at /ohif/ (issue 13), in a real Chromium: a signed-in user
sees their own studies in OHIF's study list (one of them from files without Modality), not another
user's, and OHIF's viewer draws a study's image from our DICOMweb frames.

OHIF is installed by ``make ohif`` (.ci/run does it); outside CI the test is skipped without it.
Screenshots: test-artifacts/screenshots/ohif-*.png.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from django.conf import settings
from pydicom import dcmread
from pydicom.uid import JPEG2000Lossless

from ohif import install
from studies.models import Upload
from tests.browsing import shot, sign_in
from tests.conftest import ingest_zip, make_zip
from tests.dicomgen import make_dataset, save, write_volume

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ohif_installed():
    """Like require_tool: OHIF missing skips the test, except in CI (which installs it)."""
    if not install.is_current(settings.OHIF_DIR):
        message = f"OHIF Viewer {install.VERSION} is not installed in {settings.OHIF_DIR} (make ohif)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def phantom(slices: int = 6, size: int = 64) -> np.ndarray:
    """A disc of 400 HU-ish stored values with a brighter square inside, on a dark background."""
    rows, cols = np.mgrid[:size, :size]
    disc = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size * 0.4) ** 2
    square = (abs(rows - size / 2) < size / 8) & (abs(cols - size / 2) < size / 8)
    image = np.where(disc, 1400, 0) + np.where(square, 1000, 0)
    return np.repeat(image[None].astype(np.int16), slices, axis=0)


@pytest.fixture
def studies(user, other_user, tmp_path, eager_celery) -> dict[str, str]:
    """alice: a CT volume stored as JPEG 2000 (OHIF decodes it with its WebAssembly codec in a worker)
    and a one-image study whose file has no Modality; bob: a CT of his own."""
    uids = {}
    ct = write_volume(tmp_path / "ct", phantom(), modality="CT", window=(1200, 3000), StudyDescription="OHIF phantom")
    for path in ct:
        ds = dcmread(path)
        ds.compress(JPEG2000Lossless)
        ds.save_as(path)
    files = {f"ct/{path.name}": path for path in ct}
    bare = make_dataset(np.arange(64, dtype=np.int16).reshape(8, 8), StudyDescription="no modality")
    del bare.Modality
    files["bare.dcm"] = save(bare, tmp_path / "bare.dcm")
    upload = ingest_zip(user, make_zip(tmp_path / "alice.zip", files))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    theirs = write_volume(tmp_path / "bob", phantom(2), modality="CT", StudyDescription="bob private")
    upload = ingest_zip(other_user, make_zip(tmp_path / "bob.zip", {p.name: p for p in theirs}))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    uids["ct"] = dcmread(ct[0], stop_before_pixels=True).StudyInstanceUID
    uids["bare"] = bare.StudyInstanceUID
    uids["bob"] = dcmread(theirs[0], stop_before_pixels=True).StudyInstanceUID
    return uids


def dicomweb_kind(url: str) -> str:
    """What an OHIF request to /dicomweb/ asks for: studies, series, metadata, frames, ..."""
    path = url.split("/dicomweb/", 1)[1].split("?", 1)[0].split("/")
    if path[-1].isdigit() or (len(path) > 1 and path[-2] == "frames"):
        return "frames"
    return "bulkdata" if "bulkdata" in path else path[-1] if not path[-1][0].isdigit() else "retrieve"


def canvas_rgb(page) -> np.ndarray:
    """The viewport's canvas as drawn on the screen (rows, columns, RGB)."""
    import io

    from PIL import Image

    box = page.locator("canvas.cornerstone-canvas").first.bounding_box()
    png = page.screenshot(clip=box, timeout=60_000)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)


def image_spread(page) -> tuple[float, int]:
    """(standard deviation, number of distinct grey levels) of the viewport's canvas."""
    grey = canvas_rgb(page).mean(axis=2)
    return float(grey.std()), len(np.unique(grey.round(-1)))


def coloured_pixels(page) -> int:
    """How many pixels of the viewport's canvas are clearly not grey."""
    rgb = canvas_rgb(page)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).sum())


def test_ohif_lists_own_studies_and_draws_an_image(ohif_installed, page, live_server, user, studies):
    answers = []
    page.on("response", lambda r: "/dicomweb/" in r.url and answers.append((dicomweb_kind(r.url), r.status)))
    sign_in(page, live_server, "/ohif/")  # OHIF asks for the sign-in first, then comes back
    page.wait_for_selector("text=OHIF phantom", timeout=60_000)
    page.wait_for_selector("text=no modality")  # its QIDO answer has no ModalitiesInStudy at all
    assert page.locator("text=bob private").count() == 0  # another user's study is not listed
    assert page.locator("text=1-2 of 2").count() == 1
    shot(page, "ohif-study-list")

    page.goto(f"{live_server.url}/ohif/viewer?StudyInstanceUIDs={studies['ct']}")
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
    spread, levels = 0.0, 0
    for _ in range(60):  # the image is drawn once its frames have come and been decoded
        spread, levels = image_spread(page)
        if spread > 20 and levels >= 3:
            break
        page.wait_for_timeout(500)
    shot(page, "ohif-viewer")
    assert spread > 20 and levels >= 3, f"OHIF drew no image (std {spread:.1f}, {levels} grey levels)"
    kinds = {kind for kind, _ in answers}
    assert {"studies", "series", "metadata", "frames"} <= kinds, answers
    assert all(status < 400 for _, status in answers), [a for a in answers if a[1] >= 400]


def test_ohif_shows_a_segmentation_over_its_pet(ohif_installed, page, live_server, user, tmp_path, eager_celery):
    """OHIF reads a DICOM SEG through WADO-RS (the whole instance) and draws it: this needs
    'unsafe-eval' in /ohif/'s policy (its SEG reader compiles functions), which the page fixture checks."""
    from tests.segdata import ingest_pet_seg

    _pet, seg, seg_ds = ingest_pet_seg(user, tmp_path)
    sign_in(page, live_server, f"/ohif/viewer?StudyInstanceUIDs={seg.study.study_instance_uid}")
    page.wait_for_selector("canvas.cornerstone-canvas", timeout=60_000)
    for notice in ("text=Skip all", "text=Confirm and hide"):  # OHIF's tour and its investigational-use notice
        if page.locator(notice).count():
            page.click(notice)
    with page.expect_response(lambda r: seg_ds.SOPInstanceUID in r.url, timeout=30_000) as fetched:
        page.dblclick(f"text={seg_ds.SeriesDescription}")
    assert fetched.value.status == 200
    page.click("text=Yes")  # "Do you want to open this Segmentation?"
    coloured = 0
    for _ in range(60):  # the segments are drawn in colour over the grey PET
        coloured = coloured_pixels(page)
        if coloured >= 20:
            break
        page.wait_for_timeout(500)
    shot(page, "ohif-segmentation")
    assert coloured >= 20, "OHIF drew no segment"
    assert page.errors == []
