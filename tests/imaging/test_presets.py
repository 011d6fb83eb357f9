"""Histogram window presets and the layout of the shared series: the oblique MR volumes gain their
acquired plane, every other plane stays as it was laid out before."""

from __future__ import annotations

import zipfile
from collections import defaultdict

import numpy as np
import pytest

from studies.imaging.headers import Header, read_header
from studies.imaging.presets import histogram_presets, layout_presets, series_presets
from studies.imaging.series import decode_volume
from studies.imaging.volume import layout_series
from tests.conftest import shared_path

# (count, width, height) of each plane, as laid out before acquired planes existed
BEFORE = {
    "mocoMEMPRAGE_220FOV RMS": {"axial": (196, 198, 232), "coronal": (203, 198, 225), "sagittal": (198, 203, 196)},
    "AX FSE T2": {"axial": (66, 433, 567), "coronal": (567, 433, 381), "sagittal": (433, 567, 381)},
    "PET WB_0": {"axial": (299, 128, 128), "coronal": (128, 134, 299), "sagittal": (128, 134, 299)},
}
ACQUIRED = {"mocoMEMPRAGE_220FOV RMS": (175, 192, 192), "AX FSE T2": (55, 384, 512)}


@pytest.fixture(scope="module")
def shared_series(tmp_path_factory) -> dict[str, list[Header]]:
    folder = tmp_path_factory.mktemp("shared")
    groups = defaultdict(list)
    for parts in (
        ("mr-brain-4series-fnndsc", "adi_brain_MR_4series.zip"),
        ("pt-wholebody-qinheadneck-fnndsc", "QIN-HEADNECK-01-0024_PET_299slices_SEG.zip"),
    ):
        with zipfile.ZipFile(shared_path(*parts)) as zf:
            for number, name in enumerate(n for n in zf.namelist() if not n.endswith("/")):
                path = folder / f"{parts[0]}-{number}.dcm"
                path.write_bytes(zf.read(name))
                header = read_header(path)
                if isinstance(header, Header):
                    groups[header.series_description].append(header)
    return groups


def test_only_the_oblique_shared_volumes_gain_an_acquired_plane(shared_series):
    for description, planes in BEFORE.items():
        layout = layout_series(shared_series[description])
        laid = {name: (p.count, p.width, p.height) for name, p in layout.planes.items()}
        want = {**planes, **({"acquired": ACQUIRED[description]} if description in ACQUIRED else {})}
        assert laid == want, description


def test_the_shared_mr_gets_presets_from_its_tissue(shared_series):
    headers = shared_series["AX FSE T2"]
    layout = layout_series(headers)
    data, _ = decode_volume(headers, layout.volume, threads=2)
    presets = {p["name"]: p for p in histogram_presets("MR", data)}
    assert list(presets) == ["Full range", "Tissue", "Brain/soft", "Bright"]
    low = {name: p["center"] - p["width"] / 2 for name, p in presets.items()}
    high = {name: p["center"] + p["width"] / 2 for name, p in presets.items()}
    assert (low["Full range"], high["Full range"]) == (float(data.min()), float(data.max()))
    background = float(np.mean(data <= low["Tissue"]))
    assert 0.3 < background < 0.9  # the air around the head is below the tissue window
    assert low["Tissue"] < low["Bright"] < high["Tissue"] <= high["Bright"]
    assert presets["Brain/soft"]["width"] < presets["Tissue"]["width"] * 1.5


def test_presets_by_modality():
    assert layout_presets("CT", {})[0] == {"name": "Brain", "center": 40, "width": 80}
    assert layout_presets("MR", {}) == [] and layout_presets("MR", None) == []
    stored = [{"name": "0 – max", "center": 500.0, "width": 1000.0}]
    assert series_presets("PT", stored) == stored
    with_suv = series_presets("PT", stored, suv_factor=0.01)
    assert [p["width"] for p in with_suv] == [500, 1000, 1500, 1000.0]
    assert histogram_presets("MR", np.zeros((4, 8, 8))) == []  # constant: nothing to spread
