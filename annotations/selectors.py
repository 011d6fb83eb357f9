"""Whose measurements a user reaches: their own, on series they may still see (studies.selectors
decides that; a study no longer shared hides its measurements too)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from annotations.models import Annotation
from studies import selectors
from studies.models import Series


def visible_series_or_404(user, pk: int) -> Series:
    series = selectors.series_visible_to(user).filter(pk=pk).first()
    if series is None:
        raise Http404
    return series


def annotations_of(user, series: Series) -> QuerySet[Annotation]:
    """``user``'s own measurements on ``series`` (which the caller got from visible_series_or_404)."""
    return Annotation.objects.filter(owner=user, series=series)
