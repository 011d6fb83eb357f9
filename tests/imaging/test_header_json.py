"""A stack's manifest keeps each file's pixel description (studies.imaging.header_json): what it
gives back decodes and displays every test file exactly as the header read from the file does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studies.imaging import header_json, headers, pixels
from studies.imaging.series import StackImages
from studies.imaging.volume import FrameRef
from tests.imaging.test_headers import test_files


def round_trip(header: headers.Header) -> headers.Header:
    return header_json.from_json(json.loads(json.dumps(header_json.to_json(header))), header.path, header.name)


def test_every_test_file_decodes_and_displays_the_same_from_its_json():
    checked = multi = 0
    for path in test_files():
        header = headers.read_header(path, path.name)
        if not isinstance(header, headers.Header):
            continue
        kept = round_trip(header)
        for name in header_json.FIELDS:
            assert getattr(kept, name) == getattr(header, name), (path, name)
        assert kept.frames == header.frames, path
        assert kept.is_color == header.is_color and kept.window == header.window, path
        try:
            expected = pixels.decode(header)
        except Exception:
            continue  # undecodable here: nothing to compare
        values = pixels.decode(kept)
        assert values.dtype == expected.dtype and np.array_equal(values, expected), path
        last = header.number_of_frames - 1
        refs = [FrameRef(0, 0), FrameRef(0, last)]
        for ref in refs:
            image = StackImages([header], refs).render(ref, expected[ref.frame])
            assert np.array_equal(StackImages([kept], refs).render(ref, values[ref.frame]), image), path
        checked += 1
        multi += header.number_of_frames > 1
    assert checked >= 30 and multi >= 3, (checked, multi)


@pytest.mark.parametrize("distinct", [False, True])
def test_frames_of_a_multiframe_file_are_kept_in_order(distinct):
    frames = [
        headers.Frame(position=(0.0, 0.0, float(k) if distinct else 0.0), spacing=(0.5, 0.5), window_center=40.0)
        for k in range(5)
    ]
    header = headers.Header(
        path="x.dcm",
        name="x.dcm",
        sop_instance_uid="1.2.3",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4.1",
        study_instance_uid="1.2",
        series_instance_uid="1.2.4",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=4,
        columns=4,
        number_of_frames=5,
        frames=frames,
    )
    value = header_json.to_json(header)
    assert len(value["frames"]) == (5 if distinct else 1)
    assert round_trip(header).frames == frames
