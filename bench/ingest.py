"""Only the ingest parts of the benchmark, repeated: `bench/ingest.py [small] [ct500] [ct1000] [lidc] [--repeat N]`.

The same app (`manage.py serve all`, a real worker) and the same measurement as `bench/run.py`
(``ingest_run``), without the floor, serving, S3 and listing rounds, so that a change to the
ingest can be measured before and after, back to back, on a loaded machine. Prints JSON: each
part's runs and the median of its figures (a figure a run does not have, such as a first image that
never came, is left out of its median; null when no run has it). `small` is `bench/run.py`'s ZIP
(3000 64x64 images in 30 series); `lidc` the shared 275-slice LIDC CT (`data.ct_source`).
`upload_s` is the POST itself; the other times start when it returns, but for
`first_image_from_post_s`. With DATABASE_URL / CELERY_BROKER_URL set, as `bench/run.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import data  # noqa: E402
from bench.run import OUT, App, ingest_run, prepare_environment, session_for, small_zip  # noqa: E402

PARTS = {
    "small": small_zip,
    "ct500": lambda: data.ct_zip(OUT / "ct500.zip", 500),
    "ct1000": lambda: data.ct_zip(OUT / "ct1000.zip", 1000),
    "lidc": data.ct_source,
}
FIGURES = (
    "first_image_s",
    "all_images_s",
    "instances_per_s",
    "peak_worker_rss_mb",
    "upload_s",
    "first_image_from_post_s",
)


def medians(runs: list[dict]) -> dict:
    """The median of each figure over the runs that have it (None when none has)."""
    out = {}
    for k in FIGURES:
        values = [r[k] for r in runs if r.get(k) is not None]
        out[k] = statistics.median(values) if values else None
    return out


def main(argv: list[str]) -> dict:
    repeat = 1
    if "--repeat" in argv:
        at = argv.index("--repeat")
        repeat = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    parts = argv or list(PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    scratch = OUT / "scratch-ingest"
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    scratch.mkdir()
    env = prepare_environment(scratch)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
    django.setup()
    zips = {part: PARTS[part]() for part in parts}
    results: dict = {"database": env.get("DATABASE_URL", "sqlite").split("@")[-1]}
    app = App(env, scratch)
    try:
        for round_number in range(1, repeat + 1):
            # a new user each round: for the same owner the app skips instances it already has, so
            # a second upload of a ZIP by one user stores and renders nothing
            session = session_for(app, f"bench-{round_number}")
            for part in parts:
                run = ingest_run(app, session, zips[part], probe_on_demand=False)
                kept = {k: run[k] for k in ("status", "instances", *FIGURES, "timeline")}
                results.setdefault(part, {"runs": []})["runs"].append(kept)
    finally:
        app.stop()
    for part in parts:
        runs = results[part]["runs"]
        results[part]["median"] = medians(runs)
        missing = {k: n for k in FIGURES if (n := sum(r.get(k) is None for r in runs))}
        if missing:
            results[part]["runs_without"] = missing
    if "ct500" in results and "ct1000" in results:
        ct500, ct1000 = results["ct500"]["median"]["all_images_s"], results["ct1000"]["median"]["all_images_s"]
        results["ct1000_to_ct500"] = round(ct1000 / ct500, 2) if ct500 and ct1000 is not None else None
    return results


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
