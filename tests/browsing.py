"""Shared plumbing of the browser tests: one headless Debian Chromium per test session (Playwright),
pages that collect JavaScript errors and CSP reports, sign-in, screenshots and image read-back.

Screenshots go to test-artifacts/screenshots/. CI installs Debian's chromium; elsewhere set CHROMIUM
to a Chromium binary (browser tests are skipped, not failed, outside CI). The fixtures ``browser``,
``page`` and ``small_ct`` live in tests/conftest.py.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, REPO, ingest_zip, make_zip, shared_path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / "test-artifacts" / "screenshots"
CT_ZIP = ("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")
MR_ZIP = ("mr-brain-4series-fnndsc", "adi_brain_MR_4series.zip")
# Mean grey value of an <img>, read back through a canvas (CSS filters do not apply there).
MEAN_GREY = """(img) => {
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += data[i];
  return sum / (data.length / 4);
}"""


def launch_browser():
    """Yields a launched Chromium (a generator for a session fixture)."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (set CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django's ORM refuses to run
    # beside one unless told that this is fine (it is: the loop only waits for the browser).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def open_page(browser, **options):
    """A new browser context and tab that collects JavaScript errors."""
    context = browser.new_context(**{"viewport": {"width": 1440, "height": 900}, **options})
    context.set_default_timeout(20_000)
    context.add_init_script(f"window.meanGrey = {MEAN_GREY};")
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda error: tab.errors.append(str(error)))
    # the Content-Security-Policy reports what it blocks on the console
    tab.on("console", lambda message: "Content Security Policy" in message.text and tab.errors.append(message.text))
    return context, tab


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def sign_in(page, live_server, path: str = "/") -> None:
    page.goto(live_server.url + path)
    page.wait_for_selector("#id_username")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}{path}")


def shown_image(page, viewport: int = 0) -> dict:
    return page.evaluate(
        """(n) => {
          const img = document.querySelectorAll(".vp-stage img")[n];
          return {index: img.dataset.index, src: img.dataset.src, width: img.naturalWidth,
                  height: img.naturalHeight, grey: window.meanGrey(img)};
        }""",
        viewport,
    )


def wait_for_image(page, predicate: str, viewport: int = 0) -> dict:
    # Predicates are functions, not expressions: Playwright calls those over the DevTools
    # protocol, while an expression would be eval()-ed in the page, which our CSP forbids.
    page.wait_for_function(
        f"""() => {{ const img = document.querySelectorAll(".vp-stage img")[{viewport}];
                 return img && img.dataset.src && ({predicate}); }}"""
    )
    return shown_image(page, viewport)


def ingest_small_ct(user, tmp_path):
    """Eight neighbouring slices of the CT, ingested in this process."""
    import pydicom

    from studies.models import Series

    with zipfile.ZipFile(shared_path(*CT_ZIP)) as zf:
        names = [n for n in zf.namelist() if n.endswith(".dcm")]
        z = {n: float(pydicom.dcmread(zf.open(n), stop_before_pixels=True).ImagePositionPatient[2]) for n in names}
        names.sort(key=z.get)
        ingest_zip(user, make_zip(tmp_path / "ct8.zip", {name: zf.read(name) for name in names[100:108]}))
    return Series.objects.get(study__owner=user)
