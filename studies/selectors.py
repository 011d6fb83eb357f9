"""What a user may see and change. Every page, API and DICOMweb answer, image and download
goes through these querysets; anything outside them answers 404.

- A study belongs to the user who uploaded it (its owner).
- The owner may share it read-only with users and groups.
- Staff see everything (read-only unless they own it, except that staff may delete).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from studies.models import Instance, Patient, Series, Study, StudyShare, Upload


def studies_visible_to(user) -> QuerySet[Study]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_staff:
        return Study.objects.all()
    shared = StudyShare.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values("study_id")
    return Study.objects.filter(Q(owner=user) | Q(pk__in=shared))


def studies_editable_by(user) -> QuerySet[Study]:
    """Studies the user may delete or share: their own; staff may delete any."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_staff:
        return Study.objects.all()
    return Study.objects.filter(owner=user)


def series_visible_to(user) -> QuerySet[Series]:
    return Series.objects.filter(study__in=studies_visible_to(user))


def instances_visible_to(user) -> QuerySet[Instance]:
    return Instance.objects.filter(series__study__in=studies_visible_to(user))


def patients_visible_to(user) -> QuerySet[Patient]:
    return Patient.objects.filter(pk__in=studies_visible_to(user).values("patient_id"))


def uploads_visible_to(user) -> QuerySet[Upload]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Upload.objects.none()
    if user.is_staff:
        return Upload.objects.all()
    return Upload.objects.filter(owner=user)


def can_edit_study(user, study: Study) -> bool:
    return studies_editable_by(user).filter(pk=study.pk).exists()


def visible_series(user, pk: int) -> Series | None:
    """The series ``pk`` if ``user`` may see it, else None: the image path's one- or two-query
    version of ``series_visible_to(user).filter(pk=pk)`` (same rules)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    # layout (frame lists of whole volumes) is read only when a worker or on-demand render needs it
    series = Series.objects.select_related("study").defer("layout").filter(pk=pk).first()
    if series is None:
        return None
    if user.is_staff or series.study.owner_id == user.pk:
        return series
    shared = StudyShare.objects.filter(study_id=series.study_id).filter(Q(user=user) | Q(group__in=user.groups.all()))
    return series if shared.exists() else None
