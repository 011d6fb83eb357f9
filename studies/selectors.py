"""What a user may see. Every page, API answer and image goes through these querysets."""

from __future__ import annotations

from django.db.models import QuerySet

from studies.models import Instance, Patient, Series, Study, Upload


def studies_visible_to(user) -> QuerySet[Study]:
    if not user.is_authenticated:
        return Study.objects.none()
    return Study.objects.filter(owner=user)


def series_visible_to(user) -> QuerySet[Series]:
    return Series.objects.filter(study__in=studies_visible_to(user))


def instances_visible_to(user) -> QuerySet[Instance]:
    return Instance.objects.filter(series__study__in=studies_visible_to(user))


def patients_visible_to(user) -> QuerySet[Patient]:
    return Patient.objects.filter(studies__in=studies_visible_to(user)).distinct()


def uploads_visible_to(user) -> QuerySet[Upload]:
    if not user.is_authenticated:
        return Upload.objects.none()
    return Upload.objects.filter(owner=user)
