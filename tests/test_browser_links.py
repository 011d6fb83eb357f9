"""Share links in a real Chromium: the owner makes a link on the study page and copies its URL;
a browser with no account opens it, sees the study, opens the viewer and an image is drawn, with
no measurement tools; once the owner revokes it on the study page, the link's pages say so."""

from __future__ import annotations

import pytest

from studies.models import ShareLink
from tests.browsing import open_page, shot, sign_in, wait_for_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_makes_a_link_and_an_anonymous_browser_views_the_study(page, browser, live_server, small_ct):
    series = small_ct
    sign_in(page, live_server, f"/studies/{series.study_id}/")
    page.fill("#link-label", "for the tumour board")
    page.fill("#link-hours", "2")
    page.click("#link-form button[type=submit]")
    page.wait_for_selector("#link-made:not([hidden])")
    url = page.input_value("#link-url")
    assert url.startswith(f"{live_server.url}/s/")
    shot(page, "links-owner-made")
    link = ShareLink.objects.get()
    assert page.inner_text(f'#link-list tr[data-link="{link.pk}"]').startswith("for the tumour board")
    assert link.label == "for the tumour board" and not link.deidentified

    context, anonymous = open_page(browser)
    try:
        anonymous.goto(url)
        anonymous.wait_for_selector(f'[data-series="{series.pk}"]')
        assert anonymous.locator("text=Upload").count() == 0 and anonymous.locator("#study-delete").count() == 0
        shot(anonymous, "links-anonymous-study")
        anonymous.click(f'[data-series="{series.pk}"] .btn.primary')
        anonymous.wait_for_url(f"{live_server.url}/shared/{link.pk}/series/{series.pk}/")
        shown = wait_for_image(anonymous, "img.naturalWidth > 0")
        assert shown["width"] > 0 and shown["grey"] > 0
        assert anonymous.locator("#measure-tools").count() == 0
        assert anonymous.locator("#tab-measurements").count() == 0
        shot(anonymous, "links-anonymous-viewer")

        page.click(f'#link-list tr[data-link="{link.pk}"] button')  # the row the page added
        page.wait_for_selector(".messages")
        assert "revoked" in page.inner_text("#links")
        assert page.locator(f'#link-list tr[data-link="{link.pk}"] button').count() == 0  # no second Revoke
        anonymous.reload()
        assert "revoked" in anonymous.inner_text("#link-gone")
        assert anonymous.locator(".vp-stage img").count() == 0
        assert anonymous.errors == [], "no JavaScript errors or blocked content on any page"
    finally:
        context.close()
    link.refresh_from_db()
    assert link.revoked_at is not None and link.use_count == 2
