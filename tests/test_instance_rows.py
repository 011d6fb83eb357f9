"""``Instance.objects.insert_new`` (the ingest's row writer) stores exactly what Django's
bulk_create stores, on SQLite and PostgreSQL, and gives each row its primary key."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone

from studies.models import Instance, Series, Upload
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def rows(series, user, upload, prefix: str, count: int) -> list[Instance]:
    """Rows with every kind of value the ingest writes: JSON lists and NULLs, floats, NULL numbers,
    text with quotes and non-ASCII letters."""
    return [
        Instance(
            series=series,
            owner=user,
            upload=upload if k % 2 else None,
            sop_instance_uid=f"{prefix}.{k}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            instance_number=k if k % 3 else None,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            rows=64 + k,
            columns=48,
            number_of_frames=1 + k % 2,
            photometric_interpretation="MONOCHROME2",
            bits_allocated=16,
            bits_stored=12,
            pixel_representation=k % 2,
            image_position=[0.5, -1.25, float(k)] if k % 4 else None,
            image_orientation=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0] if k % 4 else None,
            pixel_spacing=[0.7, 0.7] if k % 4 else None,
            window_center=40.0 if k % 5 else None,
            window_width=400.0 if k % 5 else None,
            rescale_slope=1.5,
            rescale_intercept=-1024.0,
            file=f"originals/{series.pk}/{prefix}{k}.dcm",
            file_size=9000 + k,
            in_volume=bool(k % 2),
            note='it\'s "out" — épaisseur' if k % 2 == 0 else "",
        )
        for k in range(count)
    ]


def stored(instance: Instance) -> dict:
    """Every field of the stored row but those that differ by design (model_to_dict leaves out
    created_at, which is not editable)."""
    return model_to_dict(Instance.objects.get(pk=instance.pk), exclude=["id", "sop_instance_uid", "file"])


def test_insert_new_stores_what_bulk_create_stores(user):
    series = Series.objects.get(study=make_study(user, 1))
    upload = Upload.objects.create(owner=user, original_name="a.zip")
    count = 90  # more than one batch on SQLite (999 parameters: 37 rows of 27 columns)
    before = timezone.now()
    ours = rows(series, user, upload, "1.2.3", count)
    Instance.objects.insert_new(ours)
    theirs = Instance.objects.bulk_create(rows(series, user, upload, "1.2.4", count))
    assert len({i.pk for i in ours}) == count and all(i.pk for i in ours)
    for mine, django in zip(ours, theirs, strict=True):
        assert Instance.objects.get(pk=mine.pk).sop_instance_uid == mine.sop_instance_uid
        assert stored(mine) == stored(django)
        assert Instance.objects.get(pk=mine.pk).created_at >= before
    # NULL JSON stays SQL NULL (filters on it, as the app's queries do, find it)
    assert Instance.objects.filter(series=series, image_position__isnull=True).count() == 2 * len(range(0, count, 4))


def test_insert_new_of_nothing_does_nothing(user):
    Instance.objects.insert_new([])
    assert not Instance.objects.exists()
