"""The window from the data: ``render.percentiles`` (a histogram for 8/16-bit whole numbers) against
``np.percentile``, on 64x64, 512x512 and 2048x2048 int16 images. `bench/window.py` prints ms per image."""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studies.imaging.render import percentiles  # noqa: E402


def run() -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for side in (64, 512, 2048):
        values = rng.normal(0, 300, (side, side)).astype(np.int16)
        number = max(2, 2_000_000 // (side * side))
        # the best of 7 rounds: the machine is shared, the minimum is the cost itself
        numpy_ms = min(timeit.repeat(lambda v=values: np.percentile(v, [0.5, 99.5]), number=number, repeat=7))
        ours_ms = min(timeit.repeat(lambda v=values: percentiles(v, (0.5, 99.5)), number=number, repeat=7))
        numpy_ms, ours_ms = numpy_ms / number * 1e3, ours_ms / number * 1e3
        results[f"{side}x{side}"] = {"np_percentile_ms": round(numpy_ms, 3), "histogram_ms": round(ours_ms, 3)}
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
