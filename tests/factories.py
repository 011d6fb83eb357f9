"""Rows for page tests, made directly (no ingest): fast, and any number of them."""

from __future__ import annotations

from studies.models import Patient, Series, Study


def make_study(owner, number: int, *, modalities="CT", series_count=1, **fields) -> Study:
    patient = Patient.objects.create(
        owner=owner,
        patient_id=fields.pop("patient_id", f"PID{number:04d}"),
        name=fields.pop("name", f"Doe{number}^Jane"),
    )
    study = Study.objects.create(
        owner=owner,
        patient=patient,
        study_instance_uid=f"1.2.826.0.1.{owner.pk}.{number}",
        modalities=modalities,
        num_series=series_count,
        **fields,
    )
    for position in range(series_count):
        Series.objects.create(
            study=study,
            series_instance_uid=f"{study.study_instance_uid}.{position}",
            series_number=position + 1,
            modality=modalities.split("\\")[0],
            num_frames=10 + position,
            planes={"stack": {"count": 1, "width": 8, "height": 8}},
            layout={"kind": "stack", "frames": [[1, 0]]},
            render_status=Series.Render.DONE,
        )
    return study
