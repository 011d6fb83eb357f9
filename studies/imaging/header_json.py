"""What decoding and showing a file's frames needs from its header, as JSON.

A stack's manifest keeps these for each of its files, so that rendering one of its images (a
worker's render chunk, or the web at another window) reads only the pixels, never the header
again (about 0.6 ms a file with pydicom, more than decoding and rendering a 64 x 64 image).
"""

from __future__ import annotations

from pathlib import Path

from .headers import Frame, Header

FIELDS = (
    "sop_instance_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "modality",
    "instance_number",
    "rows",
    "columns",
    "number_of_frames",
    "samples_per_pixel",
    "photometric_interpretation",
    "bits_allocated",
    "bits_stored",
    "pixel_representation",
    "has_modality_lut",
    "has_voi_lut",
    "file_size",
    "pixel_offset",
)
FRAME_FIELDS = ("position", "orientation", "spacing", "slope", "intercept", "window_center", "window_width")


def to_json(header: Header) -> dict:
    """The header's pixel description; frames as a list of distinct frames and, when there is
    more than one frame, the index of each frame's entry (a 1000-frame cine keeps one entry)."""
    out = {name: getattr(header, name) for name in FIELDS}
    distinct: dict[Frame, int] = {}
    order = [distinct.setdefault(frame, len(distinct)) for frame in header.frames]
    out["frames"] = [[getattr(frame, name) for name in FRAME_FIELDS] for frame in distinct]
    if len(order) > 1:
        out["frame_index"] = order if len(distinct) > 1 else None
    return out


def from_json(value: dict, path: Path, name: str) -> Header:
    """A Header with what ``to_json`` kept (identifiers of study and series left empty)."""
    distinct = [
        Frame(*(tuple(item) if isinstance(item, list) else item for item in entry)) for entry in value["frames"]
    ]
    index = value.get("frame_index")
    count = value["number_of_frames"]
    if index:
        frames = [distinct[k] for k in index]
    else:
        frames = distinct[:1] * count if distinct else []
    fields = {name: value[name] for name in FIELDS}
    return Header(path=Path(path), name=name, study_instance_uid="", series_instance_uid="", frames=frames, **fields)
