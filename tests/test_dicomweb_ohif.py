"""The unmodified OHIF v3 reads our QIDO answers: a study whose files lack Modality, or have it empty,
must not empty OHIF's whole study list (issue 13). Files are generated with pydicom; the OHIF side is
``tests/js/ohif_reads.js`` run with node on the live answers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from studies.models import Upload
from tests.conftest import ingest_zip, make_zip, require_tool
from tests.dicomgen import make_dataset, save

pytestmark = pytest.mark.django_db(transaction=True)

HARNESS = Path(__file__).parent / "js" / "ohif_reads.js"
# OHIF's study-list request (qido.js mapParams), as its WorkList sends it.
OHIF_STUDIES = (
    "/dicomweb/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030"
)
OHIF_SERIES = "/dicomweb/studies/{uid}/series?includefield=0008103E,00080021"
EMPTY_FOR_OHIF = ("00080060", "00080061")  # Modality, ModalitiesInStudy: OHIF cannot read them empty


@pytest.fixture
def studies(user, tmp_path, eager_celery) -> dict[str, str]:
    """Three one-image studies: a plain CT, one whose file has no Modality at all, and one with an empty
    Modality and empty (Type 2) PatientName, StudyDate, StudyDescription and AccessionNumber.
    Returns {name: StudyInstanceUID}."""
    pixels = np.arange(64, dtype=np.int16).reshape(8, 8)
    plain = make_dataset(pixels, StudyDescription="plain")
    no_modality = make_dataset(pixels, StudyDescription="no modality", AccessionNumber="A-2")
    del no_modality.Modality
    empty = make_dataset(
        pixels, PatientID="PHANTOM-2", PatientName="", StudyDate="", StudyDescription="", AccessionNumber=""
    )
    empty.Modality = ""
    files = {}
    for name, ds in (("plain", plain), ("no_modality", no_modality), ("empty", empty)):
        files[f"{name}.dcm"] = save(ds, tmp_path / "src" / f"{name}.dcm")
    upload = ingest_zip(user, make_zip(tmp_path / "ohif.zip", files))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    return {
        "plain": plain.StudyInstanceUID,
        "no_modality": no_modality.StudyInstanceUID,
        "empty": empty.StudyInstanceUID,
    }


def by_uid(answers: list[dict]) -> dict[str, dict]:
    return {obj["0020000D"]["Value"][0]: obj for obj in answers}


def test_study_without_modality_keeps_ohifs_study_list(api, studies):
    response = api.get(OHIF_STUDIES)
    assert response.status_code == 200
    answers = response.json()
    found = by_uid(answers)
    assert set(found) == set(studies.values())

    # No valueless entry where OHIF reads the Value unguarded, at any level and with includefield=all.
    series = []
    for uid in studies.values():
        listed = api.get(OHIF_SERIES.format(uid=uid)).json()
        series += listed
        for url in (
            f"/dicomweb/studies?StudyInstanceUID={uid}&includefield=all",
            f"/dicomweb/series?StudyInstanceUID={uid}",
        ):
            for obj in api.get(url).json() + listed:
                for tag in EMPTY_FOR_OHIF:
                    assert tag not in obj or obj[tag].get("Value"), (url, tag, obj.get(tag))
    for name in ("no_modality", "empty"):
        assert "00080061" not in found[studies[name]]
    assert found[studies["plain"]]["00080061"] == {"vr": "CS", "Value": ["CT"]}

    # Everything else still follows PS3.18: empty Type 2 attributes are sent with their VR, no Value.
    empty = found[studies["empty"]]
    for tag, vr in (("00080020", "DA"), ("00080050", "SH"), ("00081030", "LO"), ("00100010", "PN")):
        assert empty[tag] == {"vr": vr}, tag
    assert found[studies["no_modality"]]["00080050"] == {"vr": "SH", "Value": ["A-2"]}

    # OHIF's own reading of the answers lists all three studies.
    rows = ohif_reads({"studies": answers, "series": series})
    assert {row["studyInstanceUid"]: row["modalities"] for row in rows} == {
        studies["plain"]: "CT",
        studies["no_modality"]: "",
        studies["empty"]: "",
    }
    assert next(row for row in rows if row["studyInstanceUid"] == studies["empty"])["patientName"] == ""


def test_modalities_in_study_still_matches_and_is_sent_when_asked(api, studies):
    answers = api.get("/dicomweb/studies", {"ModalitiesInStudy": "CT", "includefield": "ModalitiesInStudy"}).json()
    assert list(by_uid(answers)) == [studies["plain"]]
    answers = api.get("/dicomweb/studies", {"includefield": "00080061"}).json()
    assert by_uid(answers)[studies["plain"]]["00080061"]["Value"] == ["CT"]


def ohif_reads(answers: dict) -> list[dict]:
    node = require_tool("node")
    done = subprocess.run([node, str(HARNESS)], input=json.dumps(answers), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"OHIF's study list would throw: {done.stderr.strip().splitlines()[:3]}"
    return json.loads(done.stdout)
