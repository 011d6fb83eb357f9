"""Window presets per modality.

CT has fixed presets in Hounsfield units. Other greyscale series (MR, PET and the rest) have
no common unit, so theirs come from the data: percentiles of a subsample of the series' values
(the volume, or a stack's middle frames) that leaves out the background (air, the empty field
of view), computed once when the series is built and stored with it (``histogram_presets``).
A PET with an SUV factor (SUVbw per stored unit) also gets fixed SUV windows, worked out at
display time from the factor (``series_presets``). Plain Python: no Django.
"""

from __future__ import annotations

import numpy as np

# name, centre, width (Hounsfield units)
CT_PRESETS = [
    ("Brain", 40, 80),
    ("Soft tissue", 40, 400),
    ("Lung", -600, 1500),
    ("Bone", 480, 2500),
    ("Liver", 90, 150),
    ("Mediastinum", 40, 350),
]
SUV_WINDOWS = (5, 10, 15)  # PET: 0 to this many SUV
SAMPLE_VOXELS = 1_000_000
BACKGROUND_FRACTION = 0.1  # of the robust range above the minimum: below it is background
MIN_FOREGROUND = 0.01  # fewer foreground voxels than this share: use them all


def _preset(name: str, lo: float, hi: float) -> dict:
    width = max(hi - lo, 1e-6)
    digits = max(0, 3 - int(np.floor(np.log10(width))))  # about 4 significant figures of the width
    return {"name": name, "center": round((lo + hi) / 2, digits), "width": round(width, digits)}


def sample(values: np.ndarray, limit: int = SAMPLE_VOXELS) -> np.ndarray:
    """A regular subsample of at most about ``limit`` finite values (a memory map reads only those)."""
    flat = values.reshape(-1) if values.flags.c_contiguous else np.ravel(values)
    step = max(1, flat.size // limit)
    picked = np.asarray(flat[::step], dtype=np.float64)
    return picked[np.isfinite(picked)]


def foreground(values: np.ndarray) -> np.ndarray:
    """The values above the background: more than a tenth of the way from the minimum to the
    99.9th percentile (air in MR, the empty field in PET); all of them when that leaves too few."""
    lo, hi = float(values.min()), float(np.percentile(values, 99.9))
    kept = values[values > lo + BACKGROUND_FRACTION * (hi - lo)]
    return kept if kept.size >= max(MIN_FOREGROUND * values.size, 16) else values


def histogram_presets(modality: str, values: np.ndarray) -> list[dict]:
    """Presets (``{"name", "center", "width"}``, modality values) from a series' values; [] for CT
    (fixed presets), for empty or constant data."""
    if modality == "CT" or values.size == 0:
        return []
    data = sample(values)
    if data.size == 0:
        return []
    lowest, highest = float(np.nanmin(values)), float(np.nanmax(values))  # the whole range, not a sample's
    if not highest > lowest:
        return []
    tissue = foreground(data)
    if modality == "PT":
        top = float(np.percentile(tissue, 99.5))
        presets = [_preset("0 – p99.5", 0.0, top), _preset("0 – max", 0.0, highest)]
        return [p for p in presets if p["width"] > 0]
    p1, p25, p50, p75, p99, p999 = (float(v) for v in np.percentile(tissue, [1, 25, 50, 75, 99, 99.9]))
    counts, edges = np.histogram(tissue, bins=128, range=(p1, p99))
    mode = float((edges[np.argmax(counts)] + edges[np.argmax(counts) + 1]) / 2)
    spread = max(p75 - p25, 1e-6)
    return [
        _preset("Full range", lowest, highest),
        _preset("Tissue", p1, p99),
        _preset("Brain/soft" if modality == "MR" else "Soft", max(mode - 1.5 * spread, p1), mode + 1.5 * spread),
        _preset("Bright", p50, p999),
    ]


def series_presets(modality: str, stored: list[dict] | None, suv_factor: float | None = None) -> list[dict]:
    """What a viewer offers: CT's fixed presets; for others the stored histogram presets, after
    the SUV windows when a PET has an SUV factor (stored value x factor = SUVbw)."""
    if modality == "CT":
        return [{"name": n, "center": c, "width": w} for n, c, w in CT_PRESETS]
    presets = []
    if modality == "PT" and suv_factor and suv_factor > 0:
        presets = [_preset(f"SUV 0 – {top}", 0.0, top / suv_factor) for top in SUV_WINDOWS]
    return presets + list(stored or [])


def layout_presets(modality: str, layout: dict | None) -> list[dict]:
    """``series_presets`` of a series from its layout JSON (``presets`` stored at build time,
    ``values.suv_factor`` when the PET's header allows SUV); series built before presets: none."""
    layout = layout or {}
    return series_presets(modality, layout.get("presets"), (layout.get("values") or {}).get("suv_factor"))
