"""Slab images (MIP, MinIP, average over a thickness in mm): what a request may ask for.

The values come from ``planes.Resampler.slab``; this module parses and checks the two query
parameters (``mode``, ``slab``) for the image server and the API alike, so both refuse the same
requests with the same words. Plain Python: no Django.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .planes import SLAB_MODES


class SlabError(ValueError):
    """A slab that cannot be made; the message says why (a client's mistake: answer 400)."""


@dataclass(frozen=True)
class Slab:
    mode: str  # one of SLAB_MODES
    thickness_mm: float

    @property
    def key(self) -> str:
        """For cache names and ETags: ``mip10``, ``avg2.5``."""
        return f"{self.mode}{self.thickness_mm:g}"


def parse_slab(mode: str | None, thickness: str | None) -> Slab | None:
    """``mode`` and ``slab`` as given (None when absent) -> a Slab, None for neither; SlabError else."""
    if mode is None and thickness is None:
        return None
    if mode is None:
        raise SlabError(f"Give mode ({'|'.join(SLAB_MODES)}) with slab.")
    if mode not in SLAB_MODES:
        raise SlabError(f"Unknown mode {mode[:20]!r}: use one of {', '.join(SLAB_MODES)}.")
    if thickness is None:
        raise SlabError("Give slab (the slab thickness in mm) with mode.")
    try:
        value = float(thickness)
    except ValueError:
        raise SlabError("slab must be a number of millimetres.") from None
    if not math.isfinite(value) or value <= 0:
        raise SlabError("slab must be a positive number of millimetres.")
    return Slab(mode, round(value, 2) or 0.01)


def check_slab(slab: Slab, plane_name: str, plane: dict) -> None:
    """Can ``plane`` (its JSON: count, step_mm) give this slab? SlabError if not."""
    step = plane.get("step_mm")
    if not step:
        raise SlabError(f"Slabs need a volume plane; the {plane_name} plane of this series holds separate images.")
    extent = plane["count"] * float(step)
    if slab.thickness_mm > extent + 1e-6:
        raise SlabError(
            f"The slab ({slab.thickness_mm:g} mm) is thicker than the volume along the {plane_name} plane "
            f"({extent:.1f} mm)."
        )
