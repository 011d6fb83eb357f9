"""Query filters of the list endpoints (django-filter)."""

from __future__ import annotations

import re

from django import forms
from django.db.models import Q
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter

from studies.models import Instance, Patient, Series, Study, Upload

MAX_ID = 2**63 - 1


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value == "":  # given but empty: not "no filter"
            raise forms.ValidationError("Enter a whole number.", code="invalid")
        return super().to_python(value)


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(filters.NumberFilter):
    """A primary key: a positive integer that fits the database's 64-bit ids."""

    field_class = IdField


class StrictFilterSet(filters.FilterSet):
    """A filter given with an empty value is a 400 unless it is free text (where "" is a value):
    ``?status=`` or ``?study_date_after=`` do not quietly mean "no filter"."""

    def is_valid(self):
        valid = super().is_valid()
        for key in self._empty_non_text_keys():
            self.form.add_error(None, f"{key}: a value is required when the parameter is given.")
            valid = False
        return valid

    def _empty_non_text_keys(self) -> list[str]:
        keys = []
        for name, declared in self.filters.items():
            if isinstance(declared, filters.CharFilter):
                continue
            names = [name]
            if isinstance(declared, filters.DateFromToRangeFilter | filters.RangeFilter):
                names = [f"{name}_after", f"{name}_before", f"{name}_min", f"{name}_max"]
            keys += [key for key in names if key in self.data and self.data.get(key) == ""]
        return keys


def modality_q(field: str, value: str) -> Q:
    """``value`` is one of the backslash-separated modalities stored in ``field``."""
    value = value.strip().upper()
    return (
        Q(**{field: value})
        | Q(**{f"{field}__startswith": value + "\\"})
        | Q(**{f"{field}__endswith": "\\" + value})
        | Q(**{f"{field}__contains": "\\" + value + "\\"})
    )


class StudyFilter(StrictFilterSet):
    patient_id = filters.CharFilter(field_name="patient__patient_id", lookup_expr="iexact", help_text="PatientID")
    modality = filters.CharFilter(method="filter_modality", help_text="One of the study's modalities (e.g. CT)")
    study_date = filters.DateFromToRangeFilter(help_text="StudyDate range: study_date_after, study_date_before")
    accession_number = filters.CharFilter(lookup_expr="iexact", help_text="AccessionNumber")
    description = filters.CharFilter(lookup_expr="icontains", help_text="Part of the StudyDescription")
    study_instance_uid = filters.CharFilter(help_text="StudyInstanceUID")

    class Meta:
        model = Study
        fields = ["patient_id", "modality", "study_date", "accession_number", "description", "study_instance_uid"]

    def filter_modality(self, queryset, name, value):
        return queryset.filter(modality_q("modalities", value))


class PatientFilter(StrictFilterSet):
    patient_id = filters.CharFilter(lookup_expr="iexact", help_text="PatientID")

    class Meta:
        model = Patient
        fields = ["patient_id"]


class SeriesFilter(StrictFilterSet):
    study = IdFilter(field_name="study", help_text="id of the study")
    modality = filters.CharFilter(lookup_expr="iexact", help_text="Modality")
    series_instance_uid = filters.CharFilter(help_text="SeriesInstanceUID")
    description = filters.CharFilter(lookup_expr="icontains", help_text="Part of the SeriesDescription")

    class Meta:
        model = Series
        fields = ["study", "modality", "series_instance_uid", "description"]


class InstanceFilter(StrictFilterSet):
    series = IdFilter(field_name="series", help_text="id of the series")
    study = IdFilter(field_name="series__study", help_text="id of the study")
    sop_instance_uid = filters.CharFilter(help_text="SOPInstanceUID")
    sop_class_uid = filters.CharFilter(help_text="SOPClassUID")

    class Meta:
        model = Instance
        fields = ["series", "study", "sop_instance_uid", "sop_class_uid"]


class UploadFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=Upload.Status.choices)

    class Meta:
        model = Upload
        fields = ["status"]


class StrictSearchFilter(SearchFilter):
    """``?search=`` with at most ``max_terms`` words: each word adds a condition on every search
    field, and a few thousand of them make a query the database refuses (a 500 on SQLite)."""

    max_terms = 10

    def get_search_terms(self, request):
        terms = super().get_search_terms(request)
        if len(terms) > self.max_terms:
            raise ValidationError({self.search_param: [f"At most {self.max_terms} words."]})
        return terms


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=field,-other`` over the view's ordering_fields; anything else is a 400 (not ignored)."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params is None:
            return self.get_default_ordering(view)
        allowed = {name for name, _ in self.get_valid_fields(queryset, view, {"request": request})}
        terms = [term.strip() for term in params.split(",")]
        if not all(term.lstrip("-") in allowed for term in terms):
            raise ValidationError({self.ordering_param: [f"Order by one or more of: {', '.join(sorted(allowed))}."]})
        return terms

    def get_schema_operation_parameters(self, view):
        fields = sorted(getattr(view, "ordering_fields", []) or [])
        names = "|".join(re.escape(name) for name in fields)
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Comma-separated fields to order by, '-' for descending: {', '.join(fields)}.",
                "schema": {"type": "string", "pattern": f"^-?({names})(,-?({names}))*$"},
            }
        ]
