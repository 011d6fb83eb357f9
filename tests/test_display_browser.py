"""The viewer's display choices from the server side: an oblique series' "Acquired" button shows
its frames as stored, and the preset menu holds the MR's histogram presets."""

from __future__ import annotations

import numpy as np
import pytest

from studies.models import Series
from tests import dicomgen
from tests.browsing import shot, sign_in, wait_for_image
from tests.conftest import ingest_zip, make_zip

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def oblique_mr(user, tmp_path, eager_celery) -> Series:
    """6 slices of 48 x 40, tilted 20 degrees about x: a bright disc on a dark background."""
    angle = np.radians(20)
    orientation = (1.0, 0.0, 0.0, 0.0, float(np.cos(angle)), float(np.sin(angle)))
    rows, cols = np.mgrid[0:48, 0:40]
    disc = ((rows - 24) ** 2 + (cols - 20) ** 2 < 15**2) * 600 + ((rows - 14) ** 2 + (cols - 26) ** 2 < 16) * 300
    voxels = np.stack([disc + 20 * k for k in range(6)]).astype(np.int16)
    paths = dicomgen.write_volume(tmp_path / "mr", voxels, orientation=orientation, slice_step=3.0, Modality="MR")
    ingest_zip(user, make_zip(tmp_path / "mr.zip", {p.name: p for p in paths}))
    series = Series.objects.get(study__owner=user)
    assert "acquired" in series.planes and series.render_status == Series.Render.DONE
    return series


def test_the_acquired_button_shows_the_frames_as_stored(page, live_server, oblique_mr):
    sign_in(page, live_server, f"/series/{oblique_mr.pk}/")
    wait_for_image(page, "img.naturalWidth > 0")
    presets = page.eval_on_selector_all("#preset option", "options => options.map(o => o.textContent)")
    assert any("Brain/soft" in text for text in presets), presets
    page.click("#plane-picker [data-plane=acquired]")
    shown = wait_for_image(page, "img.dataset.src.includes('/acquired/')")
    assert (shown["width"], shown["height"]) == (40, 48)  # the frames' own grid, not a resampled plane
    assert page.get_attribute("#plane-picker [data-plane=acquired]", "class") == "active"
    shot(page, "display-acquired-plane")
