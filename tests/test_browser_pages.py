"""Issue 12's page defects, the study page's buttons and the dark theme, in a real Chromium.

Each check fails on the code before the fix: the unstyled sharing panel, the `.processing` rule
that hit the upload card and the "Preparing images" badge, the study header whose description ran
over the accession, the study list that scrolled sideways at 1440 px, the raw "decoding" stage,
the share error shown as neutral info, two size rules, the bare patient sex "O", and no dark theme.
Screenshots go to test-artifacts/screenshots/ (every page in both themes).
"""

from __future__ import annotations

import os
import zipfile

import pytest

from audit.models import AuditEvent
from studies.models import Series, Study, StudyShare, Upload
from tests.browsing import open_page, shot, sign_in
from tests.conftest import PASSWORD
from tests.factories import make_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_WORDS = "PET-CT_WHOLEBODY_HEAD_AND_NECK_RESTAGING_PROTOCOL"
DESCRIPTION = ((LONG_WORDS + "_") * 5)[:200]  # 200 characters, hardly any place to break
assert len(DESCRIPTION) == 200


def box(page, selector: str) -> dict:
    return page.eval_on_selector(
        selector,
        """node => { const r = node.getBoundingClientRect(); const s = getComputedStyle(node);
          return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height,
                  paddingLeft: parseFloat(s.paddingLeft), paddingTop: parseFloat(s.paddingTop),
                  marginTop: parseFloat(s.marginTop), maxWidth: s.maxWidth, background: s.backgroundColor,
                  scrollWidth: node.scrollWidth, clientWidth: node.clientWidth}; }""",
    )


def intersect(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def rgb(css: str) -> tuple[int, ...]:
    return tuple(int(float(part)) for part in css[css.index("(") + 1 : -1].split(",")[:3])


def sign_in_as(page, live_server, username: str, path: str = "/") -> None:
    page.goto(live_server.url + path)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}{path}")


def test_study_page_header_sharing_badge_buttons_and_delete(page, browser, live_server, user, other_user):
    study = make_study(
        user, 1, description=DESCRIPTION, accession_number="ACC-2024-000123", num_instances=21, series_count=2
    )
    study.patient.sex = "O"
    study.patient.save()
    Series.objects.filter(study=study, series_number=2).update(render_status=Series.Render.RENDERING, images_total=9)
    StudyShare.objects.create(study=study, user=other_user, created_by=user)
    url = f"/studies/{study.pk}/"
    sign_in(page, live_server, url)

    # the header: the 200-character description stays in its box, clear of the accession
    description = box(page, ".facts div:has(> dt:text-is('Description')) dd")
    accession = box(page, ".facts div:has(> dt:text-is('Accession')) dd")
    assert not intersect(description, accession), (description, accession)
    assert description["scrollWidth"] <= description["clientWidth"] + 1
    assert "· Other" in page.inner_text(".study-head p.muted")  # PatientSex O, not a bare "O"

    # the Sharing panel is padded like the other cards; a compact select, a usable name field
    panel, select, field = box(page, ".sharing"), box(page, ".share-form select"), box(page, "#share-target")
    assert panel["paddingLeft"] >= 16 and panel["paddingTop"] >= 16, panel
    assert select["width"] <= 160, select
    assert field["width"] >= 220 and field["height"] >= 34, field
    assert select["top"] < field["bottom"] and field["top"] < select["bottom"], "on one line"

    # "Preparing images" is a small badge, not the 560 px box of the preparing page
    badge = box(page, ".series-status .status.processing")
    assert badge["height"] < 32 and badge["marginTop"] == 0 and badge["maxWidth"] == "none", badge

    # sharing with an unknown user is an error, in the error style
    page.fill("#share-target", "nobody-by-that-name")
    page.click(".share-form button[type=submit]")
    page.wait_for_selector(".messages li.error")
    red, green, blue = rgb(box(page, ".messages li.error")["background"])
    assert red > green and red > blue, "a reddish error background, not the neutral info one"
    assert page.get_attribute(".messages li.error", "role") == "alert"
    shot(page, "pages-study-share-error")

    # owner's buttons: download (the API's ZIP) and delete, behind a confirmation
    assert page.get_attribute("#study-download", "href") == f"/api/studies/{study.pk}/archive.zip"
    response = page.request.get(live_server.url + f"/api/studies/{study.pk}/archive.zip")
    assert response.status == 200 and response.headers["content-type"] == "application/zip"
    page.click("#study-delete")
    page.wait_for_selector("#delete-dialog[open]")
    shot(page, "pages-study-delete-confirm")
    page.click("#delete-dialog [data-closes]")
    page.wait_for_selector("#delete-dialog", state="hidden")
    assert Study.objects.filter(pk=study.pk).exists()

    # the user it is shared with sees neither button
    context, shared = open_page(browser)
    try:
        sign_in_as(shared, live_server, "bob", url)
        assert shared.locator("#study-download, #study-delete, .sharing").count() == 0
        assert shared.errors == []
    finally:
        context.close()

    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing runs off the side
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(page, "pages-study-390")
    page.click("#study-delete")
    page.click("#delete-dialog button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    assert "The study and its 2 series were deleted." in page.inner_text(".messages li.success")
    shot(page, "pages-study-deleted")
    assert not Study.objects.filter(pk=study.pk).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.STUDY_DELETE, user=user).count() == 1


def test_study_list_fits_and_the_upload_card_speaks_plainly(page, live_server, user, tmp_path):
    long_id = "INSTITUTION-PACS-" + "9" * 47  # 64 characters, the longest PatientID (LO)
    make_study(user, 1, patient_id=long_id, description=DESCRIPTION, name="Verylongfamilyname^Jane")
    make_study(user, 2)
    sign_in(page, live_server)

    # at 1440 px the whole table fits: no sideways scroll hiding Images and Uploaded
    card = box(page, ".table-card")
    assert card["scrollWidth"] <= card["clientWidth"], card
    for label in ("Images", "Uploaded"):
        header = box(page, f"table.studies th:has-text('{label}')")
        assert header["right"] <= card["right"] and header["right"] <= 1440, (label, header)
    assert page.get_attribute(f"table.studies [title='{long_id}']", "title") == long_id  # whole value on hover
    shot(page, "pages-study-list-1440")

    # the upload card: its size by the same rule as the table, stage names as words, full width
    archive = tmp_path / "small.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.dcm", os.urandom(20_800))  # about 20.4 KiB: "20 KB" by one old rule, "20.4 KB" by the other
    page.goto(live_server.url + "/upload/")
    page.wait_for_selector("body[data-ready=upload]", state="attached")
    list_width = box(page, "#upload-list")["width"]
    page.set_input_files("#file-input", str(archive))
    page.wait_for_selector(".upload-item.processing")
    card_size = page.inner_text(".upload-item [data-role=size]")
    upload = Upload.objects.get(owner=user)
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.PROCESSING, stage="decoding", progress=40)
    page.wait_for_function("() => document.querySelector('.upload-item [data-role=stage]').textContent.includes('40%')")
    assert page.inner_text(".upload-item [data-role=stage]") == "Decoding images (40%)"
    item = box(page, ".upload-item.processing")
    assert item["width"] >= list_width - 40, "the card keeps the list's width while processing"
    shot(page, "pages-upload-decoding")

    page.reload()
    row = page.locator(f"tr[data-upload='{upload.pk}']")
    assert row.locator("[data-role=status]").inner_text() == "Decoding images"
    assert row.locator("[data-bytes]").inner_text() == card_size == "20.4 KB"


CONTRAST = """() => {
  const parse = (css) => {
    const m = css.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, under) => ({r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
                                 b: top.b * top.a + under.b * (1 - top.a), a: 1});
  const linear = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = (c) => 0.2126 * linear(c.r) + 0.7152 * linear(c.g) + 0.0722 * linear(c.b);
  const backdrop = (node) => {  // the solid colour behind a node (null over pictures and gradients)
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const style = getComputedStyle(n);
      if (style.backgroundImage !== "none" && !n.matches("html, body")) return null;
      const colour = parse(style.backgroundColor);
      if (colour && colour.a > 0) { layers.push(colour); if (colour.a >= 1) break; }
    }
    return layers.reverse().reduce((under, top) => over(top, under), {r: 255, g: 255, b: 255, a: 1});
  };
  const low = [];
  for (const node of document.body.querySelectorAll("*")) {
    const text = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim())
      || node.matches("input:not([type=hidden]):not([type=file]):not([type=range]), select");
    if (!text || !node.getClientRects().length || node.closest(".vp, [disabled], .visually-hidden")) continue;
    const style = getComputedStyle(node);
    if (style.visibility === "hidden" || Number(style.opacity) < 1) continue;
    const colour = parse(style.color), under = backdrop(node);
    if (!colour || colour.a === 0 || !under) continue;
    const a = lum(over(colour, under)), b = lum(under);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const need = size >= 24 || (size >= 18.6 && bold) ? 3 : 4.5;
    const what = `${node.tagName}.${node.className} "${node.textContent.trim().slice(0, 30)}"`;
    if (ratio < need) low.push(`${what} ${ratio.toFixed(2)}`);
    if (node.matches("input, select") && node.parentElement) {  // a field's edge against what is around it
      const around = backdrop(node.parentElement), edge = parse(style.borderTopColor);
      if (around && edge) {
        const e = lum(over(edge, around)), r = lum(around);
        const boundary = (Math.max(e, r) + 0.05) / (Math.min(e, r) + 0.05);
        if (boundary < 3) low.push(`${what} edge ${boundary.toFixed(2)}`);
      }
    }
  }
  return low;
}"""
# Records the theme the first paint would use: the one set when <body> starts (theme.js in <head>).
FIRST_THEME = """
new MutationObserver((changes, observer) => {
  if (document.body) { window.themeAtBody = document.documentElement.dataset.theme || "none"; observer.disconnect(); }
}).observe(document, {childList: true, subtree: true});
"""


def test_dark_theme_on_every_page_with_readable_text_and_a_remembered_toggle(browser, live_server, user, other_user):
    study = make_study(user, 7, series_count=2, description="Chest CT", accession_number="A1")
    study.patient.sex = "O"
    study.patient.save()
    viewed, preparing = study.series.order_by("series_number")
    Series.objects.filter(pk=preparing.pk).update(planes={}, render_status=Series.Render.RENDERING, images_total=5)
    StudyShare.objects.create(study=study, user=other_user, created_by=user)
    Upload.objects.create(owner=user, original_name="ct.zip", size_bytes=76_000_000, stage="failed", status="failed")
    pages = {
        "login": "/accounts/login/",
        "password-reset": "/accounts/password_reset/",
        "studies": "/",
        "upload": "/upload/",
        "study": f"/studies/{study.pk}/",
        "preparing": f"/series/{preparing.pk}/",
        "viewer": f"/series/{viewed.pk}/",
        "not-found": "/studies/999999/",
    }
    low = {}
    for scheme in ("light", "dark"):
        context, page = open_page(browser, color_scheme=scheme)
        context.add_init_script(FIRST_THEME)
        try:
            for name, path in pages.items():
                if name == "studies":
                    sign_in(page, live_server)
                else:
                    page.goto(live_server.url + path)
                page.wait_for_load_state("load")
                if name == "viewer":
                    page.wait_for_selector(".vp-stage img", state="attached")
                    metadata = page.locator("button", has_text="Metadata")
                    if metadata.count():  # the side panel too
                        metadata.first.click()
                assert page.evaluate("() => window.themeAtBody") == scheme, f"{name}: no flash of the other theme"
                background = rgb(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))
                assert (sum(background) < 3 * 60) == (scheme == "dark"), (name, scheme, background)
                shot(page, f"theme-{scheme}-{name}")
                low.update({f"{scheme} {name}: {item}": 1 for item in page.evaluate(CONTRAST)})
            assert page.errors == []
        finally:
            context.close()
    assert not low, "text (4.5:1, large 3:1) or field edges (3:1) below WCAG AA contrast:\n" + "\n".join(low)

    # the toggle: the system says dark, the user picks light; remembered on the next page
    context, page = open_page(browser, color_scheme="dark")
    try:
        sign_in(page, live_server)
        assert page.get_attribute("html", "data-theme") == "dark"
        assert page.get_attribute("#theme-toggle", "aria-pressed") == "true"
        page.click("#theme-toggle")
        assert page.get_attribute("html", "data-theme") == "light"
        page.goto(live_server.url + f"/studies/{study.pk}/")
        assert page.get_attribute("html", "data-theme") == "light"
        assert page.evaluate("() => localStorage.getItem('dicomviewer-theme')") == "light"
        page.click("#theme-toggle")
        page.reload()
        assert page.get_attribute("html", "data-theme") == "dark"
        assert page.errors == []
    finally:
        context.close()
