"""The pages: study list, upload, study, viewer; and the small JSON answers the viewer polls.

Every view requires login and takes its objects from ``studies.selectors``, so another user's
ids answer 404. Search values travel in POST bodies and the session, never in URLs or logs.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.models import AuditEvent
from audit.services import record, record_images_view
from studies import selectors, storage
from studies.services import deid, deletion, image_access, links, sharing
from studies.services.archives import members_of
from studies.services.uploads import InvalidUpload
from viewer import study_list
from viewer.dicom_tags import read_header_rows, source_frame
from viewer.forms import StudyFilterForm, filters_from_session
from viewer.presenters import STAGES, UNKNOWN_STAGE, series_config, series_href, series_status_json, upload_rows

FILTERS_KEY = "study_filters"


@login_required
@require_http_methods(["GET", "POST"])
def home(request):
    sort = study_list.parse_sort(request.GET.get("sort"))
    page_size = study_list.parse_page_size(request.GET.get("per"))
    if request.method == "POST":
        remember_filters(request)
        return redirect(f"{reverse('viewer:home')}?sort={sort}&per={page_size}")
    filters = filters_from_session(request.session.get(FILTERS_KEY))
    paginator = Paginator(study_list.study_rows(request.user, filters, sort), page_size)
    page = paginator.get_page(request.GET.get("page"))
    names = sorted(name for name in study_list.FILTER_NAMES if filters.get(name))
    action = AuditEvent.Action.STUDY_SEARCH if names else AuditEvent.Action.STUDY_LIST
    thumbnails = [study.thumb_series_id for study in page if study.thumb_series_id]
    record(action, request=request, detail={"filters": names, "results": paginator.count, "thumbnails": thumbnails})
    context = {
        "nav": "studies",
        "page": page,
        "page_range": paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        "form": StudyFilterForm(initial=filters),
        "filters": filters,
        "modalities": study_list.modality_choices(request.user),
        "sort": sort,
        "page_size": page_size,
        "page_sizes": study_list.PAGE_SIZES,
    }
    return render(request, "viewer/home.html", context)


def remember_filters(request) -> None:
    """Keep the search form's values in the session (Clear, or invalid values, forget them)."""
    form = StudyFilterForm(request.POST)
    if "clear" in request.POST or not form.is_valid():
        request.session.pop(FILTERS_KEY, None)
    else:
        request.session[FILTERS_KEY] = form.to_session()


@login_required
@require_GET
def upload(request):
    uploads = selectors.uploads_visible_to(request.user).filter(owner=request.user).prefetch_related("studies")
    stages = {"labels": STAGES, "unknown": UNKNOWN_STAGE}  # for upload.js (api.js stageLabel)
    context = {"nav": "upload", "uploads": upload_rows(uploads[:20]), "stages": stages}
    return render(request, "viewer/upload.html", context)


SHARE_NAMES_LISTED = 500  # suggestions in the share form; any allowed name may still be typed


def share_names(user) -> dict:
    """What the share form suggests: the names the owner may share with (their groups' members and
    their groups, unless SHARE_WITH_ANY_USER), and whether that is everyone."""
    users = selectors.share_users_for(user).exclude(pk=user.pk).order_by("username")
    groups = selectors.share_groups_for(user).order_by("name")
    return {
        "users": list(users.values_list("username", flat=True)[:SHARE_NAMES_LISTED]),
        "groups": list(groups.values_list("name", flat=True)[:SHARE_NAMES_LISTED]),
        "anyone": settings.SHARE_WITH_ANY_USER,
    }


@login_required
@require_GET
def study_detail(request, pk: int):
    study = get_object_or_404(selectors.studies_visible_to(request.user).select_related("patient"), pk=pk)
    series = list(study.series.all())
    record(AuditEvent.Action.STUDY_VIEW, request=request, obj=study, detail={"thumbnails": [s.pk for s in series]})
    context = {
        **study_page_context(study, series),
        "nav": "studies",
        "can_delete": selectors.can_delete_study(request.user, study),
    }
    if selectors.can_share_study(request.user, study):
        context["shares"] = study.shares.select_related("user", "group").order_by("id")
        context["share_names"] = share_names(request.user)
        context["links"] = selectors.links_of_study(request.user, study)
        context["link_hours"] = {"default": settings.SHARE_LINK_DEFAULT_HOURS, "max": links.max_hours()}
    return render(request, "viewer/study.html", context)


def study_page_context(study, series: list, link=None) -> dict:
    """What the study page shows of a study, signed in or through a share link (``link``)."""
    ttl = settings.SHARE_LINK_IMAGE_URL_TTL if link is not None else None
    rows = [
        {
            "series": one,
            "href": series_href(one.pk, link),
            "thumbnail": image_access.thumbnail_url(one.pk, one.render_version, ttl=ttl),
        }
        for one in series
    ]
    status_url = (
        reverse("viewer:link-study-status", args=[link.pk]) if link else reverse("viewer:study-status", args=[study.pk])
    )
    return {
        "study": study,
        "patient": study.patient,
        "series_rows": rows,
        "status_url": status_url,
        "link": link,
        "hide_phi": link is not None and link.deidentified,
    }


@login_required
@require_POST
def study_anonymise(request, pk: int):
    """The study page's anonymised export form: "Download anonymised" goes on to the API's
    de-identified archive (a GET the browser saves), "Make an anonymised copy" ingests the copy as a
    new upload of the requesting user, whose progress the upload page shows."""
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    try:
        options = deid.Options.parse(request.POST.getlist("options"))
        if request.POST.get("do") == "download":
            query = urlencode({"deidentify": "basic", "options": ",".join(options.names)})
            return redirect(f"{reverse('api:study-archive', args=[study.pk])}?{query}")
        if request.POST.get("do") != "copy":
            raise deid.DeidError("Choose Download anonymised or Make an anonymised copy.")
        members = members_of(selectors.instances_visible_to(request.user).filter(series__study=study))
        upload, summary = deid.deid_copy(
            study=study, members=members, options=options, user=request.user, request=request
        )
    except (deid.DeidError, InvalidUpload) as exc:
        messages.error(request, str(exc))
        return redirect("viewer:study", pk=study.pk)
    left_out = f"; {len(summary.left_out)} left out (they may show identifying text)" if summary.left_out else ""
    messages.success(
        request, f"An anonymised copy of {summary.files} files is being imported (upload {upload.pk}){left_out}."
    )
    return redirect("viewer:upload")


@login_required
@require_POST
def study_delete(request, pk: int):
    """The study page's "Delete study" (after its confirmation dialog): the owner's (or a holder of
    the delete permission's) act; someone it is only shared with gets a 403, anyone else a 404."""
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    if not selectors.can_delete_study(request.user, study):
        raise PermissionDenied("Only the owner of this study can delete it.")
    series = study.num_series
    deletion.study_delete(study=study, user=request.user, request=request)  # audited by the service
    messages.success(request, f"The study and its {series} series were deleted.")
    return redirect("viewer:home")


@login_required
@require_POST
def study_share_add(request, pk: int):
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    target = request.POST.get("target", "").strip()
    kind = request.POST.get("kind", "user")
    try:
        sharing.share_add(
            study=study,
            by=request.user,
            request=request,
            username=target if kind == "user" else "",
            group_name=target if kind == "group" else "",
        )
    except PermissionError:
        raise PermissionDenied from None
    except sharing.ShareError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Shared (read-only) with {'group ' if kind == 'group' else ''}{target}.")
    return redirect("viewer:study", pk=study.pk)


@login_required
@require_POST
def study_share_remove(request, pk: int, share_id: int):
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    share = get_object_or_404(study.shares, pk=share_id)
    try:
        sharing.share_remove(share=share, by=request.user, request=request)
    except PermissionError:
        raise PermissionDenied from None
    messages.success(request, "The share was taken back.")
    return redirect("viewer:study", pk=study.pk)


@login_required
@require_POST
def study_link_revoke(request, pk: int, link_id: int):
    """The study page's "Revoke" of a share link (made with the API, from the same page)."""
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    if not selectors.can_share_study(request.user, study):
        raise PermissionDenied("Only the owner of this study can revoke its links.")
    link = get_object_or_404(selectors.links_of_study(request.user, study), pk=link_id)
    links.link_revoke(link=link, by=request.user, request=request)
    messages.success(request, "The link was revoked: it no longer opens the study.")
    return redirect("viewer:study", pk=study.pk)


@login_required
@require_GET
def study_status(request, pk: int):
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    return study_status_answer(study.series.all())


def study_status_answer(series_list, link=None) -> JsonResponse:
    ttl = settings.SHARE_LINK_IMAGE_URL_TTL if link is not None else None
    rows = []
    for series in series_list:
        thumbnail = image_access.thumbnail_url(series.pk, series.render_version, ttl=ttl)  # audited with the page
        rows.append({**series_status_json(series), "thumbnail_url": thumbnail})
    return JsonResponse({"series": rows})


@login_required
@require_GET
def series_viewer(request, pk: int):
    queryset = selectors.series_visible_to(request.user).select_related("study__patient")
    series = get_object_or_404(queryset, pk=pk)
    siblings = list(series.study.series.all())
    detail = {"study_id": series.study_id, "thumbnails": [other.pk for other in siblings if other.pk != series.pk]}
    record(AuditEvent.Action.SERIES_VIEW, request=request, obj=series, detail=detail)
    return viewer_page(request, series, siblings)


def viewer_page(request, series, siblings: list, link=None):
    """The viewer of a series (or its progress page), signed in or through a share link."""
    urls = image_access.plane_urls(request, series, link_id=link.pk if link else None) if series.planes else None
    ttl = settings.SHARE_LINK_IMAGE_URL_TTL if link is not None else None
    for other in siblings:
        other.href = series_href(other.pk, link)
        other.thumbnail = image_access.thumbnail_url(other.pk, other.render_version, ttl=ttl)
    context = {
        "series": series,
        "study": series.study,
        "patient": series.study.patient,
        "siblings": siblings,
        "config": series_config(series, urls, link),
        "link": link,
        "hide_phi": link is not None and link.deidentified,
        "study_href": link_home(link) if link else reverse("viewer:study", args=[series.study_id]),
    }
    template = "viewer/viewer.html" if series.planes else "viewer/processing.html"
    return render(request, template, context)


def link_home(link) -> str:
    return reverse("viewer:link-study", args=[link.pk])


@login_required
@require_GET
def series_config_json(request, pk: int):
    """What the viewer needs to show another series of the study in one of its viewports: the same
    config the viewer page embeds, with signed image URLs (handed out, and audited, as on that page).
    Another user's series is a 404 like its page."""
    queryset = selectors.series_visible_to(request.user).select_related("study__patient")
    series = get_object_or_404(queryset, pk=pk)
    if series.planes:
        record(AuditEvent.Action.SERIES_VIEW, request=request, obj=series, detail={"study_id": series.study_id})
    return series_config_answer(request, series)


def series_config_answer(request, series, link=None) -> JsonResponse:
    if not series.planes:
        return JsonResponse(
            {"detail": "This series is still being prepared; try again in a moment.", **series_status_json(series)},
            status=409,
        )
    urls = image_access.plane_urls(request, series, link_id=link.pk if link else None)
    return JsonResponse(series_config(series, urls, link))


@login_required
@require_GET
def series_status(request, pk: int):
    """What the viewer polls: the series' preparation, and new signed image URLs (handed out, and
    audited, as on the viewer page) to replace those about to expire."""
    series = get_object_or_404(selectors.series_visible_to(request.user), pk=pk)
    return series_status_answer(request, series)


def series_status_answer(request, series, link=None) -> JsonResponse:
    body = series_status_json(series)
    if series.planes:
        body["images"] = image_access.plane_urls(request, series, link_id=link.pk if link else None)
    return JsonResponse(body)


@login_required
@require_GET
def image_tags(request, pk: int):
    """The header of the stored file behind one image (no pixel data), for the tag browser."""
    series = get_object_or_404(selectors.series_visible_to(request.user), pk=pk)
    return image_tags_answer(request, series, selectors.instances_visible_to(request.user))


def image_tags_answer(request, series, instances, link=None) -> JsonResponse:
    try:
        plane, index = request.GET["plane"], int(request.GET["index"])
        point = [float(request.GET[key]) if request.GET.get(key) else None for key in ("row", "col")]
        source = source_frame(series.layout or {}, series.planes or {}, plane, index, *point)
    except (KeyError, ValueError):
        return JsonResponse({"detail": "Give plane and index of an image of this series."}, status=400)
    except IndexError:
        return JsonResponse({"detail": "That image does not exist in this plane."}, status=404)
    instance = get_object_or_404(instances.filter(series=series), pk=source.instance_pk)
    rows, truncated = read_header_rows(storage.local_copy(instance.file), frame=source.frame)
    record_images_view(request, series, link_id=link.pk if link else None)
    return JsonResponse(
        {
            "instance": {"id": instance.pk, "number": instance.instance_number, "frames": instance.number_of_frames},
            "frame": source.frame,
            "reconstruction": source.reconstruction,
            "distance_mm": source.distance_mm,
            "tags": rows,
            "truncated": truncated,
        }
    )
