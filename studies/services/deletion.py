"""Deleting studies and series: their rows in one transaction, their files once it has committed.

A series' files are all under ``originals/<series>/`` and ``derived/<series>/`` (see storage), so
deleting a series removes those two prefixes; a rolled-back delete never loses a file, and files a
storage outage keeps from being removed are removed by ``cleanup_uploads`` later. The study
goes with its last series and the patient with its last study. Each delete is audited.
"""

from __future__ import annotations

import logging

from django.db import transaction

from audit.models import AuditEvent
from audit.services import record
from studies import storage
from studies.models import Patient, Series, Study
from studies.services import image_source
from studies.services.series_build import update_study

log = logging.getLogger(__name__)


def study_delete(*, study: Study, user=None, request=None) -> None:
    """Remove a study, its series, instances, shares and files (and its patient if left alone)."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().filter(pk=study.pk).first()
        if locked is None:
            return  # deleted meanwhile
        series_ids = list(Series.objects.filter(study=locked).values_list("pk", flat=True))
        record(
            AuditEvent.Action.STUDY_DELETE,
            request=request,
            user=user,
            obj=locked,
            detail={"series": len(series_ids), "instances": locked.num_instances},
        )
        patient_id = locked.patient_id
        locked.delete()
        Patient.objects.filter(pk=patient_id, studies__isnull=True).delete()
        transaction.on_commit(lambda: _remove_files(series_ids))


def series_delete(*, series: Series, user=None, request=None) -> None:
    """Remove a series, its instances and files; the study's counts follow. Deleting the last
    series of a study deletes the study."""
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(pk=series.study_id).first()
        locked = Series.objects.filter(pk=series.pk, study=study).first() if study else None
        if locked is None:
            return  # deleted meanwhile
        record(
            AuditEvent.Action.SERIES_DELETE,
            request=request,
            user=user,
            obj=locked,
            detail={"study_id": study.pk, "instances": locked.num_instances},
        )
        if not Series.objects.filter(study=study).exclude(pk=locked.pk).exists():
            study_delete(study=study, user=user, request=request)
            return
        series_id = locked.pk  # delete() clears it
        locked.delete()
        update_study(study)
        transaction.on_commit(lambda: _remove_files([series_id]))


def _remove_files(series_ids: list[int]) -> None:
    for series_id in series_ids:
        image_source.forget(series_id)
        try:
            storage.remove_series_files(series_id)
        except storage.StorageUnavailable as exc:  # no row refers to them: cleanup_uploads removes them later
            log.warning("series %s deleted; its files are left for cleanup (%s)", series_id, exc)
