"""SUVbw from generated PET headers: a known dose, weight and times give the hand-computed factor;
missing or unusable information gives the reason (the imaging core, no Django)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from studies.imaging.headers import read_header
from studies.imaging.suv import (
    REBUILD_NEEDED,
    fallback_values,
    parse_datetime,
    parse_time,
    read_pet_info,
    series_values,
    suv_factor,
)
from tests import dicomgen

F18_HALF_LIFE = 6586.2


def pet_file(tmp_path, name="pet.dcm", drug: dict | None = None, **keywords):
    item = Dataset()
    for keyword, value in (
        drug
        if drug is not None
        else {
            "RadiopharmaceuticalStartTime": "093000.00",
            "RadionuclideTotalDose": "370000000",
            "RadionuclideHalfLife": str(F18_HALF_LIFE),
        }
    ).items():
        setattr(item, keyword, value)
    attrs = {
        "Units": "BQML",
        "DecayCorrection": "START",
        "CorrectedImage": ["NORM", "ATTN", "DECY", "SCAT"],
        "PatientWeight": "80",
        "SeriesDate": "20240102",
        "SeriesTime": "103000",
        "AcquisitionDate": "20240102",
        "AcquisitionTime": "103500",
        "RadiopharmaceuticalInformationSequence": Sequence([item]),
    }
    attrs.update(keywords)
    attrs = {key: value for key, value in attrs.items() if value is not None}
    path = tmp_path / name
    dicomgen.write_image(path, np.zeros((4, 4), dtype=np.int16), modality="PT", rescale=(2.0, 0.0), **attrs)
    return read_header(path).pet


def test_suv_factor_from_weight_dose_and_decay_to_the_series_time(tmp_path):
    info = pet_file(tmp_path)
    # one hour from injection (09:30) to the series (10:30): 370 MBq decays to 370 * 2^(-3600/6586.2)
    decayed = 370e6 * 2 ** (-3600 / F18_HALF_LIFE)
    suv = suv_factor([info])
    assert suv.problem is None and suv.factor == pytest.approx(80_000 / decayed, rel=1e-12)
    assert suv.factor == pytest.approx(3.156e-4, rel=1e-3)
    assert series_values("PT", [info]) == {"unit": "SUVbw", "suv_factor": suv.factor, "suv_problem": None}


def test_the_injection_date_and_time_wins_and_may_be_the_day_before(tmp_path):
    dose = {"RadionuclideTotalDose": "370000000", "RadionuclideHalfLife": str(F18_HALF_LIFE)}
    after_midnight = {"SeriesTime": "003000", "AcquisitionTime": "003500"}
    with_date = pet_file(
        tmp_path, drug={"RadiopharmaceuticalStartDateTime": "20240101233000", **dose}, **after_midnight
    )
    by_time = pet_file(tmp_path, "b.dcm", drug={"RadiopharmaceuticalStartTime": "233000", **dose}, **after_midnight)
    expected = 80_000 / (370e6 * 2 ** (-3600 / F18_HALF_LIFE))  # an hour across midnight
    assert suv_factor([with_date]).factor == pytest.approx(expected)
    assert suv_factor([by_time]).factor == pytest.approx(expected)


def test_a_series_stamped_after_its_acquisition_decays_to_the_earliest_acquisition(tmp_path):
    late = [
        pet_file(tmp_path, "a.dcm", SeriesTime="120000", AcquisitionTime="104500"),
        pet_file(tmp_path, "b.dcm", SeriesTime="120000", AcquisitionTime="103000"),
    ]
    expected = 80_000 / (370e6 * 2 ** (-3600 / F18_HALF_LIFE))  # 09:30 to the earlier acquisition, 10:30
    assert suv_factor(late).factor == pytest.approx(expected)
    # GE's private scan time, when there, is what the values are corrected to
    ge = dataclasses.replace(late[0], ge_scan=dt.datetime(2024, 1, 2, 11, 0))
    assert suv_factor([ge, late[1]]).factor == pytest.approx(80_000 / (370e6 * 2 ** (-5400 / F18_HALF_LIFE)))


def test_ge_private_scan_time_is_read_from_its_creator_block(tmp_path):
    ds = Dataset()
    block = ds.private_block(0x0009, "GEMS_PETD_01", create=True)
    block.add_new(0x0D, "DT", "20240102110000.00")
    assert read_pet_info(ds).ge_scan == dt.datetime(2024, 1, 2, 11, 0)


def test_gml_is_suv_already_and_admin_needs_no_decay(tmp_path):
    assert suv_factor([pet_file(tmp_path, Units="GML")]).factor == 1.0
    admin = pet_file(tmp_path, "b.dcm", DecayCorrection="ADMIN")
    assert suv_factor([admin]).factor == pytest.approx(80_000 / 370e6)


@pytest.mark.parametrize(
    "keywords, words",
    [
        ({"PatientWeight": None}, "no patient weight"),
        ({"PatientWeight": "0"}, "no patient weight"),
        ({"Units": "CNTS"}, "counts (Units CNTS)"),
        ({"Units": "PROPCNTS"}, "in PROPCNTS"),
        ({"CorrectedImage": ["NORM", "DECY"]}, "not attenuation-corrected"),
        ({"CorrectedImage": ["NORM"]}, "not attenuation and decay-corrected"),
        ({"DecayCorrection": "NONE"}, "decay-corrected to NONE"),
        ({"SeriesTime": "090000", "AcquisitionTime": "090000"}, "injection time is after the scan"),
        ({"SeriesTime": None, "AcquisitionTime": None}, "no series or acquisition time"),
    ],
)
def test_suv_is_refused_with_the_reason(tmp_path, keywords, words):
    suv = suv_factor([pet_file(tmp_path, **keywords)])
    assert suv.factor is None and words in suv.problem and suv.problem.startswith("No SUV: ")


@pytest.mark.parametrize(
    "drug, words",
    [
        ({"RadiopharmaceuticalStartTime": "093000", "RadionuclideHalfLife": "6586.2"}, "no injected dose"),
        ({"RadiopharmaceuticalStartTime": "093000", "RadionuclideTotalDose": "3.7e8"}, "no half-life"),
        ({"RadionuclideTotalDose": "3.7e8", "RadionuclideHalfLife": "6586.2"}, "no injection time"),
        ({}, "no injected dose"),
    ],
)
def test_missing_radiopharmaceutical_information_is_named(tmp_path, drug, words):
    suv = suv_factor([pet_file(tmp_path, drug=drug)])
    assert suv.factor is None and words in suv.problem


def test_units_by_modality_and_the_fallback_for_old_series():
    assert series_values("CT", []) == {"unit": "HU", "suv_factor": None, "suv_problem": None}
    assert series_values("MR", []) == {"unit": "", "suv_factor": None, "suv_problem": None}
    assert series_values("PT", [])["suv_problem"] == "No SUV: no PET header information."
    assert fallback_values("PT") == {"unit": "", "suv_factor": None, "suv_problem": REBUILD_NEEDED}
    assert fallback_values("CT")["unit"] == "HU"


def test_dicom_times_keep_their_fractions():
    assert parse_time("130244.678") == dt.time(13, 2, 44, 678000)
    assert parse_time("13:02:44") == dt.time(13, 2, 44)
    assert parse_time("1302") == dt.time(13, 2)
    assert parse_time("") is None and parse_time("1") is None and parse_time("ab") is None
    assert parse_datetime("20240102130244.5+0100") == dt.datetime(2024, 1, 2, 13, 2, 44, 500000)
    assert parse_datetime("20240102") == dt.datetime(2024, 1, 2)
    assert parse_datetime("2024") is None
