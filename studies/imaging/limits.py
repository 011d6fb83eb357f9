"""Caps on the work one series may cause, so that every loop is bounded by what was uploaded.

The services fill ``RenderLimits`` from the settings (``INGEST_MAX_*``); the defaults here are
the same and leave real data alone (a 1000-slice CT renders whole; see the README's limits).
"""

from __future__ import annotations

from dataclasses import dataclass

# An image costs at least what a 32 x 32 one does to render and store (a PNG, a storage write):
# a thousand 1 x 1 frames are not a thousand times cheaper than a thousand 32 x 32 ones.
MIN_IMAGE_COST = 32 * 32


@dataclass(frozen=True)
class RenderLimits:
    max_frames: int = 10_000  # frames of one file; files that claim more are skipped
    max_plane_images: int = 10_000  # images of one plane; a longer plane takes larger steps
    max_series_images: int = 20_000  # images of one series, all planes together
    max_pixels_per_byte: float = 256.0  # rendered pixels per byte of the series' files

    def pixel_budget(self, data_bytes: int) -> int:
        return int(self.max_pixels_per_byte * max(data_bytes, 0))


def image_cost(width: int, height: int) -> int:
    return max(int(width) * int(height), MIN_IMAGE_COST)
