"""SEG frames onto a volume's grid, Django-free: generated volumes and SEGs (written by highdicom)."""

from __future__ import annotations

import random

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.pixels.utils import pack_bits
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from studies.imaging.headers import read_header
from studies.imaging.planes import plan_planes
from studies.imaging.segmentation import (
    FILL_ALPHA,
    Mismatch,
    Segment,
    map_to_volume,
    overlay_rgba,
    read_segmentation,
)
from studies.imaging.volume import layout_series
from tests.dicomgen import write_volume

SLICES, ROWS, COLS = 6, 16, 20


def source_volume(tmp_path, **kwargs):
    """Six generated CT slices (2 mm apart, 1 x 1 mm pixels): (datasets, volume, slice uids)."""
    voxels = np.zeros((SLICES, ROWS, COLS), dtype=np.int16)
    paths = write_volume(
        tmp_path / "ct",
        voxels,
        spacing=(1.0, 1.0),
        slice_step=2.0,
        origin=(-10.0, -8.0, 40.0),
        instance_numbers=[6, 2, 4, 1, 5, 3],  # acquisition order differs from the order in space
        PatientSex="O",
        PatientBirthDate="19700101",
        ReferringPhysicianName="",
        SliceThickness=2.0,
        **kwargs,
    )
    datasets = [pydicom.dcmread(p) for p in paths]
    headers = [read_header(p) for p in paths]
    volume = layout_series(headers).volume
    uids = [headers[ref.instance].sop_instance_uid for ref in volume.frames]
    return datasets, volume, uids


def make_seg(tmp_path, datasets, masks: np.ndarray, *, kind="BINARY", colours=True, name="seg.dcm"):
    """A SEG of ``masks`` (slices, rows, cols, segments) drawn on ``datasets`` (in space order)."""
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label=f"Lesion {n + 1}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            display_color=hd.color.CIELabColor.from_string(("red", "blue", "lime")[n]) if colours else None,
        )
        for n in range(masks.shape[3])
    ]
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=masks.astype(np.float32) if kind == "FRACTIONAL" else masks,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=7,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="tests",
        manufacturer_model_name="tests",
        software_versions="1",
        device_serial_number="1",
        max_fractional_value=200 if kind == "FRACTIONAL" else None,
    )
    path = tmp_path / name
    seg.save_as(path)
    return path


@pytest.fixture
def lesions():
    """Segment 1 on slices 1-2, segment 2 on slices 2-3, overlapping on slice 2."""
    masks = np.zeros((SLICES, ROWS, COLS, 2), dtype=bool)
    masks[1:3, 2:8, 3:9, 0] = True
    masks[2:4, 5:12, 6:15, 1] = True
    return masks


def expected_bits(masks: np.ndarray) -> np.ndarray:
    return sum(masks[..., n].astype(np.uint8) << n for n in range(masks.shape[3]))


def test_overlapping_segments_on_some_slices(tmp_path, lesions):
    datasets, volume, uids = source_volume(tmp_path)
    seg = read_segmentation(make_seg(tmp_path, [datasets[ref.instance] for ref in volume.frames], lesions))
    assert len(seg.frames) == 4  # empty frames are left out of the file
    assert [(s.number, s.label, s.color) for s in seg.segments] == [
        (1, "Lesion 1", "#ff0000"),
        (2, "Lesion 2", "#0000ff"),
    ]
    labels = map_to_volume(seg, volume, frame_of_reference_uid=datasets[0].FrameOfReferenceUID, slice_uids=uids)
    assert labels.segments == [1, 2]
    assert labels.first_slice == 0 and len(labels.data) == 5  # slices 1-3 and an empty one either side
    bits = expected_bits(lesions)
    assert np.array_equal(labels.data, bits[:5])
    assert (labels.data[2] == 3).any()  # overlap: both bits

    planes = plan_planes(volume)
    axial = planes["axial"]  # index 0 is the most superior: slice 5
    for index in range(axial.count):
        assert np.array_equal(labels.plane_image(volume, axial, index), bits[SLICES - 1 - index])
    coronal = planes["coronal"]  # rows of the images are slices, from the top (superior)
    for index in range(coronal.count):
        image = labels.plane_image(volume, coronal, index)
        assert image.shape == (coronal.height, coronal.width)
        row_mm = coronal.origin[1] + index * coronal.step_mm
        row = round(row_mm - volume.origin[1])
        # each image row is the slice nearest its height (ties between two slices: the even one)
        slices = [
            int(np.rint((coronal.origin[2] - j * coronal.pixel_mm - volume.origin[2]) / 2.0))
            for j in range(coronal.height)
        ]
        assert np.array_equal(image, bits[slices, row, : coronal.width])


def test_frames_in_any_order_and_without_positions(tmp_path, lesions):
    datasets, volume, uids = source_volume(tmp_path)
    path = make_seg(tmp_path, [datasets[ref.instance] for ref in volume.frames], lesions)
    reference = map_to_volume(read_segmentation(path), volume, slice_uids=uids).data
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array
    order = list(range(len(frames)))
    random.Random(3).shuffle(order)
    ds.PerFrameFunctionalGroupsSequence = [ds.PerFrameFunctionalGroupsSequence[i] for i in order]
    ds.PixelData = pack_bits(frames[order])
    ds.save_as(tmp_path / "shuffled.dcm")
    assert np.array_equal(map_to_volume(read_segmentation(tmp_path / "shuffled.dcm"), volume).data, reference)
    # no plane positions: the frames go by the source image each was drawn on
    position = pydicom.tag.Tag("ImagePositionPatient")
    kept = [i for i, item in enumerate(ds.DimensionIndexSequence) if item.DimensionIndexPointer != position]
    ds.DimensionIndexSequence = [ds.DimensionIndexSequence[i] for i in kept]
    for groups in ds.PerFrameFunctionalGroupsSequence:
        del groups.PlanePositionSequence
        content = groups.FrameContentSequence[0]
        content.DimensionIndexValues = [content.DimensionIndexValues[i] for i in kept]
    ds.save_as(tmp_path / "by-uid.dcm")
    assert np.array_equal(
        map_to_volume(read_segmentation(tmp_path / "by-uid.dcm"), volume, slice_uids=uids).data, reference
    )
    with pytest.raises(Mismatch, match="no position and names no image"):
        map_to_volume(read_segmentation(tmp_path / "by-uid.dcm"), volume, slice_uids=[])


def test_fractional_segments_and_default_colours(tmp_path, lesions):
    datasets, volume, uids = source_volume(tmp_path)
    masks = lesions.astype(np.float32) * 0.8
    masks[1, 2:4, 3:9, 0] = 0.3  # under half: not inside
    path = make_seg(
        tmp_path, [datasets[ref.instance] for ref in volume.frames], masks, kind="FRACTIONAL", colours=False
    )
    seg = read_segmentation(path)
    assert [s.color for s in seg.segments] == ["#e6194b", "#3cb44b"]  # the default palette
    labels = map_to_volume(seg, volume, slice_uids=uids)
    expected = lesions.copy()
    expected[1, 2:4, 3:9, 0] = False
    assert np.array_equal(labels.data, expected_bits(expected)[:5])


def test_geometry_that_does_not_fit(tmp_path, lesions):
    datasets, volume, uids = source_volume(tmp_path)
    path = make_seg(tmp_path, [datasets[ref.instance] for ref in volume.frames], lesions)
    seg = read_segmentation(path)
    with pytest.raises(Mismatch, match="Frame of Reference"):
        map_to_volume(seg, volume, frame_of_reference_uid=generate_uid())
    ds = pydicom.dcmread(path)
    position = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    position.ImagePositionPatient = [*position.ImagePositionPatient[:2], float(position.ImagePositionPatient[2]) + 1.0]
    ds.save_as(tmp_path / "between.dcm")
    with pytest.raises(Mismatch, match="lies 1.00 mm from the nearest referenced image"):
        map_to_volume(read_segmentation(tmp_path / "between.dcm"), volume)
    ds = pydicom.dcmread(path)
    ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.save_as(tmp_path / "coronal.dcm")
    with pytest.raises(Mismatch, match="not parallel"):
        map_to_volume(read_segmentation(tmp_path / "coronal.dcm"), volume)


def test_overlay_colours_fill_and_outline():
    bits = np.zeros((9, 9), dtype=np.uint8)
    bits[1:6, 1:6] |= 1
    bits[4:8, 4:8] |= 2
    segments = [Segment(1, "a", "#ff0000", "", ""), Segment(2, "b", "#0000ff", "", "")]
    rgba = overlay_rgba(bits, segments)
    assert tuple(rgba[3, 3]) == (255, 0, 0, FILL_ALPHA)  # inside the first only
    assert tuple(rgba[1, 1]) == (255, 0, 0, 255)  # its outline
    assert tuple(rgba[5, 5][:3]) == (0, 0, 255)  # the later segment on top where they overlap
    assert rgba[0, 0, 3] == 0 and rgba[8, 8, 3] == 0
    only_first = overlay_rgba(bits, segments, shown=[1])
    assert np.array_equal(only_first[..., 3] > 0, (bits & 1) > 0)
    assert not overlay_rgba(bits, segments, shown=[]).any()


def test_a_coarser_seg_grid_is_resampled_onto_the_volume_pixels(tmp_path):
    from studies.imaging.segmentation import SegFile, SegFrame

    _datasets, volume, _uids = source_volume(tmp_path)
    mask = np.zeros((8, 10), dtype=bool)
    mask[2:5, 3:7] = True
    # 2 mm pixels whose centres lie half a volume pixel right of and below the volume's
    corner = volume.origin + volume.offsets_mm[2] * volume.stack_dir + (0.5, 0.5, 0.0)
    seg = SegFile(
        referenced_series_uids=[],
        frame_of_reference_uid="",
        rows=8,
        columns=10,
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        spacing=(2.0, 2.0),
        segments=[Segment(1, "a", "#ff0000", "", "")],
        frames=[SegFrame(0, 1, tuple(corner), None)],
        masks=mask[None],
    )
    labels = map_to_volume(seg, volume)
    assert labels.first_slice == 1 and len(labels.data) == 3
    assert np.array_equal(labels.data[1] > 0, np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1))
    assert not labels.data[0].any() and not labels.data[2].any()


def test_files_that_are_no_segmentation(tmp_path):
    from studies.imaging.segmentation import SegmentationError

    datasets, _volume, _uids = source_volume(tmp_path)
    with pytest.raises(SegmentationError, match="not a Segmentation"):
        read_segmentation(datasets[0].filename)
    (tmp_path / "cut.dcm").write_bytes(
        make_seg(tmp_path, [datasets[0]], np.ones((1, ROWS, COLS, 1), bool)).read_bytes()[:900]
    )
    with pytest.raises(SegmentationError, match="could not be read"):
        read_segmentation(tmp_path / "cut.dcm")
