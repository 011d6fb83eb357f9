"""The pages of a share link, open without an account: ``/s/<token>/`` opens the study read-only
and remembers the link in the session; the viewer and the endpoints it uses live under
``/shared/<link id>/`` and check, on every request, that this session opened the link and that the
link is still active (``studies.services.links.link_check``), then take the series from
``studies.selectors.series_visible_through_link``. Anything else answers 404; a link expired or
revoked says so (a page, or a JSON ``detail`` with 403). No answer is cached by the browser,
so that nothing of a revoked link is shown again from its cache.
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from studies import selectors
from studies.services import links
from viewer import views

SESSION_KEY = "share_links"
SESSION_LINKS_KEPT = 20  # the links a browser opened most recently


class LinkGone(Exception):
    def __init__(self, resolution: links.Resolution):
        self.resolution = resolution


def gone_page(request, resolution: links.Resolution):
    return render(request, "viewer/link_gone.html", {"reason": resolution.reason}, status=410)


def gone_json(resolution: links.Resolution) -> JsonResponse:
    return JsonResponse({"detail": resolution.reason}, status=403)


def remember(request, link_id: int) -> None:
    opened = [pk for pk in request.session.get(SESSION_KEY, []) if pk != link_id]
    request.session[SESSION_KEY] = [link_id, *opened][:SESSION_LINKS_KEPT]


def session_link(request, link_id: int):
    """The link ``link_id`` if this session opened it and it is active; else 404 or LinkGone."""
    if link_id not in request.session.get(SESSION_KEY, []):
        raise Http404
    found = links.link_check(link_id)
    if found.link is None:
        raise Http404
    if not found.active:
        raise LinkGone(found)
    return found.link


def link_series(link, pk: int):
    queryset = selectors.series_visible_through_link(link).select_related("study__patient")
    return get_object_or_404(queryset, pk=pk)


def study_page(request, link):
    series = list(selectors.series_visible_through_link(link))
    return render(request, "viewer/study.html", views.study_page_context(link.study, series, link))


@never_cache
@require_GET
def link_open(request, token: str):
    found = links.link_resolve(token)
    if found.link is None:
        raise Http404
    if not found.active:
        return gone_page(request, found)
    links.link_use(link=found.link, request=request)
    remember(request, found.link.pk)
    return study_page(request, found.link)


def link_page(view):
    """An HTML page of an opened link: the link checked first; expired or revoked says so."""

    def page(request, link_id: int, **kwargs):
        try:
            link = session_link(request, link_id)
        except LinkGone as gone:
            return gone_page(request, gone.resolution)
        return view(request, link, **kwargs)

    page.__name__, page.__doc__ = view.__name__, view.__doc__
    return never_cache(require_GET(page))


def link_json(view):
    """A JSON endpoint of an opened link: the link checked first; expired or revoked is a 403."""

    def answer(request, link_id: int, **kwargs):
        try:
            link = session_link(request, link_id)
        except LinkGone as gone:
            return gone_json(gone.resolution)
        return view(request, link, **kwargs)

    answer.__name__, answer.__doc__ = view.__name__, view.__doc__
    return never_cache(require_GET(answer))


@link_page
def link_study(request, link):
    """The link's study page again (the viewer's way back to it): a page open like the first."""
    links.link_use(link=link, request=request)
    return study_page(request, link)


@link_page
def link_series_viewer(request, link, pk: int):
    series = link_series(link, pk)
    links.link_use(link=link, request=request, series=series)
    return views.viewer_page(request, series, list(selectors.series_visible_through_link(link)), link)


@link_json
def link_study_status(request, link):
    return views.study_status_answer(selectors.series_visible_through_link(link), link)


@link_json
def link_series_config(request, link, pk: int):
    return views.series_config_answer(request, link_series(link, pk), link)


@link_json
def link_series_status(request, link, pk: int):
    return views.series_status_answer(request, link_series(link, pk), link)


@link_json
def link_image_tags(request, link, pk: int):
    if link.deidentified:
        return JsonResponse({"detail": "The tag browser is off for a de-identified link."}, status=403)
    series = link_series(link, pk)
    return views.image_tags_answer(request, series, selectors.instances_visible_through_link(link), link)
