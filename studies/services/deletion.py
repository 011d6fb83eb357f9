"""Deleting studies and series: rows first (one transaction), then their files once committed."""

from __future__ import annotations

from django.db import transaction

from studies import storage
from studies.models import Patient, Series, Study


def study_delete(study: Study) -> None:
    """Remove a study, its series, instances, original files and derived images."""
    with transaction.atomic():
        locked = Study.objects.select_for_update().filter(pk=study.pk).first()
        if locked is None:
            return
        series_ids = list(Series.objects.filter(study=locked).values_list("pk", flat=True))
        patient_id = locked.patient_id
        locked.delete()
        _delete_patient_if_empty(patient_id)
        transaction.on_commit(lambda: _remove_files(series_ids))


def series_delete(series: Series) -> None:
    """Remove a series and its files; the study's counts follow, and a study left empty goes too."""
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(pk=series.study_id).first()
        if study is None:
            return
        deleted, _ = Series.objects.filter(pk=series.pk).delete()
        if not deleted:
            return
        if Series.objects.filter(study=study).exists():
            study_update_counts(study)
        else:
            patient_id = study.patient_id
            study.delete()
            _delete_patient_if_empty(patient_id)
        series_id = series.pk
        transaction.on_commit(lambda: _remove_files([series_id]))


def study_update_counts(study: Study) -> None:
    """num_series, num_instances and ModalitiesInStudy from the study's series."""
    rows = list(Series.objects.filter(study=study).values_list("modality", "num_instances"))
    Study.objects.filter(pk=study.pk).update(
        modalities="\\".join(sorted({modality for modality, _ in rows if modality}))[:128],
        num_series=len(rows),
        num_instances=sum(count for _, count in rows),
    )


def _delete_patient_if_empty(patient_id: int) -> None:
    Patient.objects.filter(pk=patient_id, studies__isnull=True).delete()


def _remove_files(series_ids: list[int]) -> None:
    for series_id in series_ids:
        storage.remove_tree(storage.series_originals_dir(series_id))
        storage.remove_tree(storage.series_derived_root(series_id))
