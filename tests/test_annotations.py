"""Measurements: saved per user per series through /api/series/<id>/annotations/, validated,
hidden from everyone else (and from a user whose share was taken back), audited, and exported as
a DICOM SR Measurement Report (TID 1500) that highdicom, pydicom and dcmtk's dsrdump read."""

from __future__ import annotations

import io
import math
import subprocess
import warnings

import highdicom as hd
import pydicom
import pytest

from audit.models import AuditEvent
from studies.models import Instance, StudyShare
from tests.conftest import api_client_for, require_tool, stored_bytes
from tests.factories import make_study

pytestmark = pytest.mark.django_db(transaction=True)

# the planes of the shared CT's eight-slice cut (tests.browsing.ingest_small_ct), as ingest stores them
CT_PLANES = {
    "axial": {"count": 8, "width": 512, "height": 512, "pixel_mm": 0.78125, "step_mm": 1.0,
              "origin": [-201.0, -59.0, -572.8], "x_dir": [1, 0, 0], "y_dir": [0, 1, 0], "step_dir": [0, 0, -1]},
    "coronal": {"count": 512, "width": 512, "height": 10, "pixel_mm": 0.78125, "step_mm": 0.78125,
                "origin": [-201.0, -59.0, -572.8], "x_dir": [1, 0, 0], "y_dir": [0, 0, -1], "step_dir": [0, 1, 0]},
}  # fmt: skip


@pytest.fixture
def series(user):
    """A CT series row with the planes of a volume (no files: enough for everything but the SR)."""
    study = make_study(user, 1)
    series = study.series.get()
    series.planes = CT_PLANES
    series.save(update_fields=["planes"])
    return series


PIXEL_MM = 0.78125  # the shared CT's pixel spacing (square), kept by its axial plane


def url(series, rest: str = "") -> str:
    return f"/api/series/{series.pk}/annotations/{rest}"


def post(api, series, **body):
    return api.post(url(series), body, format="json")


AIR = {"mean": -1000.0, "sd": 2.5, "min": -1012.0, "max": -990.0, "n": 471, "unit": "HU"}
DRAWN = [
    {"kind": "length", "plane": "axial", "index": 3, "pixels": [[100, 100], [200, 100]], "label": "gauge"},
    {"kind": "angle", "plane": "axial", "index": 3, "pixels": [[100, 100], [200, 100], [200, 200]]},
    {"kind": "ellipse", "plane": "axial", "index": 3, "pixels": [[10, 10], [40, 30]], "values": AIR},
    {"kind": "rectangle", "plane": "coronal", "index": 200, "pixels": [[100, 2], [140, 6]], "values": AIR},
    {"kind": "probe", "plane": "axial", "index": 2, "pixels": [[256, 256]], "values": {"value": 35.0, "unit": "HU"}},
]


def test_measurements_are_saved_listed_changed_deleted_and_audited(series, api, user):
    made = []
    for body in DRAWN:
        response = post(api, series, **body)
        assert response.status_code == 201, response.json()
        made.append(response.json())
    length, angle, ellipse, rectangle, probe = made
    # values the geometry gives are computed here, in mm and degrees
    assert length["values"]["length_mm"] == pytest.approx(100 * PIXEL_MM)
    assert angle["values"]["angle_deg"] == pytest.approx(90.0)
    assert ellipse["values"]["area_mm2"] == pytest.approx(math.pi / 4 * 30 * 20 * PIXEL_MM**2, rel=1e-4)
    assert ellipse["values"]["mean"] == -1000.0 and ellipse["values"]["unit"] == "HU"
    assert probe["values"] == {"value": 35.0, "unit": "HU"}
    # patient coordinates: 100 pixels apart along x, on the same slice
    (x0, y0, z0), (x1, y1, z1) = length["points"]
    assert (x1 - x0, y1 - y0, z1 - z0) == pytest.approx((100 * PIXEL_MM, 0, 0))
    assert rectangle["points"][0][2] != rectangle["points"][1][2]  # a coronal box spans z

    listed = api.get(url(series)).json()
    assert [a["id"] for a in listed] == [a["id"] for a in made]
    assert api.get(url(series, f"{length['id']}/")).json()["label"] == "gauge"

    changed = api.patch(url(series, f"{length['id']}/"), {"label": "trachea"}, format="json")
    assert changed.status_code == 200 and changed.json()["label"] == "trachea"
    assert changed.json()["values"] == length["values"]

    assert api.delete(url(series, f"{angle['id']}/")).status_code == 204
    assert api.get(url(series, f"{angle['id']}/")).status_code == 404
    assert len(api.get(url(series)).json()) == 4

    events = AuditEvent.objects.filter(user=user, object_type="series", object_id=str(series.pk))
    created = events.filter(action=AuditEvent.Action.ANNOTATION_CREATE)
    assert created.count() == 5
    assert {e.detail["kind"] for e in created} == {"length", "angle", "ellipse", "rectangle", "probe"}
    deleted = events.get(action=AuditEvent.Action.ANNOTATION_DELETE)
    assert deleted.detail["annotation_id"] == angle["id"] and deleted.event_action == "D"


BAD = [
    ({"kind": "length", "pixels": [[1, 1]]}, "exactly 2 points"),
    ({"kind": "angle", "pixels": [[1, 1], [2, 2]]}, "exactly 3 points"),
    ({"kind": "probe", "pixels": [[1, 1], [2, 2]]}, "exactly 1 point"),
    ({"kind": "length", "pixels": [[1, 1], [600, 1]]}, "outside the image"),
    ({"kind": "length", "pixels": [[-3, 1], [6, 1]]}, "outside the image"),
    ({"kind": "rectangle", "pixels": [[10, 10], [10, 40]]}, "no area"),
    ({"kind": "ellipse", "pixels": [[10, 10], [10.5, 10.2]]}, "no area"),
    ({"kind": "angle", "pixels": [[5, 5], [5, 5], [9, 9]]}, "arms"),
    ({"kind": "length", "plane": "stack"}, "no 'stack' plane"),
    ({"kind": "length", "index": 8}, "does not exist"),
    ({"kind": "circle"}, "kind"),
    ({"kind": "length", "pixels": [[1, 1, 1], [2, 2, 2]]}, "pixels"),
    ({"kind": "length", "pixels": "1,1"}, "pixels"),
    ({"kind": "length", "label": "x" * 200}, "label"),
    ({"kind": "ellipse", "pixels": [[1, 1], [9, 9]], "values": {"mean": "a lot"}}, "mean must be a finite number"),
    ({"kind": "ellipse", "pixels": [[1, 1], [9, 9]], "values": {"median": 3}}, "take only"),
    ({"kind": "probe", "pixels": [[1, 1]], "values": {"value": 1, "unit": "x" * 40}}, "unit"),
    ({"kind": "probe", "pixels": [[1, 1]], "values": [1]}, "values"),
]


def test_bad_measurements_are_a_400_with_a_reason(series, api):
    base = {"plane": "axial", "index": 0, "pixels": [[1, 1], [9, 9]]}
    for body, reason in BAD:
        response = post(api, series, **(base | body))
        assert response.status_code == 400, (body, response.content)
        assert reason in response.json()["detail"], (body, response.json())
    # numbers JSON cannot carry (NaN, Infinity) are refused by the parser
    raw = '{"kind": "length", "plane": "axial", "index": 0, "pixels": [[NaN, 1], [2, 2]]}'
    response = api.post(url(series), raw, content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"]
    assert api.get(url(series)).json() == []


def test_only_the_author_sees_them_and_a_taken_back_share_hides_them(series, api, other_user):
    mine = post(api, series, **DRAWN[0]).json()
    bob = api_client_for(other_user)
    # a series bob cannot see: 404 on every path, his own or not
    for path in ("", f"{mine['id']}/", "report.dcm"):
        assert bob.get(url(series, path)).status_code == 404
    assert post(bob, series, **DRAWN[0]).status_code == 404
    assert bob.delete(url(series, f"{mine['id']}/")).status_code == 404

    share = StudyShare.objects.create(study=series.study, user=other_user)
    assert bob.get(url(series)).json() == []  # shared: the series, not alice's measurements
    assert bob.get(url(series, f"{mine['id']}/")).status_code == 404
    assert bob.patch(url(series, f"{mine['id']}/"), {"label": "x"}, format="json").status_code == 404
    his = post(bob, series, **DRAWN[1]).json()
    assert [a["id"] for a in bob.get(url(series)).json()] == [his["id"]]
    assert [a["id"] for a in api.get(url(series)).json()] == [mine["id"]]

    share.delete()  # taken back: bob's own measurements go out of his reach with the series
    for path in ("", f"{his['id']}/", "report.dcm"):
        assert bob.get(url(series, path)).status_code == 404
    assert bob.delete(url(series, f"{his['id']}/")).status_code == 404


def content(item, code: str):
    return [child for child in item.ContentSequence if child.ConceptNameCodeSequence[0].CodeValue == code]


def test_sr_export_is_a_tid1500_report_ohif_and_dcmtk_read(small_ct, api, user, tmp_path):
    made = [post(api, small_ct, **body).json() for body in DRAWN]
    # any label a user types becomes a valid Code Meaning (LO: no backslash, no control characters)
    api.patch(url(small_ct, f"{made[2]['id']}/"), {"label": "air é\\\x01 front"}, format="json")
    response = api.get(url(small_ct, "report.dcm"))
    assert response.status_code == 200 and response["Content-Type"] == "application/dicom"
    data = b"".join(response) if response.streaming else response.content
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    instances = {i.sop_instance_uid: i for i in Instance.objects.filter(series=small_ct)}
    assert ds.StudyInstanceUID == small_ct.study.study_instance_uid
    sr = hd.sr.srread(io.BytesIO(data))  # highdicom reads it back as what it is
    assert isinstance(sr, hd.sr.Comprehensive3DSR)

    library = content(ds, "111028")[0]
    library_uids = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for group in content(library, "126200")
        for item in group.ContentSequence
        if item.ValueType == "IMAGE"
    }
    assert library_uids and library_uids <= set(instances)
    groups = content(content(ds, "126010")[0], "125007")
    assert len(groups) == 5
    tools = [content(g, "112039")[0].TextValue for g in groups]
    assert tools == [
        f"Cornerstone3DTools@^0.1.0:{t}" for t in ("Length", "Angle", "EllipticalROI", "RectangleROI", "Probe")
    ]
    assert all(content(g, "112040")[0].ValueType == "UIDREF" for g in groups)

    def nums(group):
        return {
            n.ConceptNameCodeSequence[0].CodeMeaning: (
                float(n.MeasuredValueSequence[0].NumericValue),
                n.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue,
                n.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodingSchemeDesignator,
            )
            for n in group.ContentSequence
            if n.ValueType == "NUM"
        }

    def graphic(group):
        [first] = [n for n in group.ContentSequence if n.ValueType == "NUM" and "ContentSequence" in n][:1]
        return first.ContentSequence[0]

    length, angle, ellipse, rectangle, probe = groups
    assert nums(length) == {"Length": (pytest.approx(78.125), "mm", "UCUM")}
    assert nums(angle)["Angle"] == (pytest.approx(90.0), "deg", "UCUM")
    assert nums(ellipse)["Mean"] == (-1000.0, "[hnsf'U]", "UCUM")
    assert nums(ellipse)["Area"][1] == "mm2"
    assert nums(probe) == {"Attenuation Coefficient": (35.0, "[hnsf'U]", "UCUM")}
    assert content(length, "121071")[0].ConceptCodeSequence[0].CodeMeaning == "gauge"  # the label, as OHIF reads it
    assert content(ellipse, "121071")[0].ConceptCodeSequence[0].CodeMeaning == "air é front"

    # drawn on acquired slices: SCOORD in that image's pixels (0.5 = centre of the first pixel)
    for group, kind, count in (
        (length, "POLYLINE", 2),
        (angle, "POLYLINE", 3),
        (ellipse, "ELLIPSE", 4),
        (probe, "POINT", 1),
    ):
        scoord = graphic(group)
        assert scoord.ValueType == "SCOORD" and scoord.RelationshipType == "INFERRED FROM"
        assert scoord.GraphicType == kind and len(scoord.GraphicData) == 2 * count
        ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID in instances and ref.ReferencedSOPInstanceUID in library_uids
    assert [float(v) for v in graphic(length).GraphicData] == [100.5, 100.5, 200.5, 100.5]
    assert [float(v) for v in graphic(ellipse).GraphicData] == [10.5, 20.5, 40.5, 20.5, 25.5, 10.5, 25.5, 30.5]
    # the probe on image 2 and the length on image 3 refer to two different slices
    assert (
        graphic(probe).ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        != graphic(length).ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    )
    # drawn on a reconstruction (coronal): SCOORD3D in the series' frame of reference
    box = graphic(rectangle)
    assert box.ValueType == "SCOORD3D" and box.GraphicType == "POLYLINE" and len(box.GraphicData) == 15
    # (this anonymised CT gives every slice a Frame of Reference of its own: the nearest slice's is used)
    frames_of_reference = {
        pydicom.dcmread(io.BytesIO(stored_bytes(i.file)), stop_before_pixels=True).FrameOfReferenceUID
        for i in instances.values()
    }
    assert box.ReferencedFrameOfReferenceUID in frames_of_reference

    event = AuditEvent.objects.get(user=user, action=AuditEvent.Action.ANNOTATION_EXPORT)
    assert event.object_id == str(small_ct.pk) and event.detail["measurements"] == 5

    dsrdump = require_tool("dsrdump")
    path = tmp_path / "report.dcm"
    path.write_bytes(data)
    dump = subprocess.run([dsrdump, str(path)], capture_output=True, text=True, timeout=60)
    problems = [line for line in dump.stderr.splitlines() if line.startswith(("E:", "F:"))]
    assert dump.returncode == 0 and not problems, dump.stderr  # (a W: says it cannot check UTF-8 text)
    assert "Imaging Measurement Report" in dump.stdout and dump.stdout.count("Measurement Group") == 5


@pytest.mark.django_db(transaction=False)
def test_a_measurement_on_a_stack_frame_without_geometry_refers_to_that_frame():
    """A stack image has no patient coordinates: its SCOORD is in the stored image's pixels, and a
    multi-frame image's frame is named (1-based), as OHIF matches it."""
    import numpy as np

    from annotations import sr
    from tests.dicomgen import make_dataset

    ds = make_dataset(np.zeros((64, 64), np.uint16), modality="XA", NumberOfFrames=3, PatientName="Anonymized")
    item = sr.Item(
        kind="length",
        label="",
        values={"length_px": 30.0},
        outline_pixels=[[10, 20], [40, 20]],
        outline_world=None,
        plane_size=(64, 64),
        image=ds,
        frame=1,
        acquired=True,
    )
    assert sr.measurement_group(item, "XA") is None  # no length in mm: nothing to report
    item.values = {"length_mm": 9.0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = pydicom.dcmread(io.BytesIO(sr.to_bytes(sr.measurement_report([item], evidence=ds, author="alice"))))
    assert not [w for w in caught if "Anonymized" in str(w.message)]  # no patient name in a log line
    assert report.PatientName == "Anonymized^"  # the same name, as a family name
    [group] = content(content(report, "126010")[0], "125007")
    scoord = [n for n in group.ContentSequence if n.ValueType == "NUM"][0].ContentSequence[0]
    assert scoord.ValueType == "SCOORD" and [float(v) for v in scoord.GraphicData] == [10.5, 20.5, 40.5, 20.5]
    ref = scoord.ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == ds.SOPInstanceUID and ref.ReferencedFrameNumber == 2


def test_values_are_reported_in_ucum_units_with_a_name_for_what_they_measure():
    from pydicom.sr.codedict import codes

    from annotations import sr

    assert sr.unit_code("HU") == codes.UCUM.HounsfieldUnit
    assert sr.unit_code("SUVbw").value == "g/ml{SUVbw}"
    assert sr.unit_code("BQML").value == "Bq/ml"
    assert sr.unit_code("").value == "1" and sr.unit_code(None).value == "1"
    assert sr.value_name("SUVbw", "PT") == codes.DCM.StandardizedUptakeValue
    assert sr.value_name("", "MR") == codes.DCM.MRSignalIntensity
    assert sr.value_name("BQML", "PT") == codes.DCM.Concentration
