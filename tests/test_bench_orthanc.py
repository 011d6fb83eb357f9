"""The benchmark's Orthanc harness (bench/orthanc.py) and its side-by-side targets (bench/versus.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import requests

from bench import orthanc as bench_orthanc
from bench import versus
from tests.conftest import require_tool, zip_folder
from tests.dicomgen import write_volume


def test_config_keeps_every_path_in_its_folder_and_loads_no_plugin(tmp_path):
    config = bench_orthanc.config(tmp_path, 8999, 8998)

    for key in ("StorageDirectory", "IndexDirectory", "TemporaryDirectory"):
        assert Path(config[key]).is_relative_to(tmp_path)
    assert config["Plugins"] == [] and config["LuaScripts"] == []
    assert config["RemoteAccessAllowed"] is False and config["DicomAlwaysAllowStore"] is False
    assert config["DicomModalities"] == {} and config["OrthancPeers"] == {}
    assert "/etc/orthanc" not in json.dumps(config)


def test_without_orthanc_the_bench_says_why_and_goes_on(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench_orthanc.shutil, "which", lambda name: None)

    result = bench_orthanc.run(tmp_path, {}, load=None)

    assert "not installed" in result["skipped"]
    assert capsys.readouterr().out.startswith("Orthanc skipped: the Orthanc binary is not installed")


def test_orthanc_stores_and_previews_a_zip_from_its_own_folder_then_stops(tmp_path):
    require_tool("Orthanc")
    voxels = np.arange(5 * 16 * 16, dtype=np.int16).reshape(5, 16, 16)
    # file order differs from the order in space: the middle slice is found by position
    write_volume(tmp_path / "ct", voxels, names=[f"{n}.dcm" for n in "cbead"], Modality="CT")
    archive = zip_folder(tmp_path / "ct", tmp_path / "ct.zip")
    folder = tmp_path / "orthanc"

    with bench_orthanc.Orthanc(folder) as server:
        system = requests.get(f"{server.url}/system", timeout=5).json()
        assert (system["Name"], system["HttpPort"], system["DicomPort"]) == (
            "dicomviewer-bench",
            server.http_port,
            server.dicom_port,
        )
        # Debian's /etc/orthanc loads the worklist and folder-serving plugins: none here
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        assert "/lib/orthanc/" not in maps  # where Debian's plugin files are (linked from /usr/share)
        assert not [p for p in requests.get(f"{server.url}/plugins", timeout=5).json() if p != "explorer.js"]
        result = bench_orthanc.ct(server, archive)
        series = requests.get(f"{server.url}/series", timeout=5).json()
        ordered = requests.get(f"{server.url}/series/{series[0]}/ordered-slices", timeout=5).json()
        assert ordered["Dicom"][2].split("/")[2] == bench_orthanc.instance_id(bench_orthanc.middle_slice(archive))
        assert any((folder / "storage").rglob("*")) and any((folder / "index").iterdir())

    assert result["instances"] == result["images"] == 5
    assert 0 < result["stored_s"] <= result["first_image_s"] <= result["all_images_s"]
    assert server.process.returncode is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/system", timeout=2)
    assert os.path.getsize(server.log_path) > 0


def test_a_fresh_store_refuses_what_orthanc_already_has_until_it_is_cleared(tmp_path):
    require_tool("Orthanc")
    write_volume(tmp_path / "ct", np.zeros((3, 8, 8), dtype=np.int16), Modality="CT")
    archive = zip_folder(tmp_path / "ct", tmp_path / "ct.zip")

    with bench_orthanc.Orthanc(tmp_path / "orthanc") as server:
        first = bench_orthanc.ingest(server, archive, fresh=True)
        assert [item["Status"] for item in server.store_zip(archive)] == ["AlreadyStored"] * 3
        with pytest.raises(RuntimeError, match="did not store 3 of 3 instances anew"):
            server.store_zip(archive, fresh=True)
        server.clear()
        assert requests.get(f"{server.url}/instances", timeout=5).json() == []
        again = bench_orthanc.ingest(server, archive, fresh=True)

    assert first["instances"] == again["instances"] == 3


def figures(small_s=10.0, first_s=0.5, all_s=10.0, p99=20.0):
    ingest = [{"instances": 3000, "images": 3000, "all_images_from_post_s": small_s}]
    ct = {"images": 1524, "first_image_s": first_s, "all_images_s": all_s}
    ct |= {"first_image_from_post_s": first_s + 0.2, "all_images_from_post_s": all_s + 0.2}
    return {"small": ingest, "ct500": ct, "serving": {"p50_ms": 5.0, "p99_ms": p99, "requests_per_s": 2000.0}}


def test_targets_pass_and_miss_on_ratios():
    orthanc = {
        "version": "1.10.1",
        "small": [{"instances_per_s": 600.0}],
        "ct500": {"images": 500, "first_image_s": 2.0, "all_images_s": 40.0},
        "serving": {"p50_ms": 500.0, "p99_ms": 900.0, "requests_per_s": 20.0},
    }
    good = versus.compare(figures(small_s=4.0), orthanc, {"total_s": 12.0})
    bad = versus.compare(figures(small_s=10.0, first_s=1.5, all_s=13.0, p99=950.0), orthanc, {"total_s": 12.0})

    assert [t["result"] for t in good["targets"]] == ["PASS"] * 5
    assert [t["result"] for t in bad["targets"]] == ["MISS"] * 5
    assert bad["targets"][0]["ratio"] == 0.5  # 300 instances/s against 600
    assert "ratio" in versus.table(good)


def test_small_images_compare_the_medians_of_runs_in_turns_and_show_each_pair():
    ours = figures()
    ours["small"] = [{"instances": 3000, "all_images_from_post_s": s} for s in (10.0, 5.0, 6.0)]  # 300, 600, 500/s
    orthanc = {"version": "1.10.1", "small": [{"instances_per_s": v} for v in (400.0, 1000.0, 500.0)]}

    comparison = versus.compare(ours, orthanc, {"total_s": 12.0})

    rows = {r[0]: r[1:] for r in comparison["rows"]}
    assert rows["3000 small images: stored + every plane listed, instances/s, median of 3 in turns"] == [500, 500, 1.0]
    assert [rows[f"  pair {k} (ours, then Orthanc)"] for k in (1, 2, 3)] == [
        [300.0, 400.0, 0.75],
        [600.0, 1000.0, 0.6],
        [500.0, 500.0, 1.0],
    ]
    small = comparison["targets"][0]
    assert (small["ratio"], small["target"], small["result"]) == (1.0, ">= 1.0x", "PASS")
    assert "  pair 3 (ours, then Orthanc)" in versus.table(comparison)


def test_without_orthanc_only_the_floor_targets_are_judged():
    comparison = versus.compare(figures(), {"skipped": "not installed"}, {"total_s": 12.0})

    assert [t["result"] for t in comparison["targets"]] == ["n/a", "n/a", "PASS", "PASS", "n/a"]
    assert comparison["orthanc"] == "skipped: not installed"
