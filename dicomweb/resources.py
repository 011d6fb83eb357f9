"""Studies, series and instances by UID, through ``studies.selectors`` (outside them: 404),
and the URIs this service hands out (absolute from the request, or relative to the service root).

A study UID can exist once per owner (each user's uploads form their own archive); when a user
sees several (staff, shares), their own comes first, else the oldest.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404

from studies import selectors
from studies.models import Instance, Series, Study


def _own_first(queryset: QuerySet, owner_field: str, user) -> QuerySet:
    return queryset.annotate(
        _theirs=Case(When(**{owner_field: user.pk}, then=Value(0)), default=Value(1), output_field=IntegerField())
    ).order_by("_theirs", "pk")


def study_for(user, study_uid: str) -> Study:
    visible = selectors.studies_visible_to(user).filter(study_instance_uid=study_uid)
    study = _own_first(visible, "owner", user).select_related("patient").first()
    if study is None:
        raise Http404("No such study, or not visible to you.")
    return study


def series_for(user, study_uid: str, series_uid: str) -> Series:
    study = study_for(user, study_uid)
    series = (
        selectors.series_visible_to(user)
        .filter(study=study, series_instance_uid=series_uid)
        .select_related("study__patient")
        .first()
    )
    if series is None:
        raise Http404("No such series in this study, or not visible to you.")
    return series


def instance_for(user, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    series = series_for(user, study_uid, series_uid)
    instance = (
        selectors.instances_visible_to(user)
        .filter(series=series, sop_instance_uid=sop_uid)
        .select_related("series__study")
        .first()
    )
    if instance is None:
        raise Http404("No such instance in this series, or not visible to you.")
    return instance


def instances_of(user, study_uid: str, series_uid: str | None = None) -> QuerySet[Instance]:
    if series_uid is None:
        study = study_for(user, study_uid)
        queryset = selectors.instances_visible_to(user).filter(series__study=study)
    else:
        series = series_for(user, study_uid, series_uid)
        queryset = selectors.instances_visible_to(user).filter(series=series)
    return queryset.select_related("series__study").order_by(
        "series__series_number", "series_id", "instance_number", "id"
    )


def service_root(request) -> str:
    """What URIs start with: ``https://host/dicomweb/``, or ``""`` when they are relative."""
    if settings.DICOMWEB_RELATIVE_URIS:
        return ""
    # scheme and host as Django sees them: X-Forwarded-Proto and -Host count only from a trusted
    # proxy (dicomviewer.front removes them otherwise), and the host is checked against ALLOWED_HOSTS
    prefix = request.META.get("SCRIPT_NAME", "").rstrip("/")
    return f"{request.scheme}://{request.get_host()}{prefix}/dicomweb/"


def instance_path(instance: Instance) -> str:
    series = instance.series
    return (
        f"studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )
