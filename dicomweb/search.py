"""QIDO-RS answers: query parameters to matches, matches to DICOM JSON (PS3.18 10.6)."""

from __future__ import annotations

from django.http import HttpResponse
from rest_framework.exceptions import ParseError

from audit.models import AuditEvent
from audit.services import record
from dicomweb import qido
from dicomweb.http import json_response, require_json
from dicomweb.resources import series_for, service_root, study_for
from studies import selectors


def qido_answer(request, queryset, query: qido.Query, values, default: set[str], level: str) -> HttpResponse:
    rows, truncated = qido.page(queryset, query)
    root = service_root(request)
    body = [qido.answer(values(row, root), default, query) for row in rows]
    record(
        AuditEvent.Action.STUDY_SEARCH,
        request=request,
        detail={"filters": query.filter_names(), "level": level, "results": len(body), "dicomweb": True},
    )
    headers = {}
    if truncated:
        headers["Warning"] = f'299 dicomweb "The result was limited to {qido.MAX_RESULTS} matches; use limit/offset."'
    return json_response(body, headers=headers)


def parse(request) -> qido.Query:
    require_json(request)
    try:
        return qido.parse_query(request.query_params)
    except qido.QueryError as exc:
        raise ParseError(str(exc)) from None


def matching(queryset, query: qido.Query, levels):
    try:
        return qido.apply(queryset, query, levels)
    except qido.QueryError as exc:
        raise ParseError(str(exc)) from None


def search_studies(request) -> HttpResponse:
    query = parse(request)
    queryset = selectors.studies_visible_to(request.user).select_related("patient").order_by("-study_date", "-id")
    queryset = matching(queryset, query, [(qido.STUDY_KEYS, "")])
    return qido_answer(request, queryset, query, qido.study_values, qido.STUDY_DEFAULT, "study")


def search_series(request, study_uid: str | None) -> HttpResponse:
    query = parse(request)
    queryset = selectors.series_visible_to(request.user).select_related("study__patient")
    if study_uid is not None:
        queryset = queryset.filter(study=study_for(request.user, study_uid))
    queryset = matching(queryset, query, [(qido.SERIES_KEYS, ""), (qido.STUDY_KEYS, "study__")])
    queryset = queryset.order_by("study_id", "series_number", "id")
    return qido_answer(request, queryset, query, qido.series_values, qido.SERIES_DEFAULT, "series")


def search_instances(request, study_uid: str | None, series_uid: str | None) -> HttpResponse:
    query = parse(request)
    queryset = selectors.instances_visible_to(request.user).select_related("series__study__patient")
    if series_uid is not None:
        queryset = queryset.filter(series=series_for(request.user, study_uid, series_uid))
    elif study_uid is not None:
        queryset = queryset.filter(series__study=study_for(request.user, study_uid))
    levels = [(qido.INSTANCE_KEYS, ""), (qido.SERIES_KEYS, "series__"), (qido.STUDY_KEYS, "series__study__")]
    queryset = matching(queryset, query, levels).order_by("series__study_id", "series_id", "instance_number", "id")
    return qido_answer(request, queryset, query, qido.instance_values, qido.INSTANCE_DEFAULT, "instance")
