"""The study list: search, filters, sorting and thumbnails, in a fixed number of queries.

Visibility comes from ``studies.selectors``; this module only narrows and orders what a user
may already see.
"""

from __future__ import annotations

from django.db.models import F, OuterRef, Q, QuerySet, Subquery

from studies import selectors
from studies.models import Series

# sort key -> model fields (nulls last whichever the direction)
SORTS = {
    "patient": ("patient__name", "patient__patient_id"),
    "pid": ("patient__patient_id",),
    "date": ("study_date", "study_time"),
    "description": ("description",),
    "accession": ("accession_number",),
    "modality": ("modalities",),
    "series": ("num_series",),
    "images": ("num_instances",),
    "uploaded": ("created_at",),
}
DEFAULT_SORT = "-uploaded"
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
FILTER_NAMES = ("search", "modality", "date_from", "date_to")


def parse_sort(value: str | None) -> str:
    key = (value or "").lstrip("-")
    return value if key in SORTS else DEFAULT_SORT


def parse_page_size(value: str | None) -> int:
    try:
        size = int(value or DEFAULT_PAGE_SIZE)
    except ValueError:
        return DEFAULT_PAGE_SIZE
    return size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE


def order_by(sort: str) -> list:
    descending = sort.startswith("-")
    fields = SORTS[sort.lstrip("-")]
    expressions = [F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True) for name in fields]
    return [*expressions, "-id" if descending else "id"]


def search_q(text: str) -> Q:
    """Every word must appear in the patient's name or ID, the accession number or the description."""
    query = Q()
    for word in text.split():
        query &= (
            Q(patient__name__icontains=word)
            | Q(patient__patient_id__icontains=word)
            | Q(accession_number__icontains=word)
            | Q(description__icontains=word)
        )
    return query


def modality_q(code: str) -> Q:
    """Whole codes of the backslash-separated ModalitiesInStudy: CT does not match RTSTRUCT."""
    sep = "\\"
    return (
        Q(modalities=code)
        | Q(modalities__startswith=code + sep)
        | Q(modalities__endswith=sep + code)
        | Q(modalities__contains=sep + code + sep)
    )


def filter_studies(queryset: QuerySet, filters: dict) -> QuerySet:
    if filters.get("search"):
        queryset = queryset.filter(search_q(filters["search"]))
    if filters.get("modality"):
        queryset = queryset.filter(modality_q(filters["modality"]))
    if filters.get("date_from"):
        queryset = queryset.filter(study_date__gte=filters["date_from"])
    if filters.get("date_to"):
        queryset = queryset.filter(study_date__lte=filters["date_to"])
    return queryset


def with_thumbnail(queryset: QuerySet) -> QuerySet:
    """Annotate the series whose thumbnail stands for the study (its largest), in the same query."""
    largest = Series.objects.filter(study=OuterRef("pk")).order_by("-num_frames", "series_number", "id")
    return queryset.annotate(
        thumb_series_id=Subquery(largest.values("pk")[:1]),
        thumb_version=Subquery(largest.values("render_version")[:1]),
    )


def study_rows(user, filters: dict, sort: str) -> QuerySet:
    queryset = selectors.studies_visible_to(user).select_related("patient")
    return with_thumbnail(filter_studies(queryset, filters)).order_by(*order_by(sort))


def modality_choices(user) -> list[str]:
    codes = selectors.series_visible_to(user).exclude(modality="").order_by("modality")
    return list(codes.values_list("modality", flat=True).distinct())
