"""Fuzz the QIDO-RS query parameter parser (dicomweb/qido.py, dicomweb/dicomjson.parse_tag).

Properties: for any query parameters, ``parse_query`` and ``apply`` raise QueryError (a 400) or
give a query and a queryset; the queryset runs on the database, the page's rows turn into DICOM
JSON and the query's filter names (for the audit trail) are made, all without any other exception.

Input: pairs of (key, value); each starts with a byte choosing a known key (or a free-form one,
when it is past the list), then the key's text if free, then the value, each ended by 0xFF.
The harness runs alone on an in-memory SQLite database with one study, series and instance.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

KEYS = [
    "limit", "offset", "includefield", "fuzzymatching", "PatientName", "PatientID", "StudyDate",
    "StudyInstanceUID", "ModalitiesInStudy", "AccessionNumber", "SeriesNumber", "InstanceNumber",
    "Modality", "SeriesDate", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "PatientBirthDate",
    "00100010", "0020000D", "00200011", "00080061", "PatientName.x",
]  # fmt: skip
ROOT = "http://testserver/dicomweb/"


def pairs(data: bytes) -> list[tuple[str, str]]:
    fields = data.split(b"\xff")
    found, at = [], 0
    while at + 1 < len(fields) and len(found) < 8:
        choice = fields[at][:1]
        if choice and choice[0] < len(KEYS):
            key, value = KEYS[choice[0]], fields[at][1:]
            at += 1
        else:
            key, value = fields[at][1:].decode("utf-8", "replace"), fields[at + 1]
            at += 2
        found.append((key, value.decode("utf-8", "replace")))
    return found


def check_params(params: list[tuple[str, str]]) -> None:
    """The properties for one set of query parameters (the database holds rows already)."""
    from django.utils.datastructures import MultiValueDict

    from dicomweb import qido
    from studies.models import Instance

    values = MultiValueDict()
    for key, value in params:
        values.appendlist(key, value)
    try:
        query = qido.parse_query(values)
    except qido.QueryError:
        return
    assert all(isinstance(name, str) for name in query.filter_names())
    # The instance level matches the keys of all three levels: one query covers them all.
    levels = [(qido.INSTANCE_KEYS, ""), (qido.SERIES_KEYS, "series__"), (qido.STUDY_KEYS, "series__study__")]
    try:
        matched = qido.apply(Instance.objects.select_related("series__study__patient"), query, levels)
    except qido.QueryError:
        return
    rows, _ = qido.page(matched.order_by("id"), query)
    for row in rows:
        qido.answer(qido.instance_values(row, ROOT), qido.INSTANCE_DEFAULT, query)
        qido.answer(qido.series_values(row.series, ROOT), qido.SERIES_DEFAULT, query)
        qido.answer(qido.study_values(row.series.study, ROOT), qido.STUDY_DEFAULT, query)


def make_rows() -> None:
    import datetime as dt

    from django.contrib.auth import get_user_model

    from studies.models import Instance, Patient, Series, Study

    owner = get_user_model().objects.create(username="fuzz")
    patient = Patient.objects.create(owner=owner, patient_id="PID-1", name="Doe^Jane")
    study = Study.objects.create(
        owner=owner, patient=patient, study_instance_uid="1.2.3", modalities="CT\\MR", study_date=dt.date(2024, 1, 2)
    )
    series = Series.objects.create(study=study, series_instance_uid="1.2.3.1", series_number=1, modality="CT")
    Instance.objects.create(series=series, owner=owner, sop_instance_uid="1.2.3.1.1", instance_number=1, file="x")


def setup_django() -> None:
    """Django on an in-memory SQLite database with the project's tables and a few rows."""
    os.environ["DATABASE_URL"] = "sqlite://:memory:"
    os.environ.setdefault("SECRET_KEY", "fuzz-" + "k" * 60)
    os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="fuzz-qido-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "dicomviewer.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    make_rows()


def check(data: bytes) -> None:
    check_params(pairs(data))


def seeds() -> Iterator[bytes]:
    def key(name: str) -> bytes:
        return bytes([KEYS.index(name)])

    yield key("PatientName") + b"Doe*\xff"
    yield key("PatientName") + b"d?e^j*\xff" + key("limit") + b"10\xff" + key("offset") + b"0\xff"
    yield key("StudyDate") + b"20240101-20241231\xff" + key("ModalitiesInStudy") + b"CT,MR\xff"
    yield key("SeriesNumber") + b"1\xff" + key("InstanceNumber") + b"1\xff" + key("Modality") + b"ct\\mr\xff"
    yield key("includefield") + b"all,00100020,PatientAge\xff" + key("fuzzymatching") + b"true\xff"
    yield key("StudyInstanceUID") + b"1.2.3\\1.2.4\xff" + key("SeriesDate") + b"-20250101\xff"
    yield key("offset") + b"10\xff" + key("limit") + b"5\xff"
    yield b"\xfe_\xff" + b"x\xff"  # free-form keys
    yield b"\xfe00100020\xff" + b"PID-1\xff" + b"\xfe00200011\xff" + b"1\xff"


if __name__ == "__main__":
    setup_django()
    import dicomweb.qido  # noqa: F401  (loaded, so that it is instrumented)
    from fuzz.common import main

    main(check, ["dicomweb.qido", "dicomweb.dicomjson", "studies.api.filters"])
    sys.exit(0)
