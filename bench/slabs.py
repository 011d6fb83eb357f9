"""Slab images against plain ones: the time to render an image on demand (cut or slab, window,
PNG) in each plane of the shared 275-slice chest CT, for a plain window and MIP/MinIP/average
slabs of 10 and 30 mm. Target: a slab within 3x the plain image of the same plane (p50 and p95).

    .venv/bin/python bench/slabs.py     # alone (JSON on stdout); make bench runs it too
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.data import CT_SOURCE  # noqa: E402
from studies.imaging.headers import read_header  # noqa: E402
from studies.imaging.render import Window, encode_png  # noqa: E402
from studies.imaging.series import VolumeImages, decode_volume  # noqa: E402
from studies.imaging.slabs import Slab  # noqa: E402
from studies.imaging.volume import layout_series  # noqa: E402

TARGET_RATIO = 3.0
WINDOW = Window(-600, 1500)  # on demand: not the default window, as the viewer asks for it


def _ms(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def run(images_per_case: int = 40, seed: int = 1) -> dict:
    if not CT_SOURCE.is_file():
        return {"skipped": f"benchmark data missing: {CT_SOURCE}"}
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(CT_SOURCE) as zf:
            zf.extractall(folder)
        headers = [read_header(p) for p in sorted(Path(folder).rglob("*.dcm"))]
        layout = layout_series(headers)
        data, _ = decode_volume(headers, layout.volume, threads=2)
    images = VolumeImages(layout.volume, data, WINDOW, planes=layout.planes)
    rng = random.Random(seed)
    cases = {"plain": None}
    for thickness in (10.0, 30.0):
        for mode in ("mip", "minip", "avg"):
            cases[f"{mode}{thickness:g}"] = Slab(mode, thickness)
    results = {"series": f"{data.shape[0]} x {data.shape[1]} x {data.shape[2]}, {data.dtype}", "planes": {}}
    for plane, info in layout.planes.items():
        indices = [rng.randrange(info.count) for _ in range(images_per_case)]
        for slab in cases.values():
            encode_png(images.display(plane, indices[0], WINDOW, slab))  # warm up
        times = {name: [] for name in cases}
        for index in indices:  # every case in turn for each image: a busy machine slows them alike
            for name, slab in cases.items():
                started = time.perf_counter()
                encode_png(images.display(plane, index, WINDOW, slab))
                times[name].append(time.perf_counter() - started)
        timings = {name: {"p50_ms": _ms(t, 0.5), "p95_ms": _ms(t, 0.95)} for name, t in times.items()}
        plain = timings["plain"]
        for name, timing in timings.items():
            if name != "plain":
                timing["ratio_p50"] = round(timing["p50_ms"] / plain["p50_ms"], 2)
                timing["ratio_p95"] = round(timing["p95_ms"] / plain["p95_ms"], 2)
        size = f"{info.width}x{info.height}, step {info.step_mm:g} mm"
        results["planes"][plane] = {"image": size, **timings}
    worst = max(
        t[key]
        for p in results["planes"].values()
        for t in p.values()
        if isinstance(t, dict)
        for key in ("ratio_p50",)
        if key in t
    )
    results["worst_ratio_p50"] = worst
    results["target"] = f"slab p50 <= {TARGET_RATIO:g}x plain"
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
