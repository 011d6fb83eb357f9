"""What a worker pays to build a series' image source again, against rendering a chunk from it:
`bench/sources.py`, after `bench/ingest.py small ct500` (it reads the series that run stored).

A worker child lets go of its image sources after every task (dicomviewer/celery.py), so each
render chunk builds its own: this times ``image_source.source`` with an empty cache (the first stack
series and the first volume found), then 32 axial and 32 coronal images of the volume rendered and
encoded, as a chunk does. Prints milliseconds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import OUT  # noqa: E402

ROUNDS = 50
CHUNK = 32


def main() -> dict:
    root = OUT / "scratch-ingest"
    derived = root / "media" / "derived"
    if not derived.is_dir():
        raise SystemExit(f"no stored series in {derived}: run `bench/ingest.py small ct500` first")
    os.environ.update(MEDIA_ROOT=str(root / "media"), VAR_DIR=str(root / "var"), DEBUG="0")
    os.environ.setdefault("SECRET_KEY", "bench-" + "k" * 50)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
    import django

    django.setup()
    from studies.imaging.render import encode_png
    from studies.services import image_source

    found: dict[str, tuple[int, int]] = {}
    for folder in sorted(derived.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0):
        for manifest in sorted(folder.glob("v*/source.json")):
            kind = json.loads(manifest.read_text())["kind"]
            found.setdefault(kind, (int(folder.name), int(manifest.parent.name[1:])))
    results = {}
    for kind, (series_id, version) in found.items():
        times = []
        for _ in range(ROUNDS):
            image_source.clear()
            started = time.perf_counter()
            source = image_source.source(series_id, version)
            times.append(time.perf_counter() - started)
        results[f"{kind}_source_build_ms"] = {
            "series": series_id,
            "p50": round(statistics.median(times) * 1e3, 2),
            "max": round(max(times) * 1e3, 2),
        }
        if kind == "volume":
            for plane in ("axial", "coronal"):
                middle = source.count(plane) // 2
                started = time.perf_counter()
                for index in range(middle, middle + CHUNK):
                    encode_png(source.display(plane, index))
                results[f"chunk_of_{CHUNK}_{plane}_ms"] = round((time.perf_counter() - started) * 1e3, 1)
    return results


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
