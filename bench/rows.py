"""Instance rows written the ingest's way: the figure behind ``InstanceManager.insert_new``.
`.venv/bin/python bench/rows.py [--rounds N]` (with DATABASE_URL for PostgreSQL, as bench/run.py;
SQLite in a scratch folder otherwise).

Each round inserts the rows of the small-image upload (3000 instances, 30 series of 100, the values
a 64 x 64 MR file gives) two ways, in turns, each series in its own transaction as the ingest does:
Django's ``bulk_create`` and ``Instance.objects.insert_new``. Prints the median microseconds per row
of each, model construction included (both take unsaved Instance objects).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import OUT, prepare_environment  # noqa: E402

SERIES, PER_SERIES = 30, 100


def main(argv: list[str]) -> dict:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    scratch = OUT / "scratch-rows"
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    scratch.mkdir(parents=True)
    env = prepare_environment(scratch)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, check=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from studies.models import Instance, Patient, Series, Study

    owner = get_user_model().objects.create(username="bench-rows")
    patient = Patient.objects.create(owner=owner, patient_id="P")
    study = Study.objects.create(owner=owner, patient=patient, study_instance_uid="1.2.3")
    series = [Series.objects.create(study=study, series_instance_uid=f"1.2.3.{k}") for k in range(SERIES)]

    def rows(way: str, r: int, s: Series) -> list[Instance]:
        return [
            Instance(
                series=s,
                owner=owner,
                sop_instance_uid=f"1.2.3.{way}.{r}.{s.pk}.{i}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
                instance_number=i + 1,
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                rows=64,
                columns=64,
                photometric_interpretation="MONOCHROME2",
                bits_allocated=16,
                bits_stored=12,
                image_position=[0.0, 0.0, float(i)],
                image_orientation=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                pixel_spacing=[1.0, 1.0],
                file=f"originals/{s.pk}/{way}{r}{i:020d}.dcm",
                file_size=9000,
            )
            for i in range(PER_SERIES)
        ]

    ways = {"bulk_create": Instance.objects.bulk_create, "insert_new": Instance.objects.insert_new}
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for r in range(rounds):
        for way in list(ways) if r % 2 == 0 else list(reversed(ways)):
            started = time.perf_counter()
            for s in series:
                with transaction.atomic():
                    ways[way](rows(way, r, s))
            seconds[way].append(time.perf_counter() - started)
    result = {
        "database": connection.vendor,
        **{way: round(statistics.median(s) / (SERIES * PER_SERIES) * 1e6, 1) for way, s in seconds.items()},
    }
    print(f"us per row, median of {rounds} rounds of {SERIES * PER_SERIES}: {result}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
